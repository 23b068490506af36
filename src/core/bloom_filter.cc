#include "core/bloom_filter.h"

#include <algorithm>
#include <bit>

#include "core/hash.h"

namespace vigil {
namespace {

// 64-bit FNV-1a then a murmur3 finalizer: cheap for short ids, well mixed in every bit. The
// filter lives in memory only, so the hash may change between releases.
uint64_t Hash(std::string_view s) {
  uint64_t h = Fnv1a64(s);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

}  // namespace

BloomFilter::BloomFilter(size_t bits, int hashes)
    : words_(std::bit_ceil(std::max<size_t>(bits, 64)) / 64),
      mask_(words_.size() * 64 - 1),
      hashes_(std::max(hashes, 1)) {}

// Kirsch and Mitzenmacher: probe i is h1 + i * h2, as good as k independent hashes.
void BloomFilter::Add(std::string_view item) {
  const uint64_t h = Hash(item);
  const uint64_t h1 = h, h2 = (h >> 32 | h << 32) | 1;
  for (int i = 0; i < hashes_; ++i) {
    const uint64_t bit = (h1 + static_cast<uint64_t>(i) * h2) & mask_;
    words_[bit >> 6] |= uint64_t{1} << (bit & 63);
  }
}

bool BloomFilter::MayContain(std::string_view item) const {
  const uint64_t h = Hash(item);
  const uint64_t h1 = h, h2 = (h >> 32 | h << 32) | 1;
  for (int i = 0; i < hashes_; ++i) {
    const uint64_t bit = (h1 + static_cast<uint64_t>(i) * h2) & mask_;
    if ((words_[bit >> 6] >> (bit & 63) & 1) == 0) return false;
  }
  return true;
}

}  // namespace vigil
