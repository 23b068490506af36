#include "core/seen_filter.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "core/hex_for_test.h"

namespace vigil {
namespace {

uint64_t H(std::string_view s) { return SeenFilter::Hash(s); }
uint64_t H(int i) { return SeenFilter::Hash("tx-" + std::to_string(i)); }

SeenFilterOptions Small(uint64_t first = 1000, int64_t span_us = 0, uint64_t max = 1 << 20) {
  return {.span_us = span_us, .first_capacity = first, .max_capacity = max};
}

TEST(SeenFilterTest, NeverForgetsWhatWasAddedAcrossGenerations) {
  SeenFilter f(Small(1000));
  for (int i = 0; i < 20000; ++i) f.Add(H(i), 1);
  for (int i = 0; i < 20000; ++i) ASSERT_TRUE(f.MayContain(H(i))) << i;
  // 1000, 2000, 4000, 8000, then 16000 holding the last 5000.
  EXPECT_EQ(f.generations(), 5u);
  EXPECT_EQ(f.items(), 20000u);
}

TEST(SeenFilterTest, FalsePositivesStayLowAsGenerationsFill) {
  SeenFilter f(Small(1 << 14));
  const int n = (1 << 14) * 15;  // fills 4 generations, the last one fully
  for (int i = 0; i < n; ++i) f.Add(H("L12345-1-" + std::to_string(i)), 1);
  ASSERT_EQ(f.generations(), 4u);
  int positives = 0;
  const int probes = 400000;
  for (int i = 0; i < probes; ++i) positives += f.MayContain(H("other-" + std::to_string(i)));
  const double rate = static_cast<double>(positives) / probes;
  // At 16 bits an item, 8 probes in a 512-bit block: about 0.05% a generation.
  EXPECT_LT(rate, 4 * 0.0015) << "at most ~0.15% for each of the 4 generations";
  EXPECT_GT(positives, 0) << "a Bloom filter, not an exact set: the test probes enough";
}

TEST(SeenFilterTest, EmptyContainsNothingAndNamespacesHashApart) {
  SeenFilter f;
  EXPECT_FALSE(f.MayContain(H("")));
  EXPECT_EQ(f.bytes(), 0u);
  f.Add(H(""), 1);
  EXPECT_TRUE(f.MayContain(H("")));
  EXPECT_EQ(f.bytes(), (size_t{1} << 20) * 16 / 8) << "1M items at 16 bits";
  EXPECT_NE(SeenFilter::Hash("abc"), SeenFilter::Hash("abc", "k:"));
  EXPECT_EQ(SeenFilter::Hash("k:abc"), SeenFilter::Hash("abc", "k:")) << "a prefix, hashed as one";
}

TEST(SeenFilterTest, AGenerationSpansAtMostTheSpanAndIsSizedByItsTraffic) {
  SeenFilter f(Small(/*first=*/64, /*span_us=*/100));
  for (int i = 0; i < 1000; ++i) f.Add(H(i), 10);
  const size_t by_count = f.generations();
  EXPECT_EQ(by_count, 5u) << "64 + 128 + 256 + 512 = 960, then a fifth";
  f.Add(H(5000), 110);  // the newest generation began at 10: 100 µs later, a new one
  EXPECT_EQ(f.generations(), by_count + 1);
  const size_t before = f.bytes();
  f.Add(H(5001), 300);
  EXPECT_EQ(f.generations(), by_count + 2);
  EXPECT_LT(f.bytes() - before, size_t{64} * 16 / 8 + 64)
      << "a generation that saw one item is followed by the smallest";
}

TEST(SeenFilterTest, ForgetBeforeDropsOnlyGenerationsWhollyOlder) {
  SeenFilter f(Small(64, /*span_us=*/100));
  for (int i = 0; i < 10; ++i) f.Add(H(i), 0);         // generation [0, 0]
  for (int i = 10; i < 20; ++i) f.Add(H(i), 150);      // [150, 199]
  f.Add(H(20), 199);
  for (int i = 30; i < 40; ++i) f.Add(H(i), 300);      // [300, 300]
  ASSERT_EQ(f.generations(), 3u);
  EXPECT_EQ(f.ForgetBefore(0), 0u) << "nothing older than 0";
  EXPECT_EQ(f.ForgetBefore(199), 10u) << "only the first: the second's newest is at 199";
  EXPECT_EQ(f.generations(), 2u);
  EXPECT_FALSE(f.MayContain(H(3)));
  EXPECT_TRUE(f.MayContain(H(20)));
  EXPECT_EQ(f.ForgetBefore(1000), 21u);
  EXPECT_EQ(f.generations(), 0u);
  f.Add(H(1), 2000);
  EXPECT_TRUE(f.MayContain(H(1)));
}

std::string Saved(const SeenFilter& f) {
  std::string bytes;
  f.Save(&bytes);
  return bytes;
}

TEST(SeenFilterTest, LoadedFilterAnswersAsTheSavedOne) {
  SeenFilter f(Small(1000));
  for (int i = 0; i < 5000; ++i) f.Add(H(i), i);
  const std::string bytes = Saved(f);
  SeenFilter g(Small(1000));
  g.Add(H("something else"), 1);
  ASSERT_TRUE(g.Load(bytes).ok());
  EXPECT_EQ(Saved(g), bytes);
  EXPECT_EQ(g.generations(), f.generations());
  EXPECT_EQ(g.items(), 5000u);
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(g.MayContain(H(i))) << i;
  for (int i = 0; i < 20000; ++i) {
    const uint64_t other = H("other-" + std::to_string(i));
    ASSERT_EQ(g.MayContain(other), f.MayContain(other)) << i;
  }
  EXPECT_FALSE(g.MayContain(H("something else"))) << "Load replaces the generations";
  // The times came along: forgetting works on the loaded filter as on the saved one.
  EXPECT_EQ(g.ForgetBefore(1000), f.ForgetBefore(1000));
  EXPECT_EQ(Saved(g), Saved(f));
}

TEST(SeenFilterTest, LoadRefusesGarbageAndKeepsTheFilter) {
  SeenFilter f(Small(16));
  for (int i = 0; i < 40; ++i) f.Add(H(i), 5);
  const std::string bytes = Saved(f);
  SeenFilter g(Small(16));
  g.Add(H("kept"), 1);
  const std::string before = Saved(g);
  auto refused = [&](std::string_view b) {
    const Status s = g.Load(b);
    return s.code() == StatusCode::kInvalidArgument && Saved(g) == before;
  };
  for (size_t n = 0; n < bytes.size(); n += (n < 64 ? 1 : 37)) {
    EXPECT_TRUE(refused(std::string_view(bytes).substr(0, n))) << n << " bytes";
  }
  EXPECT_TRUE(refused(bytes + '\0')) << "trailing bytes";
  std::string wrong_format = bytes;
  wrong_format[0] = '\xb1';  // the single filter of earlier snapshots
  EXPECT_TRUE(refused(wrong_format));
  EXPECT_TRUE(refused(std::string(bytes.size(), '\xff')));
  EXPECT_TRUE(g.MayContain(H("kept")));
  ASSERT_TRUE(g.Load(bytes).ok());
  EXPECT_TRUE(g.MayContain(H(7)));
}

// Saved filters hold the hash's values and the probes' bits: if these bytes change, the hash,
// the probes or the format have changed, and kFilterFormat must change with them, or filters
// loaded from older snapshots would answer "never seen" for ids they hold.
TEST(SeenFilterTest, FormatHashAndProbesAreStable) {
  EXPECT_EQ(SeenFilter::Hash("tx-1"), 0xe4652f2eab748926ULL);
  SeenFilter f(Small(1));
  f.Add(H("tx-1"), 7);
  const std::string hex = HexOf(Saved(f));
  // Format, one generation of capacity 1 holding 1 item, first and last time 7 (zigzag 14),
  // 8 words (one block), then the words: one bit set in each.
  EXPECT_EQ(hex,
            "b2" "01" "01" "01" "0e" "0e" "08"
            "1000000000000000" "0002000000000000" "0008000000000000" "0000001000000000"
            "0000000000400000" "1000000000000000" "0080000000000000" "0800000000000000");
}

}  // namespace
}  // namespace vigil
