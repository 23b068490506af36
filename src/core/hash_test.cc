#include "core/hash.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace vigil {
namespace {

// The published test vectors (FNV's reference test suite, fnv-1a 64-bit).
static_assert(Fnv1a64("") == 0xcbf29ce484222325ull, "the offset basis");
static_assert(Fnv1a64("a") == 0xaf63dc4c8601ec8cull);
static_assert(Fnv1a64("foobar") == 0x85944171f73967e8ull);

TEST(Fnv1a64Test, PublishedVectors) {
  // At run time too, from non-constant strings.
  EXPECT_EQ(Fnv1a64(std::string()), 0xcbf29ce484222325ull);
  EXPECT_EQ(Fnv1a64(std::string("a")), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(Fnv1a64(std::string("foobar")), 0x85944171f73967e8ull);
  EXPECT_EQ(kFnv1a64OffsetBasis, 0xcbf29ce484222325ull);
}

TEST(Fnv1a64Test, NotTheHashWithTheTruncatedOffsetBasis) {
  // Three copies once started from 1469598103934665603 (the basis without its last digit).
  EXPECT_NE(Fnv1a64("a"), Fnv1a64("a", 1469598103934665603ull));
  EXPECT_NE(Fnv1a64(""), 1469598103934665603ull);
}

TEST(Fnv1a64Test, PiecesHashAsTheirConcatenation) {
  EXPECT_EQ(Fnv1a64("bar", Fnv1a64("foo")), Fnv1a64("foobar"));
  EXPECT_EQ(Fnv1a64("", Fnv1a64("foobar")), Fnv1a64("foobar"));
  EXPECT_EQ(Fnv1a64("foobar", Fnv1a64("")), Fnv1a64("foobar"));
  EXPECT_NE(Fnv1a64("barfoo"), Fnv1a64("foobar"));
}

TEST(Fnv1a64Test, HashesEveryByteIncludingNulAndHighBytes) {
  const std::string_view with_nul("a\0b", 3);
  EXPECT_NE(Fnv1a64(with_nul), Fnv1a64("ab"));
  EXPECT_NE(Fnv1a64(std::string_view("\0", 1)), Fnv1a64(""));
  // Bytes above 0x7f are mixed in as unsigned: 0xff, not a sign-extended -1.
  const uint64_t expected = (kFnv1a64OffsetBasis ^ 0xffu) * kFnv1a64Prime;
  EXPECT_EQ(Fnv1a64("\xff"), expected);
}

}  // namespace
}  // namespace vigil
