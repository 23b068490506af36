// For the store's tests: fresh folders per test, and a raw SQLite connection to the index file
// (what another process would see).
#ifndef VIGIL_STORE_STORE_TEST_UTIL_H_
#define VIGIL_STORE_STORE_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "vigil/store.h"

namespace vigil {

// A record with its fields set from `id`; `sequence` as given (the index binds it).
inline TransactionRecord MakeRecord(const std::string& id, int64_t sequence = 0) {
  TransactionRecord r;
  r.transaction_id = id;
  r.sequence = sequence;
  r.customer_id = "c-" + id;
  r.terminal_id = "t-" + id;
  r.amount = 12.5;
  r.timestamp = 1522540831;
  r.transaction_json = R"({"transaction_id":")" + id + R"(","amount":12.5})";
  r.score = 0.25;
  r.decision = "approve";
  r.anomaly_score = 0.5;
  r.model_name = "gbdt";
  r.model_version = "3";
  r.reply_json = R"({"transaction_id":")" + id + R"(","score":0.25})";
  r.latency_us = 42;
  r.recorded_at_us = 1700000000000000;
  return r;
}

// Runs SQL on an index file through a separate connection, as another process would.
class RawDb {
 public:
  explicit RawDb(const std::string& path, int busy_timeout_ms = 5000) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, busy_timeout_ms);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;
  void Exec(const std::string& sql) {
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << sql << ": " << (error ? error : "");
    sqlite3_free(error);
  }
  std::string QueryText(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return out;
  }
  int64_t QueryInt(const std::string& sql) { return std::stoll("0" + QueryText(sql)); }

 private:
  sqlite3* db_ = nullptr;
};

// A test fixture with fresh, empty folders, removed after the test unless it failed.
class FreshDirTest : public ::testing::Test {
 protected:
  std::string FreshDir(const std::string& name) {
    std::string dir = ::testing::TempDir() + "/vigil_" + prefix_ + name + "_" +
                      std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    dirs_.push_back(dir);
    return dir;
  }
  void TearDown() override {
    if (HasFailure()) return;
    std::error_code ec;
    for (const std::string& dir : dirs_) std::filesystem::remove_all(dir, ec);
  }
  explicit FreshDirTest(std::string prefix) : prefix_(std::move(prefix)) {}

 private:
  std::string prefix_;
  std::vector<std::string> dirs_;
};

}  // namespace vigil

#endif  // VIGIL_STORE_STORE_TEST_UTIL_H_
