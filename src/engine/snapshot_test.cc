#include "engine/snapshot.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace vigil {
namespace {

namespace fs = std::filesystem;

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "snapshot_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(int64_t through) const {
    char name[32];
    std::snprintf(name, sizeof name, "%020lld.snap", static_cast<long long>(through));
    return dir_ + "/" + name;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  static void Write(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  }
  std::string dir_;
};

TEST_F(SnapshotTest, RoundTripsAndKeepsTheNewestTwo) {
  EXPECT_FALSE(LoadNewestSnapshot(dir_)->has_value());  // no folder yet
  for (int64_t t : {10, 20, 30}) {
    ASSERT_TRUE(WriteSnapshot(dir_, {t, {"features-" + std::to_string(t), "", "seen"}}).ok());
  }
  EXPECT_FALSE(fs::exists(Path(10)));
  EXPECT_TRUE(fs::exists(Path(20)));
  auto s = LoadNewestSnapshot(dir_);
  ASSERT_TRUE(s.ok() && s->has_value());
  EXPECT_EQ((*s)->through, 30);
  EXPECT_EQ((*s)->sections, (std::vector<std::string>{"features-30", "", "seen"}));
}

// A torn or damaged newest snapshot is never used: the one before it is, whatever the damage.
TEST_F(SnapshotTest, EveryTruncationAndEveryFlippedByteFallsBackToThePreviousOne) {
  ASSERT_TRUE(WriteSnapshot(dir_, {5, {"old state"}}).ok());
  ASSERT_TRUE(WriteSnapshot(dir_, {9, {"newer state, longer", "ids"}}).ok());
  const std::string good = Read(Path(9));
  for (size_t cut = 0; cut < good.size(); ++cut) {
    Write(Path(9), good.substr(0, cut));
    auto s = LoadNewestSnapshot(dir_);
    ASSERT_TRUE(s.ok() && s->has_value()) << cut;
    EXPECT_EQ((*s)->through, 5) << "cut at " << cut;
  }
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    Write(Path(9), bad);
    auto s = LoadNewestSnapshot(dir_);
    ASSERT_TRUE(s.ok() && s->has_value()) << i;
    EXPECT_EQ((*s)->through, 5) << "byte " << i;
    EXPECT_EQ((*s)->sections, std::vector<std::string>{"old state"});
  }
  Write(Path(9), good);
  EXPECT_EQ((*LoadNewestSnapshot(dir_))->through, 9);
}

TEST_F(SnapshotTest, ASnapshotRenamedToAnotherOffsetIsNotBelieved) {
  ASSERT_TRUE(WriteSnapshot(dir_, {7, {"x"}}).ok());
  fs::rename(Path(7), Path(8));
  EXPECT_FALSE(LoadNewestSnapshot(dir_)->has_value());
}

}  // namespace
}  // namespace vigil
