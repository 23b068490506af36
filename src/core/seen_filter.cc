#include "core/seen_filter.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/coding.h"
#include "core/hash.h"

namespace vigil {
namespace {

// The first byte of a saved filter: "seen filter, version 1". It names Hash and the block layout
// too: saved words are only meaningful to the hash and probes that set them.
constexpr uint8_t kFilterFormat = 0xB2;

constexpr size_t kBlockWords = 8;  // 512 bits: one cache line
constexpr uint64_t kBitsPerItem = 16;
// Odd multipliers, one per word of a block (those of the split block Bloom filter): the bit an
// item sets in word i is the top 6 bits of its low 32 hash bits times kSalt[i].
constexpr uint32_t kSalt[kBlockWords] = {0x47b6137bU, 0x44974d91U, 0x8824ad5bU, 0xa2b7289dU,
                                         0x705495c7U, 0x2df1424bU, 0x9efc4947U, 0x5c6bfb31U};

uint64_t BitInWord(uint64_t hash, size_t i) {
  return uint64_t{1} << ((static_cast<uint32_t>(hash) * kSalt[i]) >> 26);
}

}  // namespace

SeenFilter::SeenFilter(SeenFilterOptions options) : options_(options) {
  options_.first_capacity = std::max<uint64_t>(options_.first_capacity, 1);
  options_.max_capacity = std::max(options_.max_capacity, options_.first_capacity);
}

// 64-bit FNV-1a then a murmur3 finalizer: cheap for short ids, well mixed in every bit.
uint64_t SeenFilter::Hash(std::string_view item, std::string_view ns) {
  uint64_t h = Fnv1a64(item, Fnv1a64(ns));
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

SeenFilter::Generation SeenFilter::MakeGeneration(uint64_t capacity, int64_t time_us) {
  Generation g;
  const uint64_t blocks = std::bit_ceil(std::max<uint64_t>(
      capacity * kBitsPerItem / (64 * kBlockWords), 1));
  g.words.assign(blocks * kBlockWords, 0);
  g.capacity = capacity;
  g.first_us = g.last_us = time_us;
  return g;
}

void SeenFilter::Set(Generation& g, uint64_t hash) {
  const size_t blocks = g.words.size() / kBlockWords;
  uint64_t* block = g.words.data() + ((hash >> 32) & (blocks - 1)) * kBlockWords;
  for (size_t i = 0; i < kBlockWords; ++i) block[i] |= BitInWord(hash, i);
}

bool SeenFilter::Test(const Generation& g, uint64_t hash) {
  const size_t blocks = g.words.size() / kBlockWords;
  const uint64_t* block = g.words.data() + ((hash >> 32) & (blocks - 1)) * kBlockWords;
  uint64_t missing = 0;
  for (size_t i = 0; i < kBlockWords; ++i) missing |= ~block[i] & BitInWord(hash, i);
  return missing == 0;
}

void SeenFilter::Add(uint64_t hash, int64_t time_us) {
  if (generations_.empty()) {
    generations_.push_back(MakeGeneration(options_.first_capacity, time_us));
  } else {
    const Generation& g = generations_.back();
    const bool full = g.items >= g.capacity;
    const bool old = options_.span_us > 0 && time_us - g.first_us >= options_.span_us;
    if (full || old) {
      // Full: twice as large. Old: as large as the traffic it saw (within the limits).
      const uint64_t next = full ? g.capacity * 2 : std::bit_ceil(std::max<uint64_t>(g.items, 1));
      generations_.push_back(MakeGeneration(
          std::clamp(next, options_.first_capacity, options_.max_capacity), time_us));
    }
  }
  Generation& g = generations_.back();
  Set(g, hash);
  ++g.items;
  g.last_us = std::max(g.last_us, time_us);
}

bool SeenFilter::MayContain(uint64_t hash) const {
  // Newest first: a replay is most often of something recent.
  for (auto g = generations_.rbegin(); g != generations_.rend(); ++g) {
    if (Test(*g, hash)) return true;
  }
  return false;
}

uint64_t SeenFilter::ForgetBefore(int64_t time_us) {
  uint64_t forgotten = 0;
  std::erase_if(generations_, [&](const Generation& g) {
    if (g.last_us >= time_us) return false;
    forgotten += g.items;
    return true;
  });
  return forgotten;
}

uint64_t SeenFilter::items() const {
  uint64_t n = 0;
  for (const Generation& g : generations_) n += g.items;
  return n;
}

size_t SeenFilter::bytes() const {
  size_t n = 0;
  for (const Generation& g : generations_) n += g.words.size() * sizeof(uint64_t);
  return n;
}

// kFilterFormat, the number of generations; each: capacity, items (varints), first and last
// time (zigzag varints), the number of words (a varint) and the words (fixed64, little-endian).
void SeenFilter::Save(std::string* out) const {
  out->reserve(out->size() + 16 + bytes() + 40 * generations_.size());
  out->push_back(static_cast<char>(kFilterFormat));
  PutVarint(generations_.size(), out);
  for (const Generation& g : generations_) {
    PutVarint(g.capacity, out);
    PutVarint(g.items, out);
    PutSignedVarint(g.first_us, out);
    PutSignedVarint(g.last_us, out);
    PutVarint(g.words.size(), out);
    const size_t at = out->size();
    out->resize(at + g.words.size() * sizeof(uint64_t));
    std::memcpy(out->data() + at, g.words.data(), g.words.size() * sizeof(uint64_t));
  }
}

Status SeenFilter::Load(std::string_view bytes) {
  ByteReader in(bytes);
  if (in.Byte() != kFilterFormat || !in.ok()) {
    return InvalidArgument("not a seen-id filter of a format this build reads");
  }
  std::vector<Generation> loaded(in.Count(5 + kBlockWords * sizeof(uint64_t)));
  for (Generation& g : loaded) {
    g.capacity = in.Varint();
    g.items = in.Varint();
    g.first_us = in.SignedVarint();
    g.last_us = in.SignedVarint();
    const size_t words = in.Count(sizeof(uint64_t));
    if (!in.ok() || words < kBlockWords || !std::has_single_bit(words / kBlockWords) ||
        words % kBlockWords != 0 || g.capacity == 0 || g.last_us < g.first_us) {
      return InvalidArgument("a seen-id filter with a damaged generation");
    }
    g.words.resize(words);
    for (uint64_t& w : g.words) w = in.Fixed<uint64_t>();
  }
  if (!in.ok() || in.remaining() != 0) {
    return InvalidArgument("a seen-id filter of the wrong length");
  }
  generations_ = std::move(loaded);
  return Status::Ok();
}

}  // namespace vigil
