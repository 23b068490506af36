#include "core/bloom_filter.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "core/coding.h"
#include "core/hash.h"

namespace vigil {
namespace {

// The first byte of a saved filter: "Bloom filter, version 1". It names the hash below too:
// a saved filter's words are only meaningful to the hash that set them.
constexpr uint8_t kFilterFormat = 0xB1;

// 64-bit FNV-1a then a murmur3 finalizer: cheap for short ids, well mixed in every bit. Saved
// filters (snapshots) hold its values: a change to it takes a new kFilterFormat, else a filter
// loaded from an older snapshot would answer "never added" for ids it holds.
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

// kFilterFormat, bits and hashes (varints), then the words (fixed64, little-endian).
void BloomFilter::Save(std::string* out) const {
  out->reserve(out->size() + 16 + bytes());
  out->push_back(static_cast<char>(kFilterFormat));
  PutVarint(bits(), out);
  PutVarint(static_cast<uint64_t>(hashes_), out);
  for (uint64_t w : words_) PutFixed(w, out);
}

Status BloomFilter::Load(std::string_view bytes) {
  ByteReader in(bytes);
  const uint8_t format = in.Byte();
  const uint64_t bits = in.Varint();
  const uint64_t hashes = in.Varint();
  if (!in.ok() || format != kFilterFormat) {
    return InvalidArgument("not a Bloom filter of a format this build reads");
  }
  if (bits != this->bits() || hashes != static_cast<uint64_t>(hashes_)) {
    return InvalidArgument("a Bloom filter of " + std::to_string(bits) + " bits and " +
                           std::to_string(hashes) + " hashes, but this one has " +
                           std::to_string(this->bits()) + " and " + std::to_string(hashes_));
  }
  if (in.remaining() != this->bytes()) {
    return InvalidArgument("a Bloom filter of " + std::to_string(in.remaining()) +
                           " bytes of words, but its size takes " + std::to_string(this->bytes()));
  }
  std::memcpy(words_.data(), bytes.data() + (bytes.size() - in.remaining()), this->bytes());
  return Status::Ok();
}

}  // namespace vigil
