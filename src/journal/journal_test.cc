#include "journal/journal.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

namespace vigil {
namespace {

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "journal_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  JournalOptions Options() const {
    JournalOptions o;
    o.dir = dir_;
    return o;
  }
  static std::vector<std::string> ReadAll(Journal& j, uint64_t from = 1) {
    auto reader = j.Read(from);
    EXPECT_TRUE(reader.ok());
    std::vector<std::string> out;
    JournalEntry e;
    for (;;) {
      auto more = (*reader)->Next(&e);
      EXPECT_TRUE(more.ok()) << more.status().message();
      if (!more.ok() || !*more) break;
      out.emplace_back(e.payload);
    }
    return out;
  }

  std::string dir_;
};

TEST_F(JournalTest, AppendsReadsAndReopens) {
  {
    auto j = Journal::Open(Options());
    ASSERT_TRUE(j.ok()) << j.status().message();
    std::vector<std::string_view> recs = {"one", "two", ""};
    auto first = (*j)->Append(recs);
    ASSERT_TRUE(first.ok());
    EXPECT_EQ(*first, 1u);
    EXPECT_EQ((*j)->next_offset(), 4u);
    EXPECT_EQ(ReadAll(**j), (std::vector<std::string>{"one", "two", ""}));
    EXPECT_EQ(ReadAll(**j, 2), (std::vector<std::string>{"two", ""}));
    EXPECT_TRUE((*j)->Sync().ok());
  }
  JournalRecovery rec;
  auto j = Journal::Open(Options(), &rec);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(rec.records, 3u);
  EXPECT_EQ(rec.torn_tail_bytes, 0u);
  EXPECT_EQ((*j)->next_offset(), 4u);
  std::string_view four = "four";
  ASSERT_TRUE((*j)->Append({&four, 1}).ok());
  EXPECT_EQ(ReadAll(**j).back(), "four");
}

TEST_F(JournalTest, SecondOpenOfTheSameFolderIsRefused) {
  auto j = Journal::Open(Options());
  ASSERT_TRUE(j.ok());
  auto again = Journal::Open(Options());
  EXPECT_EQ(again.status().code(), StatusCode::kUnavailable);
}

TEST_F(JournalTest, RollsSegmentsAndDropsOldOnes) {
  JournalOptions o = Options();
  o.segment_bytes = 4096;
  auto j = Journal::Open(o);
  ASSERT_TRUE(j.ok());
  const std::string payload(500, 'x');
  for (int i = 0; i < 40; ++i) {
    std::string_view v = payload;
    ASSERT_TRUE((*j)->Append({&v, 1}, 1000 + i).ok());
  }
  EXPECT_GT((*j)->segments(), 4u);
  EXPECT_EQ(ReadAll(**j).size(), 40u);
  auto dropped = (*j)->DropBefore(20);
  ASSERT_TRUE(dropped.ok());
  EXPECT_GT(*dropped, 0u);
  EXPECT_LE((*j)->first_offset(), 20u);
  EXPECT_GT((*j)->first_offset(), 1u);
  EXPECT_EQ(ReadAll(**j, 20).size(), 21u);
  auto old = (*j)->DropOlderThan(2000);  // everything: all but the newest segment go
  ASSERT_TRUE(old.ok());
  EXPECT_EQ((*j)->segments(), 1u);
}

}  // namespace
}  // namespace vigil
