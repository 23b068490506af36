// The set of transaction ids (and idempotency keys) the engine has seen, as Bloom filters:
// "certainly never seen" or "maybe seen". Nearly every request carries a new id, and the filter
// lets it skip the store lookup that only a replay needs.
//
// It is bounded by the retention window: items go into the newest of a series of generations,
// each a Bloom filter, and a generation is forgotten once every record it covers has been dropped
// by retention (the caller says when: ForgetBefore). A generation takes items until it is full
// (then the next is twice as large) or `span` old (then the next is sized by the traffic it
// saw), so memory follows the number of ids in the window, about 2-4 bytes each, and the false
// positive rate stays below about 0.1% per generation whatever the history.
//
// Each generation is a blocked Bloom filter (Putze, Sanders, Singler; the split block filter of
// Impala and Parquet): the 8 probes of an item fall in one 64-byte block, so a miss costs one
// cache line per generation rather than eight.
#ifndef VIGIL_CORE_SEEN_FILTER_H_
#define VIGIL_CORE_SEEN_FILTER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/status.h"

namespace vigil {

struct SeenFilterOptions {
  // A generation takes new items for at most this long (microseconds), so that retention can
  // forget history in steps of it; 0: only when full (nothing is ever forgotten by time).
  int64_t span_us = 0;
  // Items the first generation holds before the next begins (at 16 bits an item or more).
  uint64_t first_capacity = uint64_t{1} << 20;
  // The largest generation: 2^28 items take 512 MiB.
  uint64_t max_capacity = uint64_t{1} << 28;
};

// Not thread-safe: the caller locks.
class SeenFilter {
 public:
  explicit SeenFilter(SeenFilterOptions options = {});

  // The hash the filter keeps of `item`, prefixed by `ns` (a namespace: the same item under two
  // prefixes hashes apart). Stable across builds: saved filters hold these values, so a change
  // to it takes a new format byte (seen_filter.cc).
  static uint64_t Hash(std::string_view item, std::string_view ns = {});

  // Adds an item seen at `time_us` (microseconds since the epoch).
  void Add(uint64_t hash, int64_t time_us);
  // False: the item was certainly never added (or only to a generation since forgotten).
  bool MayContain(uint64_t hash) const;

  // Forgets the generations whose items were all added before `time_us`. Returns how many items
  // they held.
  uint64_t ForgetBefore(int64_t time_us);
  // Forgets everything.
  void Clear() { generations_.clear(); }

  size_t generations() const { return generations_.size(); }
  uint64_t items() const;
  size_t bytes() const;

  // Appends the generations (their sizes, times and words) to `out`, for a snapshot.
  void Save(std::string* out) const;
  // Replaces the generations with those Save wrote. InvalidArgument, and the filter unchanged,
  // when the bytes are not a filter Save wrote.
  Status Load(std::string_view bytes);

 private:
  struct Generation {
    std::vector<uint64_t> words;  // blocks of 8 words; a power of two of blocks
    uint64_t capacity = 0;        // items before the next generation begins
    uint64_t items = 0;
    int64_t first_us = 0, last_us = 0;  // when its first item was added; its newest
  };
  static Generation MakeGeneration(uint64_t capacity, int64_t time_us);
  static void Set(Generation& g, uint64_t hash);
  static bool Test(const Generation& g, uint64_t hash);

  SeenFilterOptions options_;
  std::vector<Generation> generations_;  // oldest first
};

}  // namespace vigil

#endif  // VIGIL_CORE_SEEN_FILTER_H_
