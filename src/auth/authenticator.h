// Who is calling: the credentials of a request's `Authorization: Bearer ...` header checked
// against the API keys (auth/key_store.h). The route table says what each role may call
// (auth/role.h); the router asks here first.
#ifndef VIGIL_AUTH_AUTHENTICATOR_H_
#define VIGIL_AUTH_AUTHENTICATOR_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "auth/jwt.h"
#include "auth/key_store.h"
#include "vigil/status.h"

namespace vigil::auth {

class Authenticator {
 public:
  // Opens the key store in `data_dir` and starts picking up its changes (`vigil keys` in another
  // process, revocations included) every second. With `jwt`, bearer tokens that are JWTs are
  // verified by it too (InvalidArgument when its configuration is not valid).
  static StatusOr<std::unique_ptr<Authenticator>> Open(const std::string& data_dir,
                                                       const JwtOptions* jwt = nullptr);
  ~Authenticator();
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // The caller an `Authorization` header's value names ("Bearer <API key or JWT>"): a key's one
  // role, or the roles a token's role claim names that are Vigil's (others are ignored; a token
  // may grant none, which admits it nowhere). Unauthenticated,
  // saying why without quoting the credentials. Thread-safe. No I/O for a known key; a key not
  // known yet checks whether the store changed (at most every 100 ms, never waiting for a lock,
  // never writing), so that a key `vigil keys` has just made works at once.
  StatusOr<Principal> Authenticate(std::string_view authorization) const;

  // On a first start: when no admin key is valid, creates one and writes its secret to
  // `data_dir`/admin.key, readable by its owner only, and returns it (to be shown once).
  // Returns "" when an admin key exists.
  StatusOr<std::string> EnsureAdminKey();

  KeyStore& keys() { return *keys_; }

 private:
  Authenticator(std::unique_ptr<KeyStore> keys, std::unique_ptr<JwtVerifier> jwt,
                std::string data_dir);
  void RefreshLoop();

  // A token verified once is not verified again until it expires (an RS256 signature costs
  // tens of microseconds): its Principal by the token's SHA-256, in shards.
  StatusOr<Principal> VerifyToken(std::string_view token, int64_t now) const;
  struct TokenCache;

  std::unique_ptr<KeyStore> keys_;
  std::unique_ptr<JwtVerifier> jwt_;  // null: tokens are not accepted
  std::unique_ptr<TokenCache> tokens_;
  const std::string data_dir_;
  mutable std::atomic<int64_t> last_miss_refresh_ms_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // under mu_
  std::thread refresher_;
};

// The current time, Unix seconds.
int64_t NowSeconds();

}  // namespace vigil::auth

#endif  // VIGIL_AUTH_AUTHENTICATOR_H_
