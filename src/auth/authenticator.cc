#include "auth/authenticator.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <unordered_map>
#include <utility>

#include "auth/digest.h"
#include "core/background_thread.h"
#include "core/file_util.h"
#include "core/log.h"

namespace vigil::auth {

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Authenticator::TokenCache {
  static constexpr size_t kShards = 16, kPerShard = 1024;
  static constexpr int64_t kMaxSeconds = 600;  // a cached token is verified again after this
  struct Entry {
    Principal who;
    int64_t until = 0;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<Digest, Entry, DigestHash> entries;
  };
  std::array<Shard, kShards> shards;
};

Authenticator::Authenticator(std::unique_ptr<KeyStore> keys, std::unique_ptr<JwtVerifier> jwt,
                             std::string data_dir)
    : keys_(std::move(keys)),
      jwt_(std::move(jwt)),
      tokens_(std::make_unique<TokenCache>()),
      data_dir_(std::move(data_dir)) {
  refresher_ = std::thread([this] { RefreshLoop(); });
}

Authenticator::~Authenticator() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  refresher_.join();
}

StatusOr<std::unique_ptr<Authenticator>> Authenticator::Open(const std::string& data_dir,
                                                             const JwtOptions* jwt) {
  std::unique_ptr<JwtVerifier> verifier;
  if (jwt != nullptr) {
    VIGIL_ASSIGN_OR_RETURN(verifier, JwtVerifier::Create(*jwt));
  }
  VIGIL_ASSIGN_OR_RETURN(std::unique_ptr<KeyStore> keys, KeyStore::Open(data_dir));
  return std::unique_ptr<Authenticator>(
      new Authenticator(std::move(keys), std::move(verifier), data_dir));
}

void Authenticator::RefreshLoop() {
  BecomeBackgroundThread("vigil-keys");
  std::unique_lock lock(mu_);
  bool failing = false;
  while (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) {
    lock.unlock();
    const Status st = keys_->Refresh();
    if (!st.ok() && !failing) {
      Log(LogLevel::kError, "cannot refresh the API keys; serving the ones loaded",
          {{"error", st.message()}});
    }
    failing = !st.ok();
    lock.lock();
  }
}

StatusOr<Principal> Authenticator::Authenticate(std::string_view authorization) const {
  constexpr std::string_view kBearer = "bearer ";
  if (authorization.size() <= kBearer.size()) {
    return Unauthenticated("the Authorization header must be 'Bearer <API key or token>'");
  }
  for (size_t i = 0; i < kBearer.size(); ++i) {
    const char c = authorization[i];
    if ((c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c) != kBearer[i]) {
      return Unauthenticated("the Authorization header must be 'Bearer <API key or token>'");
    }
  }
  std::string_view credentials = authorization.substr(kBearer.size());
  while (!credentials.empty() && credentials.front() == ' ') credentials.remove_prefix(1);
  while (!credentials.empty() && credentials.back() == ' ') credentials.remove_suffix(1);
  const int64_t now = NowSeconds();
  if (!credentials.starts_with(kKeyPrefix) &&
      std::count(credentials.begin(), credentials.end(), '.') == 2) {
    if (jwt_ == nullptr) {
      return Unauthenticated("tokens (JWT) are not accepted here: use an API key");
    }
    return VerifyToken(credentials, now);
  }
  auto who = keys_->Authenticate(credentials, now);
  if (who.ok() || !LooksLikeKey(credentials) || keys_->Knows(credentials)) return who;
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
  int64_t last = last_miss_refresh_ms_.load(std::memory_order_relaxed);
  if (now_ms - last < 100 ||
      !last_miss_refresh_ms_.compare_exchange_strong(last, now_ms, std::memory_order_relaxed)) {
    return who;
  }
  if (!keys_->TryReload().ok()) return who;  // busy, or failing: the refresher logs that
  return keys_->Authenticate(credentials, now);
}

StatusOr<Principal> Authenticator::VerifyToken(std::string_view token, int64_t now) const {
  const Digest digest = DigestOf(token);
  TokenCache::Shard& shard = tokens_->shards[DigestHash()(digest) % TokenCache::kShards];
  {
    std::lock_guard lock(shard.mu);
    auto it = shard.entries.find(digest);
    if (it != shard.entries.end() && now < it->second.until) return it->second.who;
  }
  VIGIL_ASSIGN_OR_RETURN(JwtClaims claims, jwt_->Verify(token, now));
  Principal p;
  // "jwt:" + the subject: never a key's id nor another actor's name ("cli:...", "signal"), so a
  // token cannot take a key's limits or pass for it in the audit log.
  p.id = "jwt:" + (claims.subject.empty() ? std::string("-") : claims.subject);
  p.method = "jwt";
  for (const std::string& name : claims.roles) {
    if (auto role = ParseRole(name); role.ok()) p.roles = p.roles | *role;
  }
  std::lock_guard lock(shard.mu);
  if (shard.entries.size() >= TokenCache::kPerShard) {
    std::erase_if(shard.entries, [now](const auto& e) { return e.second.until <= now; });
    if (shard.entries.size() >= TokenCache::kPerShard) shard.entries.clear();
  }
  shard.entries[digest] = {p, std::min(claims.expires_at, now + TokenCache::kMaxSeconds)};
  return p;
}

StatusOr<std::string> Authenticator::EnsureAdminKey() {
  const int64_t now = NowSeconds();
  if (keys_->HasActiveAdmin(now)) return std::string();
  if (!keys_->Empty()) {
    // Only a new store gets a key by itself: once an operator has revoked every admin key (or
    // they expired), minting one silently would undo that. `vigil keys` on the host makes one.
    Log(LogLevel::kWarn,
        "no admin API key is valid: `vigil keys create --role admin --name NAME` on this host "
        "makes one");
    return std::string();
  }
  VIGIL_ASSIGN_OR_RETURN(KeyStore::Issued issued,
                         keys_->Create(Role::kAdmin, "admin (first start)", 0, now));
  const std::string path = (std::filesystem::path(data_dir_) / "admin.key").string();
  if (Status st = WriteFileAtomically(path, issued.secret + "\n", AtomicFile::Access::kOwnerOnly);
      !st.ok()) {
    (void)keys_->Revoke(issued.record.id, now);
    return Unavailable("cannot write the admin key file in the data dir: " + st.message());
  }
  Log(LogLevel::kWarn, "created the first admin API key",
      {{"id", issued.record.id}, {"file", path}});
  return issued.secret;
}

}  // namespace vigil::auth
