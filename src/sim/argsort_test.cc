#include "sim/argsort.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

namespace vigil {
namespace {

// Expected permutations below are np.argsort(np.array(keys, dtype=np.int64), kind='quicksort')
// printed by /usr/bin/python3 with NumPy 1.24.2.

struct Case {
  const char* name;
  std::vector<int64_t> keys;
  std::vector<int64_t> perm;
};

TEST(ArgsortTest, MatchesNumpyOnSmallArrays) {
  const Case cases[] = {
      {"empty", {}, {}},
      {"one", {5}, {0}},
      // 11 elements: insertion sort only, which keeps ties in order.
      {"small ties", {3, 1, 2, 1, 3, 0, 2, 1, 3, 0, 1}, {5, 9, 1, 3, 7, 10, 2, 6, 0, 4, 8}},
      // 16 equal elements: still insertion sort; 17: one partition step, ties reordered.
      {"16 equal",
       std::vector<int64_t>(16, 7),
       {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},
      {"17 equal",
       std::vector<int64_t>(17, 7),
       {0, 14, 13, 12, 11, 10, 9, 15, 8, 6, 5, 4, 3, 2, 1, 7, 16}},
      {"17 ties",  // (i * i) % 3
       {0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1},
       {0, 3, 12, 6, 15, 9, 14, 13, 11, 10, 8, 5, 4, 2, 1, 7, 16}},
      {"40 ties",  // (i * 7 + 3) % 5
       {3, 0, 2, 4, 1, 3, 0, 2, 4, 1, 3, 0, 2, 4, 1, 3, 0, 2, 4, 1,
        3, 0, 2, 4, 1, 3, 0, 2, 4, 1, 3, 0, 2, 4, 1, 3, 0, 2, 4, 1},
       {1,  36, 31, 6,  26, 21, 16, 11, 19, 34, 29, 24, 14, 39, 4,  9,  12, 37, 2,  32,
        27, 22, 7,  17, 0,  15, 25, 10, 35, 5,  30, 20, 3,  23, 28, 38, 13, 8,  33, 18}},
      {"40 equal",
       std::vector<int64_t>(40, 7),
       {0,  22, 23, 24, 25, 26, 27, 28, 21, 29, 31, 32, 33, 34, 35, 36, 37, 30, 20, 19,
        18, 1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 38, 39}},
      // Median-of-3 killer: an input McIlroy's adversary ("A killer adversary for quicksort")
      // built against this algorithm, halved (integer division) to create ties. It exhausts the
      // depth limit (2 * floor(log2(100)) = 12), so part of it goes through the heapsort.
      {"heapsort fallback",
       {0,  37, 1,  37, 2,  36, 3,  36, 4,  35, 5,  35, 6,  34, 7,  34, 8,  33, 9,  33,
        10, 32, 11, 32, 12, 13, 50, 48, 49, 48, 47, 47, 46, 46, 45, 45, 44, 44, 43, 43,
        42, 42, 41, 41, 40, 40, 39, 39, 38, 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
        11, 12, 31, 31, 30, 30, 29, 29, 28, 28, 27, 27, 26, 26, 25, 25, 24, 24, 23, 23,
        22, 22, 21, 21, 20, 20, 19, 19, 18, 18, 17, 17, 16, 16, 15, 15, 14, 14, 38, 13},
       {0,  49, 2,  50, 4,  51, 6,  52, 8,  53, 10, 54, 12, 55, 14, 56, 16, 57, 18, 58,
        20, 59, 22, 60, 24, 61, 99, 25, 96, 97, 95, 94, 92, 93, 90, 91, 88, 89, 86, 87,
        85, 84, 83, 82, 81, 80, 79, 78, 77, 76, 75, 74, 72, 73, 71, 70, 69, 68, 67, 66,
        65, 64, 63, 62, 23, 21, 19, 17, 13, 15, 11, 9,  7,  5,  3,  1,  98, 48, 47, 46,
        45, 44, 43, 42, 40, 41, 39, 38, 37, 36, 35, 34, 32, 33, 31, 30, 29, 27, 28, 26}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(NumpyArgsort(c.keys), c.perm) << c.name;
  }
}

TEST(ArgsortTest, SortedAndReverseSorted) {
  std::vector<int64_t> keys(40);
  std::iota(keys.begin(), keys.end(), 0);
  std::vector<int64_t> identity = keys;
  EXPECT_EQ(NumpyArgsort(keys), identity);
  std::reverse(keys.begin(), keys.end());
  std::vector<int64_t> reversed = identity;
  std::reverse(reversed.begin(), reversed.end());
  EXPECT_EQ(NumpyArgsort(keys), reversed);
}

// sum(i * perm[i]) mod 2^61, computed in Python with arbitrary-precision integers.
uint64_t Checksum(const std::vector<int64_t>& perm) {
  constexpr unsigned __int128 kMod = static_cast<unsigned __int128>(1) << 61;
  unsigned __int128 sum = 0;
  for (size_t i = 0; i < perm.size(); ++i) {
    sum = (sum + static_cast<unsigned __int128>(i) * static_cast<uint64_t>(perm[i])) % kMod;
  }
  return static_cast<uint64_t>(sum);
}

bool IsSortedPermutation(const std::vector<int64_t>& keys, const std::vector<int64_t>& perm) {
  std::vector<bool> seen(keys.size(), false);
  for (size_t i = 0; i < perm.size(); ++i) {
    if (perm[i] < 0 || perm[i] >= static_cast<int64_t>(keys.size()) || seen[perm[i]]) return false;
    seen[perm[i]] = true;
    if (i > 0 && keys[perm[i - 1]] > keys[perm[i]]) return false;
  }
  return perm.size() == keys.size();
}

TEST(ArgsortTest, MatchesNumpyOnLargeArraysWithTies) {
  // Python: keys = [(i * 7919) % 13 for i in range(5000)]
  std::vector<int64_t> few(5000);
  for (int64_t i = 0; i < 5000; ++i) few[i] = (i * 7919) % 13;
  std::vector<int64_t> perm = NumpyArgsort(few);
  ASSERT_TRUE(IsSortedPermutation(few, perm));
  EXPECT_EQ(Checksum(perm), 31221714707u);

  // Python: keys = [(i * 2654435761) % 100003 // 37 for i in range(200000)]
  std::vector<int64_t> many(200000);
  for (int64_t i = 0; i < 200000; ++i) many[i] = (i * 2654435761) % 100003 / 37;
  perm = NumpyArgsort(many);
  ASSERT_TRUE(IsSortedPermutation(many, perm));
  EXPECT_EQ(Checksum(perm), 2000077932982932u);
}

TEST(ArgsortTest, DependsOnlyOnHowKeysCompare) {
  // Seconds since the start, epoch seconds and epoch nanoseconds (what pandas sorts) give the
  // same permutation.
  std::vector<int64_t> since_start(20000), epoch(20000), nanos(20000);
  uint64_t x = 12345;
  for (size_t i = 0; i < since_start.size(); ++i) {
    x = x * 6364136223846793005u + 1442695040888963407u;
    since_start[i] = static_cast<int64_t>((x >> 33) % 30) * 86400 + 43200 +
                     static_cast<int64_t>((x >> 20) % 200);
    epoch[i] = 1522540800 + since_start[i];
    nanos[i] = epoch[i] * 1000000000;
  }
  std::vector<int64_t> perm = NumpyArgsort(since_start);
  ASSERT_TRUE(IsSortedPermutation(since_start, perm));
  EXPECT_EQ(NumpyArgsort(epoch), perm);
  EXPECT_EQ(NumpyArgsort(nanos), perm);
}

}  // namespace
}  // namespace vigil
