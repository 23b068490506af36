#include "store/record_codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace vigil {
namespace {

TransactionRecord Full() {
  TransactionRecord r;
  r.transaction_id = "tx-1";
  r.customer_id = "cust_001";
  r.terminal_id = "42";
  r.amount = 57.16;
  r.timestamp = 1522540831;
  r.transaction_json = R"({"transaction_id":"tx-1","amount":57.16})";
  r.score = 0.0123;
  r.decision = "review";
  r.anomaly_score = std::numeric_limits<double>::quiet_NaN();
  r.model_name = "gbdt";
  r.model_version = "0123456789ab";
  r.reply_json = R"({"transaction_id":"tx-1","score":0.0123})";
  r.latency_us = 87;
  r.recorded_at_us = 1700000000000001;
  r.idempotency_key = "key-\xff\x01";
  r.request_fingerprint = 0xfedcba9876543210ull;
  r.features = {1.5f, -0.0f, 3e38f};
  return r;
}

TEST(RecordCodecTest, RoundTripsEveryField) {
  const TransactionRecord in = Full();
  std::string bytes;
  EncodeRecord(in, &bytes);
  TransactionRecord out;
  ASSERT_TRUE(DecodeRecord(bytes, &out).ok());
  EXPECT_EQ(out.transaction_id, in.transaction_id);
  EXPECT_EQ(out.customer_id, in.customer_id);
  EXPECT_EQ(out.terminal_id, in.terminal_id);
  EXPECT_EQ(out.amount, in.amount);
  EXPECT_EQ(out.timestamp, in.timestamp);
  EXPECT_EQ(out.transaction_json, in.transaction_json);
  EXPECT_EQ(out.score, in.score);
  EXPECT_EQ(out.decision, in.decision);
  EXPECT_TRUE(std::isnan(out.anomaly_score));
  EXPECT_EQ(out.model_name, in.model_name);
  EXPECT_EQ(out.model_version, in.model_version);
  EXPECT_EQ(out.reply_json, in.reply_json);
  EXPECT_EQ(out.latency_us, in.latency_us);
  EXPECT_EQ(out.recorded_at_us, in.recorded_at_us);
  EXPECT_EQ(out.idempotency_key, in.idempotency_key);
  EXPECT_EQ(out.request_fingerprint, in.request_fingerprint);
  EXPECT_EQ(out.features, in.features);
  EXPECT_TRUE(std::signbit(out.features[1]));
}

TEST(RecordCodecTest, EveryTruncationAndTrailingBytesAreRefused) {
  std::string bytes;
  EncodeRecord(Full(), &bytes);
  TransactionRecord out;
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_EQ(DecodeRecord(bytes.substr(0, cut), &out).code(), StatusCode::kInvalidArgument)
        << cut;
  }
  EXPECT_EQ(DecodeRecord(bytes + "x", &out).code(), StatusCode::kInvalidArgument);
  std::string other_version = bytes;
  other_version[0] = 2;
  EXPECT_EQ(DecodeRecord(other_version, &out).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vigil
