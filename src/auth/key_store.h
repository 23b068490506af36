// API keys for services, issued and kept the way GitHub and Stripe keep theirs.
//
// A key's secret is `vgk_` + 30 random base62 characters + a 6-character base62 checksum
// (CRC-32C of the random part): a scanner recognises a leaked one by its prefix and checksum, and
// a typo is refused without a lookup. The secret is shown once, when the key is created (or
// rolled); the store keeps only its SHA-256, with the key's id, name, role, creation, last use,
// expiry, revocation, and the last four characters of the secret (its hint, for people to tell
// keys apart).
//
// The store is a SQLite file, `auth.db` in the data dir, readable only by its owner. `vigil
// serve` holds every key in memory and answers Authenticate from there, lock-free; `vigil keys`
// (another process) changes the file, and Refresh, called every second by the server, sees the
// change (SQLite's data_version) and reloads; it also writes the last-use times.
#ifndef VIGIL_AUTH_KEY_STORE_H_
#define VIGIL_AUTH_KEY_STORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "auth/role.h"
#include "vigil/status.h"

namespace vigil::auth {

inline constexpr std::string_view kKeyPrefix = "vgk_";

// A new secret, from the operating system's random source.
std::string NewKeySecret();
// Whether `text` has a key's shape and checksum (no lookup).
bool LooksLikeKey(std::string_view text);

struct KeyRecord {
  std::string id;  // "key_" + 16 base62 characters; public, names the key in routes and logs
  std::string name;
  Role role = Role::kViewer;
  std::string hint;  // the secret's last four characters
  int64_t created_at = 0, last_used_at = 0, expires_at = 0, revoked_at = 0;  // Unix s; 0: never
  std::string rolled_to;  // the id of the key that replaced it, when rolled

  // Valid at `now`: not revoked, not expired.
  bool ActiveAt(int64_t now) const {
    return revoked_at == 0 && (expires_at == 0 || now < expires_at);
  }
};

// Who a request comes from, once authenticated.
struct Principal {
  std::string id;      // the key's id, or the token's subject
  std::string name;    // the key's name; empty for a token
  RoleSet roles;       // a key's one role; those a token grants (maybe none)
  std::string method;  // "api_key" or "jwt"
};

class KeyStore {
 public:
  // Opens (creating when missing) `data_dir`/auth.db, made readable by its owner only.
  static StatusOr<std::unique_ptr<KeyStore>> Open(const std::string& data_dir);
  ~KeyStore();
  KeyStore(const KeyStore&) = delete;
  KeyStore& operator=(const KeyStore&) = delete;

  struct Issued {
    KeyRecord record;
    std::string secret;  // shown once; stored nowhere
  };
  // A new key. InvalidArgument for an empty or over-long name, or an expiry not after `now`.
  StatusOr<Issued> Create(Role role, std::string_view name, int64_t expires_at, int64_t now);
  // Every key, active or not, oldest first.
  StatusOr<std::vector<KeyRecord>> List();
  // Revokes the key at once. NotFound for an unknown id; revoking twice keeps the first time.
  StatusOr<KeyRecord> Revoke(std::string_view id, int64_t now);
  // A new key with the same name and role; the old one stays valid until `old_valid_until`
  // (at most its own expiry; `now` ends it at once). NotFound for an unknown id; InvalidArgument
  // when the old key is revoked or expired already, or old_valid_until is before `now`.
  StatusOr<Issued> Roll(std::string_view id, int64_t old_valid_until, int64_t now);

  // The key `secret` names, valid at `now`, from memory. Unauthenticated otherwise, saying
  // whether the key is unknown, revoked or expired (never quoting the secret).
  StatusOr<Principal> Authenticate(std::string_view secret, int64_t now) const;
  // Whether `secret` names a key in memory, valid or not.
  bool Knows(std::string_view secret) const;
  // Whether the store holds no key at all, valid or not.
  bool Empty() const;
  // Whether an admin key is valid at `now`.
  bool HasActiveAdmin(int64_t now) const;

  // Reloads when another process changed the file, and writes the last-use times seen since the
  // last call. Any thread; cheap when nothing changed.
  Status Refresh();
  // The request path's: reloads when the file changed, unless another call holds the store
  // (then Unavailable at once); never writes. With WAL, reading waits on no writer.
  Status TryReload();

 private:
  struct Db;
  struct Snapshot;
  KeyStore(std::unique_ptr<Db> db, std::string path);
  Status Reload();        // REQUIRES: mu_ held
  Status FlushLastUse();  // REQUIRES: mu_ held
  StatusOr<Issued> Insert(Role role, std::string_view name, int64_t expires_at, int64_t now);

  std::shared_ptr<const Snapshot> Current() const;
  // The request path's: this thread's copy of the current snapshot, renewed only when the
  // snapshot changed (no lock, no reference count otherwise). Valid until this thread's next
  // call.
  const Snapshot& Acquire() const;

  std::mutex mu_;  // the database connection and reloads
  std::unique_ptr<Db> db_;
  const std::string path_;
  mutable std::mutex snapshot_mu_;  // held only to copy or swap the pointer
  std::shared_ptr<const Snapshot> snapshot_;
  std::atomic<uint64_t> generation_{0};  // of snapshot_: set after each swap
};

}  // namespace vigil::auth

#endif  // VIGIL_AUTH_KEY_STORE_H_
