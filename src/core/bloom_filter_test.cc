#include "core/bloom_filter.h"

#include <gtest/gtest.h>

#include <string>

namespace vigil {
namespace {

TEST(BloomFilterTest, NeverForgetsWhatWasAdded) {
  BloomFilter f(1 << 16);
  for (int i = 0; i < 20000; ++i) f.Add("tx-" + std::to_string(i));
  for (int i = 0; i < 20000; ++i) EXPECT_TRUE(f.MayContain("tx-" + std::to_string(i))) << i;
}

TEST(BloomFilterTest, FalsePositivesNearTheory) {
  // m = 2^20 bits, k = 7, n = m / 9.6: about 1% false positives.
  BloomFilter f(1 << 20);
  const int n = (1 << 20) * 10 / 96;
  for (int i = 0; i < n; ++i) f.Add("L12345-1-" + std::to_string(i));
  int positives = 0;
  const int probes = 200000;
  for (int i = 0; i < probes; ++i) positives += f.MayContain("other-" + std::to_string(i));
  const double rate = static_cast<double>(positives) / probes;
  EXPECT_GT(rate, 0.004);
  EXPECT_LT(rate, 0.02);
}

TEST(BloomFilterTest, EmptyFilterContainsNothingAndSizesArePowersOfTwo) {
  BloomFilter f(1000);
  EXPECT_EQ(f.bits(), 1024u);
  EXPECT_EQ(f.bytes(), 128u);
  EXPECT_FALSE(f.MayContain(""));
  EXPECT_FALSE(f.MayContain("a"));
  f.Add("");
  EXPECT_TRUE(f.MayContain(""));
  EXPECT_EQ(BloomFilter(1).bits(), 64u);
}

}  // namespace
}  // namespace vigil
