#include "auth/key_store.h"

#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <unordered_map>
#include <utility>

#include "auth/digest.h"
#include "core/crc32c.h"

namespace vigil::auth {
namespace {

constexpr char kBase62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr size_t kRandomChars = 30, kChecksumChars = 6;
constexpr size_t kSecretSize = 4 + kRandomChars + kChecksumChars;  // "vgk_" + ...
constexpr size_t kMaxName = 200;

void InitSodium() {
  static const bool ok = sodium_init() >= 0;
  (void)ok;  // sodium_init fails only without a random source, which randombytes then reports
}

std::string RandomBase62(size_t n) {
  InitSodium();
  std::string out(n, '0');
  for (char& c : out) c = kBase62[randombytes_uniform(62)];
  return out;
}

std::string Checksum(std::string_view random_part) {
  uint32_t crc = Crc32c(random_part);
  std::string out(kChecksumChars, '0');
  for (size_t i = kChecksumChars; i-- > 0;) {
    out[i] = kBase62[crc % 62];
    crc /= 62;
  }
  return out;
}

bool IsBase62(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

std::string Sha256(std::string_view secret) {
  const Digest d = DigestOf(secret);
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

bool ToDigest(std::string_view bytes, Digest* d) {
  if (bytes.size() != d->size()) return false;
  std::memcpy(d->data(), bytes.data(), d->size());
  return true;
}

// Every snapshot of every store gets a number never used before, so that a thread's cached
// snapshot can never be taken for another store's.
std::atomic<uint64_t> g_generation{0};

// One SQLite statement, finalized when it goes.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Bind(int i, std::string_view v) {
    if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    }
    return *this;
  }
  Stmt& BindBlob(int i, std::string_view v) {
    if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    }
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE, or an error code (then error() says why).
  int Step() {
    if (rc_ != SQLITE_OK && rc_ != SQLITE_ROW && rc_ != SQLITE_DONE) return rc_;
    rc_ = sqlite3_step(stmt_);
    return rc_;
  }
  Status Run() { return Step() == SQLITE_DONE ? Status::Ok() : error(); }
  std::string Text(int i) const {
    const auto* p = sqlite3_column_text(stmt_, i);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p),
                                      static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
  }
  std::string Blob(int i) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
    return p == nullptr ? std::string()
                        : std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
  }
  int64_t Int(int i) const { return sqlite3_column_int64(stmt_, i); }
  Status error() const {
    return Internal(std::string("the key store failed: ") + sqlite3_errmsg(db_));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

constexpr const char* kColumns =
    "id, hash, name, role, hint, created_at, last_used_at, expires_at, revoked_at, rolled_to";

KeyRecord ReadRecord(const Stmt& s, std::string* hash) {
  KeyRecord r;
  r.id = s.Text(0);
  if (hash != nullptr) *hash = s.Blob(1);
  r.name = s.Text(2);
  auto role = ParseRole(s.Text(3));
  r.role = role.ok() ? *role : Role::kViewer;  // rows are written by Create, with a valid role
  r.hint = s.Text(4);
  r.created_at = s.Int(5);
  r.last_used_at = s.Int(6);
  r.expires_at = s.Int(7);
  r.revoked_at = s.Int(8);
  r.rolled_to = s.Text(9);
  return r;
}

}  // namespace

std::string NewKeySecret() {
  const std::string random = RandomBase62(kRandomChars);
  return std::string(kKeyPrefix) + random + Checksum(random);
}

bool LooksLikeKey(std::string_view text) {
  if (text.size() != kSecretSize || !text.starts_with(kKeyPrefix)) return false;
  const std::string_view body = text.substr(kKeyPrefix.size());
  for (char c : body) {
    if (!IsBase62(c)) return false;
  }
  return Checksum(body.substr(0, kRandomChars)) == body.substr(kRandomChars);
}

struct KeyStore::Db {
  sqlite3* db = nullptr;
  int64_t data_version = -1;
  ~Db() { sqlite3_close(db); }
};

