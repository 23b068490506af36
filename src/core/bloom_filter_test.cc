#include "core/bloom_filter.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <string_view>

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

std::string Saved(const BloomFilter& f) {
  std::string bytes;
  f.Save(&bytes);
  return bytes;
}

TEST(BloomFilterTest, LoadedFilterAnswersAsTheSavedOne) {
  BloomFilter f(1 << 16);
  for (int i = 0; i < 5000; ++i) f.Add("tx-" + std::to_string(i));
  const std::string bytes = Saved(f);
  EXPECT_EQ(bytes.size(), 1 + 3 + 1 + f.bytes()) << "format, bits (3 bytes), hashes, words";
  BloomFilter g(1 << 16);
  g.Add("something else");
  ASSERT_TRUE(g.Load(bytes).ok());
  EXPECT_EQ(Saved(g), bytes);
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(g.MayContain("tx-" + std::to_string(i))) << i;
  int positives = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string other = "other-" + std::to_string(i);
    ASSERT_EQ(g.MayContain(other), f.MayContain(other)) << other;
    positives += g.MayContain(other);
  }
  EXPECT_LT(positives, 2000) << "the words are the saved ones, not all ones";
  EXPECT_FALSE(g.MayContain("something else")) << "Load replaces the words";
}

TEST(BloomFilterTest, LoadRefusesGarbageAndOtherShapesAndKeepsTheFilter) {
  BloomFilter f(128, 3);
  f.Add("a");
  const std::string bytes = Saved(f);
  BloomFilter g(128, 3);
  g.Add("kept");
  const std::string before = Saved(g);
  auto refused = [&](std::string_view b) {
    const Status s = g.Load(b);
    return s.code() == StatusCode::kInvalidArgument && Saved(g) == before;
  };
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_TRUE(refused(std::string_view(bytes).substr(0, n))) << n << " bytes";
  }
  EXPECT_TRUE(refused(bytes + '\0')) << "trailing bytes";
  std::string wrong_format = bytes;
  wrong_format[0] = 'x';
  EXPECT_TRUE(refused(wrong_format));
  EXPECT_TRUE(refused(Saved(BloomFilter(256, 3)))) << "other bits";
  EXPECT_TRUE(refused(Saved(BloomFilter(128, 4)))) << "other hashes";
  EXPECT_TRUE(refused(std::string(bytes.size(), '\xff')));
  EXPECT_TRUE(g.MayContain("kept"));
  ASSERT_TRUE(g.Load(bytes).ok());
  EXPECT_TRUE(g.MayContain("a"));
}

// Saved filters hold the hash's values: if these bytes change, the hash (or the format) has
// changed, and kFilterFormat must change with it, or filters loaded from older snapshots would
// answer "never added" for ids they hold.
TEST(BloomFilterTest, FormatAndHashAreStable) {
  BloomFilter f(64, 2);
  f.Add("tx-1");
  std::string hex;
  for (char c : Saved(f)) {
    char buf[3];
    std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned char>(c));
    hex += buf;
  }
  // Format, 64 bits, 2 hashes, then the one word: "tx-1" set bits 21 and 38.
  EXPECT_EQ(hex,
            "b14002"
            "0000200040000000");
}

}  // namespace
}  // namespace vigil
