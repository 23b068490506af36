#include "auth/rate_limiter.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>

namespace vigil::auth {
namespace {

constexpr double kNsPerSecond = 1e9;
// Beyond this many buckets a shard forgets the full ones (a bucket's first use starts it full).
constexpr size_t kMaxBucketsPerShard = 4096;

bool ParseNumber(std::string_view text, double* out) {
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && p == end && std::isfinite(*out) && *out > 0 && *out <= 1e9;
}

StatusOr<std::pair<std::string, std::string_view>> SplitSpec(std::string_view spec,
                                                             const char* example) {
  const size_t eq = spec.find('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == spec.size()) {
    return InvalidArgument("a limit is NAME=VALUE, NAME a role or a key id (e.g. " +
                           std::string(example) + ")");
  }
  std::string name(spec.substr(0, eq));
  if (!name.starts_with("key_") && !ParseRole(name).ok()) {
    return InvalidArgument("'" + name + "' is neither a role nor a key id (key_...)");
  }
  return std::make_pair(std::move(name), spec.substr(eq + 1));
}

}  // namespace

StatusOr<Rate> ParseRate(std::string_view text) {
  const size_t slash = text.find('/');
  Rate r;
  if (!ParseNumber(text.substr(0, slash), &r.per_second)) {
    return InvalidArgument("a rate is REQUESTS_PER_SECOND[/BURST], both positive (e.g. 100/250)");
  }
  r.burst = r.per_second;
  if (slash != std::string_view::npos && !ParseNumber(text.substr(slash + 1), &r.burst)) {
    return InvalidArgument("a rate is REQUESTS_PER_SECOND[/BURST], both positive (e.g. 100/250)");
  }
  r.burst = std::max(r.burst, 1.0);
  return r;
}

Status AddRateLimit(std::string_view spec, RateLimitOptions* out) {
  VIGIL_ASSIGN_OR_RETURN(auto parts, SplitSpec(spec, "scorer=1000/2000"));
  VIGIL_ASSIGN_OR_RETURN(Rate rate, ParseRate(parts.second));
  out->rate[parts.first] = rate;
  return Status::Ok();
}

Status AddConcurrencyLimit(std::string_view spec, RateLimitOptions* out) {
  VIGIL_ASSIGN_OR_RETURN(auto parts, SplitSpec(spec, "scorer=64"));
  int n = 0;
  const char* end = parts.second.data() + parts.second.size();
  auto [p, ec] = std::from_chars(parts.second.data(), end, n);
  if (ec != std::errc() || p != end || n < 1 || n > 1'000'000) {
    return InvalidArgument("a concurrency limit is a whole number of requests, 1 or more");
  }
  out->concurrency[parts.first] = n;
  return Status::Ok();
}

RateLimiter::RateLimiter(RateLimitOptions options) : options_(std::move(options)) {}
RateLimiter::~RateLimiter() = default;

RateLimiter::Shard& RateLimiter::ShardOf(std::string_view key) const {
  return shards_[std::hash<std::string_view>()(key) % kShards];
}

Rate RateLimiter::RateOf(const Principal& who) const {
  if (options_.rate.empty()) return {};
  if (auto it = options_.rate.find(who.id); it != options_.rate.end()) return it->second;
  Rate best;
  bool unlimited_role = false;
  for (Role r : kCallerRoles) {
    if (!who.roles.Has(r)) continue;
    auto it = options_.rate.find(std::string(RoleName(r)));
    if (it == options_.rate.end()) {
      unlimited_role = true;  // one of its roles has no limit: neither has it
    } else if (it->second.per_second > best.per_second) {
      best = it->second;
    }
  }
  return unlimited_role ? Rate{} : best;
}

int RateLimiter::ConcurrencyOf(const Principal& who) const {
  if (options_.concurrency.empty()) return 0;
  if (auto it = options_.concurrency.find(who.id); it != options_.concurrency.end()) {
    return it->second;
  }
  int best = 0;
  for (Role r : kCallerRoles) {
    if (!who.roles.Has(r)) continue;
    auto it = options_.concurrency.find(std::string(RoleName(r)));
    if (it == options_.concurrency.end()) return 0;
    best = std::max(best, it->second);
  }
  return best;
}

void RateLimiter::Refill(Bucket& b, const Rate& rate, int64_t now_ns, bool fresh) {
  if (fresh) {
    b.tokens = rate.burst;
  } else if (now_ns > b.last_ns) {
    b.tokens = std::min(rate.burst, b.tokens + static_cast<double>(now_ns - b.last_ns) /
                                                   kNsPerSecond * rate.per_second);
  }
  b.last_ns = std::max(b.last_ns, now_ns);
}

RateDecision RateLimiter::Admit(const Principal& who, int64_t now_ns) const {
  RateDecision d;
  const Rate rate = RateOf(who);
  if (rate.per_second <= 0) return d;
  d.limited = true;
  d.limit = rate.per_second;
  Shard& shard = ShardOf(who.id);
  std::lock_guard lock(shard.mu);
  if (shard.buckets.size() > kMaxBucketsPerShard) shard.buckets.clear();  // all near full
  auto [it, fresh] = shard.buckets.try_emplace(who.id);
  Bucket& b = it->second;
  Refill(b, rate, now_ns, fresh);
  if (b.tokens >= 1) {
    b.tokens -= 1;
  } else {
    d.allowed = false;
    d.retry_after =
        std::max<int64_t>(1, static_cast<int64_t>(std::ceil((1 - b.tokens) / rate.per_second)));
    d.why = "the rate limit of " + std::to_string(static_cast<int64_t>(rate.per_second)) +
            " requests per second for these credentials is spent";
  }
  d.remaining = static_cast<int64_t>(b.tokens);
  d.reset_seconds = static_cast<int64_t>(std::ceil((rate.burst - b.tokens) / rate.per_second));
  return d;
}

bool RateLimiter::Enter(const Principal& who, int* limit) const {
  const int max = ConcurrencyOf(who);
  *limit = max;
  if (max <= 0) return true;
  Shard& shard = ShardOf(who.id);
  std::lock_guard lock(shard.mu);
  int& n = shard.in_flight[who.id];
  if (n >= max) return false;
  ++n;
  return true;
}

void RateLimiter::Release(const Principal& who) const {
  if (ConcurrencyOf(who) <= 0) return;
  Shard& shard = ShardOf(who.id);
  std::lock_guard lock(shard.mu);
  auto it = shard.in_flight.find(who.id);
  if (it == shard.in_flight.end()) return;
  if (--it->second <= 0) shard.in_flight.erase(it);
}

bool RateLimiter::MayTry(std::string_view address, int64_t now_ns, int64_t* retry_after) const {
  const Rate& rate = options_.failures;
  if (rate.per_second <= 0 || failure_buckets_.load(std::memory_order_relaxed) == 0) return true;
  Shard& shard = failure_shards_[std::hash<std::string_view>()(address) % kShards];
  std::lock_guard lock(shard.mu);
  auto it = shard.buckets.find(std::string(address));
  if (it == shard.buckets.end()) return true;
  Refill(it->second, rate, now_ns, false);
  if (it->second.tokens >= rate.burst) {  // as good as new: forget it
    shard.buckets.erase(it);
    failure_buckets_.fetch_sub(1, std::memory_order_relaxed);
    return true;
  }
  if (it->second.tokens >= 1) return true;
  *retry_after = std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil((1 - it->second.tokens) / rate.per_second)));
  return false;
}

void RateLimiter::Failed(std::string_view address, int64_t now_ns) const {
  const Rate& rate = options_.failures;
  if (rate.per_second <= 0) return;
  Shard& shard = failure_shards_[std::hash<std::string_view>()(address) % kShards];
  std::lock_guard lock(shard.mu);
  if (shard.buckets.size() > kMaxBucketsPerShard) {
    // Forget the addresses whose buckets have refilled: they are as good as new. Those still
    // being refused stay, however many addresses an attacker uses.
    const size_t erased = std::erase_if(shard.buckets, [&](const auto& entry) {
      Bucket b = entry.second;
      Refill(b, rate, now_ns, false);
      return b.tokens >= rate.burst;
    });
    failure_buckets_.fetch_sub(erased, std::memory_order_relaxed);
  }
  auto [it, fresh] = shard.buckets.try_emplace(std::string(address));
  if (fresh) failure_buckets_.fetch_add(1, std::memory_order_relaxed);
  Refill(it->second, rate, now_ns, fresh);
  it->second.tokens = std::max(0.0, it->second.tokens - 1);
}

}  // namespace vigil::auth