// The keys in memory: immutable but for each key's last use, which Authenticate moves forward.
struct KeyStore::Snapshot {
  struct Entry {
    KeyRecord record;
    mutable std::atomic<int64_t> last_used{0};
    int64_t last_used_written = 0;
  };
  std::vector<std::unique_ptr<Entry>> entries;
  std::unordered_map<Digest, const Entry*, DigestHash> by_hash;
};

KeyStore::KeyStore(std::unique_ptr<Db> db, std::string path)
    : db_(std::move(db)), path_(std::move(path)) {}

KeyStore::~KeyStore() {
  std::lock_guard lock(mu_);
  (void)FlushLastUse();
}

StatusOr<std::unique_ptr<KeyStore>> KeyStore::Open(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  const std::string path = (std::filesystem::path(data_dir) / "auth.db").string();
  // Made (or kept) owner-only before SQLite opens it; its journal files take the same mode.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Unavailable("cannot open the key store in the data dir: " +
                       std::string(std::strerror(errno)));
  }
  const int chmod_rc = ::fchmod(fd, 0600);
  ::close(fd);
  if (chmod_rc != 0) {
    return Unavailable("cannot make the key store readable by its owner only: " +
                       std::string(std::strerror(errno)));
  }
  auto db = std::make_unique<Db>();
  if (sqlite3_open_v2(path.c_str(), &db->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    return Unavailable("cannot open the key store: " + std::string(sqlite3_errmsg(db->db)));
  }
  sqlite3_busy_timeout(db->db, 5000);
  const char* schema =
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE IF NOT EXISTS api_keys ("
      " id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, name TEXT NOT NULL, role TEXT NOT NULL,"
      " hint TEXT NOT NULL, created_at INTEGER NOT NULL, last_used_at INTEGER NOT NULL DEFAULT 0,"
      " expires_at INTEGER NOT NULL DEFAULT 0, revoked_at INTEGER NOT NULL DEFAULT 0,"
      " rolled_to TEXT NOT NULL DEFAULT '');";
  char* err = nullptr;
  if (sqlite3_exec(db->db, schema, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err == nullptr ? "unknown error" : err;
    sqlite3_free(err);
    return Unavailable("cannot set up the key store: " + why);
  }
  std::unique_ptr<KeyStore> store(new KeyStore(std::move(db), path));
  std::lock_guard lock(store->mu_);
  VIGIL_RETURN_IF_ERROR(store->Reload());
  return store;
}

std::shared_ptr<const KeyStore::Snapshot> KeyStore::Current() const {
  std::lock_guard lock(snapshot_mu_);
  return snapshot_;
}

Status KeyStore::Reload() {
  Stmt version(db_->db, "PRAGMA data_version");
  if (version.Step() != SQLITE_ROW) return version.error();
  db_->data_version = version.Int(0);
  auto next = std::make_shared<Snapshot>();
  const auto previous = Current();
  Stmt s(db_->db, (std::string("SELECT ") + kColumns + " FROM api_keys ORDER BY rowid").c_str());
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    auto e = std::make_unique<Snapshot::Entry>();
    std::string hash;
    e->record = ReadRecord(s, &hash);
    e->last_used_written = e->record.last_used_at;
    int64_t used = e->record.last_used_at;
    Digest digest;
    if (!ToDigest(hash, &digest)) continue;  // not a row Create wrote: it can match no secret
    if (previous != nullptr) {
      // A use seen here and not written yet survives the reload.
      if (auto it = previous->by_hash.find(digest); it != previous->by_hash.end()) {
        used = std::max(used, it->second->last_used.load(std::memory_order_relaxed));
      }
    }
    e->last_used.store(used, std::memory_order_relaxed);
    next->by_hash.emplace(digest, e.get());
    next->entries.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return s.error();
  {
    std::lock_guard lock(snapshot_mu_);
    snapshot_ = std::move(next);
  }
  generation_.store(g_generation.fetch_add(1) + 1, std::memory_order_release);
  return Status::Ok();
}

Status KeyStore::FlushLastUse() {
  const auto snap = Current();
  if (snap == nullptr) return Status::Ok();
  bool any = false;
  for (const auto& e : snap->entries) {
    if (e->last_used.load(std::memory_order_relaxed) > e->last_used_written) any = true;
  }
  if (!any) return Status::Ok();
  for (const auto& e : snap->entries) {
    const int64_t used = e->last_used.load(std::memory_order_relaxed);
    if (used <= e->last_used_written) continue;
    Stmt s(db_->db, "UPDATE api_keys SET last_used_at = MAX(last_used_at, ?) WHERE id = ?");
    VIGIL_RETURN_IF_ERROR(s.Bind(1, used).Bind(2, e->record.id).Run());
    const_cast<Snapshot::Entry&>(*e).last_used_written = used;  // this thread only, under mu_
  }
  return Status::Ok();
}

Status KeyStore::Refresh() {
  std::lock_guard lock(mu_);
  VIGIL_RETURN_IF_ERROR(FlushLastUse());
  Stmt version(db_->db, "PRAGMA data_version");
  if (version.Step() != SQLITE_ROW) return version.error();
  if (version.Int(0) == db_->data_version) return Status::Ok();
  return Reload();
}

Status KeyStore::TryReload() {
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return Unavailable("the key store is busy");
  Stmt version(db_->db, "PRAGMA data_version");
  if (version.Step() != SQLITE_ROW) return version.error();
  if (version.Int(0) == db_->data_version) return Status::Ok();
  return Reload();
}

StatusOr<KeyStore::Issued> KeyStore::Insert(Role role, std::string_view name, int64_t expires_at,
                                            int64_t now) {
  if (role == Role::kPublic) return InvalidArgument("a key needs a caller's role");
  if (name.empty() || name.size() > kMaxName) {
    return InvalidArgument("a key's name must have 1 to " + std::to_string(kMaxName) +
                           " characters");
  }
  if (expires_at != 0 && expires_at <= now) {
    return InvalidArgument("a key's expiry must be in the future");
  }
  Issued out;
  out.secret = NewKeySecret();
  out.record.id = "key_" + RandomBase62(16);
  out.record.name = std::string(name);
  out.record.role = role;
  out.record.hint = out.secret.substr(out.secret.size() - 4);
  out.record.created_at = now;
  out.record.expires_at = expires_at;
  Stmt s(db_->db,
         "INSERT INTO api_keys (id, hash, name, role, hint, created_at, expires_at) "
         "VALUES (?, ?, ?, ?, ?, ?, ?)");
  VIGIL_RETURN_IF_ERROR(s.Bind(1, out.record.id)
                            .BindBlob(2, Sha256(out.secret))
                            .Bind(3, name)
                            .Bind(4, RoleName(role))
                            .Bind(5, out.record.hint)
                            .Bind(6, now)
                            .Bind(7, expires_at)
                            .Run());
  return out;
}

StatusOr<KeyStore::Issued> KeyStore::Create(Role role, std::string_view name, int64_t expires_at,
                                            int64_t now) {
  std::lock_guard lock(mu_);
  VIGIL_ASSIGN_OR_RETURN(Issued issued, Insert(role, name, expires_at, now));
  VIGIL_RETURN_IF_ERROR(Reload());
  return issued;
}

StatusOr<std::vector<KeyRecord>> KeyStore::List() {
  std::lock_guard lock(mu_);
  VIGIL_RETURN_IF_ERROR(FlushLastUse());
  std::vector<KeyRecord> out;
  Stmt s(db_->db, (std::string("SELECT ") + kColumns + " FROM api_keys ORDER BY rowid").c_str());
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadRecord(s, nullptr));
  if (rc != SQLITE_DONE) return s.error();
  return out;
}

namespace {

StatusOr<KeyRecord> Find(sqlite3* db, std::string_view id) {
  Stmt s(db, (std::string("SELECT ") + kColumns + " FROM api_keys WHERE id = ?").c_str());
  s.Bind(1, id);
  const int rc = s.Step();
  if (rc == SQLITE_DONE) return NotFound("no API key has that id");
  if (rc != SQLITE_ROW) return s.error();
  return ReadRecord(s, nullptr);
}

}  // namespace

StatusOr<KeyRecord> KeyStore::Revoke(std::string_view id, int64_t now) {
  std::lock_guard lock(mu_);
  VIGIL_ASSIGN_OR_RETURN(KeyRecord r, Find(db_->db, id));
  if (r.revoked_at == 0) {
    Stmt s(db_->db, "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at = 0");
    VIGIL_RETURN_IF_ERROR(s.Bind(1, now).Bind(2, id).Run());
    r.revoked_at = now;
  }
  VIGIL_RETURN_IF_ERROR(Reload());
  return r;
}

StatusOr<KeyStore::Issued> KeyStore::Roll(std::string_view id, int64_t old_valid_until,
                                          int64_t now) {
  std::lock_guard lock(mu_);
  VIGIL_ASSIGN_OR_RETURN(KeyRecord old, Find(db_->db, id));
  if (!old.ActiveAt(now)) return InvalidArgument("the key is revoked or expired already");
  if (old_valid_until < now) return InvalidArgument("the old key cannot end before now");
  if (sqlite3_exec(db_->db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Internal(std::string("the key store failed: ") + sqlite3_errmsg(db_->db));
  }
  auto issued = Insert(old.role, old.name, old.expires_at, now);
  Status st = issued.status();
  if (st.ok()) {
    const int64_t until =
        old.expires_at == 0 ? old_valid_until : std::min(old.expires_at, old_valid_until);
    Stmt s(db_->db, "UPDATE api_keys SET expires_at = ?, rolled_to = ? WHERE id = ?");
    st = s.Bind(1, until).Bind(2, issued->record.id).Bind(3, id).Run();
  }
  const char* end = st.ok() ? "COMMIT" : "ROLLBACK";
  if (sqlite3_exec(db_->db, end, nullptr, nullptr, nullptr) != SQLITE_OK && st.ok()) {
    st = Internal(std::string("the key store failed: ") + sqlite3_errmsg(db_->db));
  }
  VIGIL_RETURN_IF_ERROR(st);
  VIGIL_RETURN_IF_ERROR(Reload());
  return issued;
}

const KeyStore::Snapshot& KeyStore::Acquire() const {
  struct Cache {
    uint64_t generation = 0;
    std::shared_ptr<const Snapshot> snapshot;
  };
  thread_local Cache cache;
  const uint64_t generation = generation_.load(std::memory_order_acquire);
  if (cache.generation != generation || cache.snapshot == nullptr) {
    cache.snapshot = Current();
    cache.generation = generation;
  }
  return *cache.snapshot;
}

StatusOr<Principal> KeyStore::Authenticate(std::string_view secret, int64_t now) const {
  if (!LooksLikeKey(secret)) return Unauthenticated("the credentials are not a Vigil API key");
  const Snapshot& snap = Acquire();
  const auto it = snap.by_hash.find(DigestOf(secret));
  if (it == snap.by_hash.end()) return Unauthenticated("the API key is not known");
  const Snapshot::Entry& e = *it->second;
  if (e.record.revoked_at != 0) return Unauthenticated("the API key was revoked");
  if (!e.record.ActiveAt(now)) return Unauthenticated("the API key has expired");
  if (e.last_used.load(std::memory_order_relaxed) < now) {
    e.last_used.store(now, std::memory_order_relaxed);
  }
  return Principal{e.record.id, e.record.name, e.record.role, "api_key"};
}

bool KeyStore::Knows(std::string_view secret) const {
  return Acquire().by_hash.contains(DigestOf(secret));
}

bool KeyStore::Empty() const { return Current()->entries.empty(); }

bool KeyStore::HasActiveAdmin(int64_t now) const {
  const auto snap = Current();
  for (const auto& e : snap->entries) {
    if (e->record.role == Role::kAdmin && e->record.ActiveAt(now)) return true;
  }
  return false;
}

}  // namespace vigil::auth
