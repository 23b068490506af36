// The pieces of the feature state's encoding (FeatureEngine::Save) that both halves share:
// the keys of a map in increasing order, and sorted sequences of times.
#ifndef VIGIL_FEATURES_STATE_CODING_H_
#define VIGIL_FEATURES_STATE_CODING_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/coding.h"

namespace vigil {

// Load accepts times within +-2^62 s (1.5e11 years) only, so that the window arithmetic on
// loaded times (t - ts, ts - horizon) cannot overflow for any plausible t.
inline constexpr int64_t kMaxStateTime = int64_t{1} << 62;
inline bool ValidStateTime(int64_t t) { return t >= -kMaxStateTime && t <= kMaxStateTime; }

// The entries of an unordered map as (key, value pointer) sorted by key, for an encoding that
// depends on the state alone, not on the map's history. The keys are copied out so that the
// sort compares within the vector rather than chasing the map's nodes.
template <typename Map>
std::vector<std::pair<typename Map::key_type, const typename Map::mapped_type*>> SortedByKey(
    const Map& map) {
  std::vector<std::pair<typename Map::key_type, const typename Map::mapped_type*>> entries;
  entries.reserve(map.size());
  for (const auto& [key, value] : map) entries.emplace_back(key, &value);
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return entries;
}

// Strictly increasing keys: the first as a signed varint, each next as its gap to the previous
// less one (so two equal keys cannot be written).
class KeyWriter {
 public:
  void Put(int64_t key, std::string* out) {
    if (first_) {
      PutSignedVarint(key, out);
    } else {
      PutVarint(static_cast<uint64_t>(key) - static_cast<uint64_t>(prev_) - 1, out);
    }
    first_ = false;
    prev_ = key;
  }

 private:
  bool first_ = true;
  int64_t prev_ = 0;
};

class KeyReader {
 public:
  // The next key; fails `in` when it would pass INT64_MAX.
  int64_t Read(ByteReader* in) {
    if (first_) {
      first_ = false;
      prev_ = in->SignedVarint();
      return prev_;
    }
    const uint64_t gap = in->Varint();
    if (gap >= static_cast<uint64_t>(INT64_MAX) - static_cast<uint64_t>(prev_)) {
      in->Fail();
      return 0;
    }
    prev_ = static_cast<int64_t>(static_cast<uint64_t>(prev_) + gap + 1);
    return prev_;
  }

 private:
  bool first_ = true;
  int64_t prev_ = 0;
};

// A sequence of items in non-decreasing time(item) (its count written apart): the first time
// as a signed varint, each next as its gap to the previous.
template <typename Seq, typename Time>
void PutSortedTimes(const Seq& items, Time time, std::string* out) {
  bool first = true;
  int64_t prev = 0;
  for (const auto& item : items) {
    const int64_t t = time(item);
    if (first) {
      PutSignedVarint(t, out);
    } else {
      PutVarint(static_cast<uint64_t>(t - prev), out);
    }
    first = false;
    prev = t;
  }
}

// Reads `n` times PutSortedTimes wrote, passing each to `emit`; fails `in` on a time out of
// ValidStateTime. Returns in->ok().
template <typename Emit>
bool ReadSortedTimes(ByteReader* in, size_t n, Emit&& emit) {
  int64_t prev = 0;
  for (size_t i = 0; i < n && in->ok(); ++i) {
    if (i == 0) {
      prev = in->SignedVarint();
      if (!ValidStateTime(prev)) in->Fail();
    } else {
      const uint64_t gap = in->Varint();
      if (gap > static_cast<uint64_t>(kMaxStateTime - prev)) {
        in->Fail();
      } else {
        prev += static_cast<int64_t>(gap);
      }
    }
    if (in->ok()) emit(prev);
  }
  return in->ok();
}

}  // namespace vigil

#endif  // VIGIL_FEATURES_STATE_CODING_H_
