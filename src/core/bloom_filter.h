// A fixed-size Bloom filter of strings: "certainly never added" or "maybe added". The scoring
// service keeps every recorded transaction id in one, so that a new id (nearly every request)
// skips the store lookup that only a replay needs.
#ifndef VIGIL_CORE_BLOOM_FILTER_H_
#define VIGIL_CORE_BLOOM_FILTER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/status.h"

namespace vigil {

// Not thread-safe: the caller locks.
class BloomFilter {
 public:
  // `bits` is rounded up to a power of two (at least 64); `hashes` probes per item. With m bits,
  // k probes and n items the false-positive rate is about (1 - e^(-kn/m))^k: for k = 7, 1% at
  // n = m / 9.6. Past that it degrades gradually, and never gives a false negative.
  explicit BloomFilter(size_t bits, int hashes = 7);

  void Add(std::string_view item);
  // False: `item` was certainly never added. True: it probably was.
  bool MayContain(std::string_view item) const;

  size_t bits() const { return mask_ + 1; }
  size_t bytes() const { return words_.size() * sizeof(uint64_t); }

  // Appends the filter (its bits, hashes and words) to `out`, for a snapshot. The words are
  // only meaningful to a build with the same hash (bloom_filter.cc): changing the hash takes a
  // new format byte.
  void Save(std::string* out) const;
  // Replaces the words with those Save wrote. InvalidArgument, and the filter unchanged, when
  // the bytes are not a filter Save wrote, or one of another size or number of hashes than
  // this one (the caller's configuration decides those; a filter of another shape is rebuilt).
  Status Load(std::string_view bytes);

 private:
  std::vector<uint64_t> words_;
  size_t mask_;  // bits() - 1
  int hashes_;
};

}  // namespace vigil

#endif  // VIGIL_CORE_BLOOM_FILTER_H_
