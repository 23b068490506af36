#include "auth/audit_log.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace vigil::auth {
namespace {

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "audit_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Write(int n, const std::string& actor = "key_a") {
    auto log = AuditLog::Open(dir_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    for (int i = 0; i < n; ++i) {
      (*log)->Record({actor, "key.create", "key_" + std::to_string(i), "ok", "10.0.0.1", ""});
    }
    ASSERT_TRUE((*log)->Flush().ok());
  }
  std::vector<std::string> Lines() {
    std::ifstream in(dir_ + "/audit.log");
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }
  void Rewrite(const std::vector<std::string>& lines) {
    std::ofstream out(dir_ + "/audit.log", std::ios::trunc);
    for (const auto& l : lines) out << l << "\n";
  }
  AuditVerification Verify() {
    auto v = AuditLog::Verify(dir_);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? *v : AuditVerification{};
  }

  std::string dir_;
};

TEST_F(AuditLogTest, EntriesAreChainedAcrossWritersAndRead) {
  Write(3);
  Write(2, "cli:root");  // another process appends to the same chain
  const auto lines = Lines();
  ASSERT_EQ(lines.size(), 5u);
  auto last = nlohmann::json::parse(lines[4]);
  EXPECT_EQ(last["seq"], 5);
  EXPECT_EQ(last["actor"], "cli:root");
  EXPECT_EQ(last["source"], "10.0.0.1");
  EXPECT_EQ(last["prev"], nlohmann::json::parse(lines[3])["hash"]);
  AuditVerification v = Verify();
  EXPECT_TRUE(v.intact) << v.problem;
  EXPECT_EQ(v.entries, 5u);
  auto log = AuditLog::Open(dir_);
  ASSERT_TRUE(log.ok());
  auto read = (*log)->Read(3, 10);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ(nlohmann::json::parse((*read)[0])["seq"], 4);
}

TEST_F(AuditLogTest, AnAlteredEntryIsFound) {
  Write(4);
  auto lines = Lines();
  const size_t at = lines[1].find("key_1");
  ASSERT_NE(at, std::string::npos);
  lines[1].replace(at, 5, "key_9");
  Rewrite(lines);
  AuditVerification v = Verify();
  EXPECT_FALSE(v.intact);
  EXPECT_EQ(v.entries, 1u);
  EXPECT_NE(v.problem.find("entry 2: altered"), std::string::npos) << v.problem;
}

TEST_F(AuditLogTest, ARemovedEntryIsFoundInTheMiddleAndAtTheEnd) {
  Write(4);
  auto lines = Lines();
  auto middle = lines;
  middle.erase(middle.begin() + 2);
  Rewrite(middle);
  AuditVerification v = Verify();
  EXPECT_FALSE(v.intact);
  EXPECT_NE(v.problem.find("entry 3: missing"), std::string::npos) << v.problem;
  auto end = lines;
  end.pop_back();
  Rewrite(end);
  v = Verify();
  EXPECT_FALSE(v.intact);
  EXPECT_NE(v.problem.find("entries 4 to 4 are missing from the end"), std::string::npos)
      << v.problem;
  Rewrite(lines);
  EXPECT_TRUE(Verify().intact);
}

TEST_F(AuditLogTest, AnEntryRewrittenWithAFreshHashBreaksTheNext) {
  Write(3);
  auto lines = Lines();
  // A forger who recomputes entry 2's hash still leaves entry 3 pointing at the old one.
  auto j = nlohmann::json::parse(lines[1]);
  j["outcome"] = "failed";
  lines[1] = j.dump();
  Rewrite(lines);
  AuditVerification v = Verify();
  EXPECT_FALSE(v.intact);
  EXPECT_EQ(v.entries, 1u);
}

TEST_F(AuditLogTest, FieldsAreCutAndTheFileIsTheOwnersOnly) {
  auto log = AuditLog::Open(dir_);
  ASSERT_TRUE(log.ok());
  (*log)->Record({"a", "auth.failed", "GET /x", "denied", "1.2.3.4", std::string(5000, 'd')});
  ASSERT_TRUE((*log)->Flush().ok());
  const auto lines = Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_LT(lines[0].size(), 1200u);
  EXPECT_EQ(
      std::filesystem::status(dir_ + "/audit.log").permissions() & std::filesystem::perms::all,
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_TRUE(Verify().intact);
}

// Entries cut from the end and then appended to would be anchored anew: the log refuses.
TEST_F(AuditLogTest, NothingIsAppendedToALogThatNoLongerMatchesItsAnchor) {
  Write(3);
  auto lines = Lines();
  lines.pop_back();
  Rewrite(lines);
  auto log = AuditLog::Open(dir_);
  ASSERT_TRUE(log.ok());
  (*log)->Record({"a", "auth.failed", "GET /x", "denied", "1.2.3.4", ""});
  Status st = (*log)->Flush();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("does not match its anchor"), std::string::npos) << st.message();
  EXPECT_EQ(Lines().size(), 2u);
  AuditVerification v = Verify();
  EXPECT_FALSE(v.intact);
  EXPECT_NE(v.problem.find("missing from the end"), std::string::npos) << v.problem;
}

TEST_F(AuditLogTest, AMissingAnchorIsABreak) {
  Write(2);
  std::filesystem::remove(dir_ + "/audit.anchor");
  AuditVerification v = Verify();
  EXPECT_FALSE(v.intact);
  EXPECT_NE(v.problem.find("anchor"), std::string::npos) << v.problem;
}

// A name from the command line may hold any bytes; the entry must still be JSON, and the chain
// must go on.
TEST_F(AuditLogTest, FieldsThatAreNotUtf8OrAreCutMidCharacterStayValid) {
  auto log = AuditLog::Open(dir_);
  ASSERT_TRUE(log.ok());
  std::string euros;
  for (int i = 0; i < 300; ++i) euros += "\xE2\x82\xAC";  // 900 bytes of U+20AC
  (*log)->Record({"cli:root", "key.create", "\xFF\xFEname\xC0\xAF", "ok", "local", euros});
  (*log)->Record({"cli:root", "key.revoke", "key_x", "ok", "local", ""});
  ASSERT_TRUE((*log)->Flush().ok());
  const auto lines = Lines();
  ASSERT_EQ(lines.size(), 2u);
  auto j = nlohmann::json::parse(lines[0], nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << lines[0];
  EXPECT_EQ(j["target"], "\xEF\xBF\xBD\xEF\xBF\xBDname\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(j["detail"].get<std::string>().size() % 3, 0u);  // whole characters only
  EXPECT_TRUE(Verify().intact);
}

}  // namespace
}  // namespace vigil::auth
