#include "core/file_util.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace vigil {
namespace {

class FileUtilTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("vigil_file_util_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

TEST_F(FileUtilTest, CommitWritesTheWholeFileAndNothingElse) {
  ASSERT_TRUE(WriteFileAtomically(Path("a.txt"), "hello\n").ok());
  auto read = ReadFile(Path("a.txt"));
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, "hello\n");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_),
                          std::filesystem::directory_iterator()),
            1);
}

TEST_F(FileUtilTest, AFileNeverCommittedLeavesNoTrace) {
  {
    auto f = AtomicFile::Create(Path("b.txt"));
    ASSERT_TRUE(f.ok());
    (*f)->Write("partial");
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(FileUtilTest, OwnerOnlyIsMode0600WhateverTheUmask) {
  const mode_t old = ::umask(0);
  const Status st = WriteFileAtomically(Path("secret"), "s\n", AtomicFile::Access::kOwnerOnly);
  const Status shared = WriteFileAtomically(Path("shared"), "s\n");
  ::umask(old);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(shared.ok());
  EXPECT_EQ(ModeOf(Path("secret")), 0600u);
  EXPECT_EQ(ModeOf(Path("shared")), 0666u);  // the umask's to decide
}

TEST_F(FileUtilTest, OwnerOnlyNeverWritesThroughALinkPlantedAtItsTemporaryName) {
  const std::string victim = Path("victim");
  ASSERT_TRUE(WriteFileAtomically(victim, "untouched").ok());
  const std::string temp = Path("secret") + ".tmp." + std::to_string(::getpid());
  ASSERT_EQ(::symlink(victim.c_str(), temp.c_str()), 0);
  ASSERT_TRUE(WriteFileAtomically(Path("secret"), "s\n", AtomicFile::Access::kOwnerOnly).ok());
  EXPECT_EQ(*ReadFile(victim), "untouched");
  EXPECT_EQ(*ReadFile(Path("secret")), "s\n");
  EXPECT_FALSE(std::filesystem::is_symlink(Path("secret")));
  EXPECT_EQ(ModeOf(Path("secret")), 0600u);
}

TEST_F(FileUtilTest, AFolderThatCannotBeWrittenIsNamed) {
  auto f = AtomicFile::Create(Path("no/such/folder/c.txt"), AtomicFile::Access::kOwnerOnly);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("cannot write"), std::string::npos) << f.status().message();
}

TEST_F(FileUtilTest, ReadFileRefusesFoldersAndFilesAboveTheLimit) {
  EXPECT_EQ(ReadFile(dir_.string()).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(WriteFileAtomically(Path("big"), std::string(100, 'x')).ok());
  EXPECT_EQ(ReadFile(Path("big"), 99).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(ReadFile(Path("big"), 100)->size(), 100u);
  EXPECT_EQ(ReadFile(Path("missing")).status().code(), StatusCode::kNotFound);
}

TEST(FileJobProgressTest, SaysHowFarTheJobGotAndHoldsItsTemporaryFile) {
  FileJobProgress job;
  job.rows_total.store(20);
  job.rows_done.store(7);
  EXPECT_EQ(job.StoppedAccount("p.csv"),
            "7 of 20 transactions scored; nothing was written to p.csv");
  EXPECT_EQ(job.TempPath(), "");
  job.SetTempPath("p.csv.tmp.1");
  EXPECT_EQ(job.TempPath(), "p.csv.tmp.1");
}

}  // namespace
}  // namespace vigil
