#include "core/transaction_json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace vigil {
namespace {

constexpr char kMinimal[] =
    R"({"transaction_id":"tx-1","customer_id":"c-7","terminal_id":"t-9","amount":12.5,)"
    R"("timestamp":"2024-05-01T12:00:00Z"})";

// The fields of a valid transaction with one of them replaced (or removed when value is empty).
std::string With(const std::string& key, const std::string& value) {
  nlohmann::ordered_json base = nlohmann::ordered_json::parse(kMinimal);
  std::string out = "{";
  bool replaced = false;
  for (auto& [k, v] : base.items()) {
    if (k == key) {
      replaced = true;
      if (value.empty()) continue;
      out += "\"" + k + "\":" + value + ",";
    } else {
      out += "\"" + k + "\":" + v.dump() + ",";
    }
  }
  if (!replaced && !value.empty()) out += "\"" + key + "\":" + value + ",";
  out.back() = '}';
  return out;
}

class TransactionParserTest : public ::testing::Test {
 protected:
  // Parses `body`, expecting success.
  Transaction Ok(const std::string& body) {
    Transaction tx;
    Status s = parser_.Parse(body, &tx, &problems_);
    EXPECT_TRUE(s.ok()) << body << "\n" << s.ToString();
    EXPECT_TRUE(problems_.empty());
    return tx;
  }
  // Parses `body`, expecting failure; returns the problems.
  std::vector<FieldProblem> Bad(const std::string& body) {
    Transaction tx;
    Status s = parser_.Parse(body, &tx, &problems_);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << body;
    EXPECT_FALSE(problems_.empty()) << body;
    message_ = s.message();
    return problems_;
  }
  // Expects exactly one problem, on `field`, and returns its text.
  std::string OneProblem(const std::string& body, const std::string& field) {
    std::vector<FieldProblem> p = Bad(body);
    EXPECT_EQ(p.size(), 1u) << body;
    if (p.empty()) return "";
    EXPECT_EQ(p[0].field, field) << body << "\n" << p[0].problem;
    return p[0].problem;
  }

  TransactionParser parser_;
  std::vector<FieldProblem> problems_;
  std::string message_;
};

TEST_F(TransactionParserTest, ParsesMinimalTransaction) {
  Transaction tx = Ok(kMinimal);
  EXPECT_EQ(tx.transaction_id, "tx-1");
  EXPECT_EQ(tx.customer_id, "c-7");
  EXPECT_EQ(tx.terminal_id, "t-9");
  EXPECT_EQ(tx.amount, 12.5);
  EXPECT_EQ(tx.timestamp, 1714564800);
  EXPECT_EQ(tx.currency, "");
  EXPECT_EQ(tx.status, "");
  EXPECT_EQ(tx.customer_key, IdKey("c-7"));
  EXPECT_EQ(tx.terminal_key, IdKey("t-9"));
  EXPECT_EQ(tx.json, kMinimal);
}

TEST_F(TransactionParserTest, ParsesFullTransactionKeepingUnknownFields) {
  const std::string body =
      "\n  {\"transaction_id\": 123456789, \"customer_id\": 42, \"terminal_id\": \"T\\u00e9-1\",\n"
      "   \"amount\": 1e2, \"timestamp\": \"2024-05-01T14:00:00.250+02:00\", \"currency\": "
      "\"EUR\",\n"
      "   \"status\": \"accepted\", \"metadata\": {\"channel\": \"web\", \"tags\": [1, 2.5, null, "
      "true, {\"deep\": []}]},\n   \"merchant_category\": \"5411\", \"risk\": {\"x\": -0.5e-3}}\n ";
  Transaction tx = Ok(body);
  EXPECT_EQ(tx.transaction_id, "123456789");
  EXPECT_EQ(tx.customer_id, "42");
  EXPECT_EQ(tx.customer_key, 42);
  EXPECT_EQ(tx.terminal_id, "T\xC3\xA9-1");
  EXPECT_EQ(tx.amount, 100.0);
  EXPECT_EQ(tx.timestamp, 1714564800);
  EXPECT_EQ(tx.currency, "EUR");
  EXPECT_EQ(tx.status, "accepted");
  // The object's own text, byte for byte, without the whitespace around it.
  EXPECT_EQ(tx.json, body.substr(3, body.size() - 5));
  auto stored = nlohmann::json::parse(tx.json);
  EXPECT_EQ(stored["merchant_category"], "5411");
  EXPECT_EQ(stored["metadata"]["channel"], "web");
}

TEST_F(TransactionParserTest, AcceptsEveryStatus) {
  for (const char* status : {"submitted", "accepted", "rejected"}) {
    EXPECT_EQ(Ok(With("status", std::string("\"") + status + "\"")).status, status);
  }
  EXPECT_EQ(Ok(With("status", "null")).status, "");
  EXPECT_EQ(Ok(With("currency", "null")).currency, "");
  Ok(With("metadata", "null"));
  Ok(With("metadata", "{}"));
}

TEST_F(TransactionParserTest, AcceptsVendorIdForTerminalId) {
  std::string body = With("terminal_id", "");
  body.back() = ',';
  Transaction tx = Ok(body + R"("vendor_id":"v-3"})");
  EXPECT_EQ(tx.terminal_id, "v-3");
  EXPECT_EQ(tx.terminal_key, IdKey("v-3"));
  // Both, equal (an integer and its string are the same text): fine.
  EXPECT_EQ(Ok(With("terminal_id", "55").substr(0, With("terminal_id", "55").size() - 1) +
               R"(,"vendor_id":"55"})")
                .terminal_key,
            55);
  // Both, different: a problem on vendor_id.
  std::string both = With("vendor_id", "\"other\"");
  EXPECT_EQ(OneProblem(both, "vendor_id"), "vendor_id must equal terminal_id when both are sent");
}

TEST_F(TransactionParserTest, ReportsEachMissingRequiredField) {
  EXPECT_EQ(OneProblem(With("transaction_id", ""), "transaction_id"), "transaction_id is required");
  EXPECT_EQ(OneProblem(With("customer_id", ""), "customer_id"), "customer_id is required");
  EXPECT_EQ(OneProblem(With("terminal_id", ""), "terminal_id"),
            "terminal_id is required (vendor_id is accepted instead)");
  EXPECT_EQ(OneProblem(With("amount", ""), "amount"), "amount is required");
  EXPECT_EQ(OneProblem(With("timestamp", ""), "timestamp"), "timestamp is required");
}

TEST_F(TransactionParserTest, ChecksIds) {
  EXPECT_EQ(OneProblem(With("transaction_id", "\"\""), "transaction_id"),
            "transaction_id must not be empty");
  EXPECT_EQ(OneProblem(With("customer_id", "1.5"), "customer_id"),
            "customer_id must be a string or an integer, not a number with a fraction or an "
            "exponent");
  EXPECT_EQ(OneProblem(With("customer_id", "1e3"), "customer_id"),
            "customer_id must be a string or an integer, not a number with a fraction or an "
            "exponent");
  EXPECT_EQ(OneProblem(With("terminal_id", "true"), "terminal_id"),
            "terminal_id must be a string or an integer, not a boolean");
  EXPECT_EQ(OneProblem(With("transaction_id", "null"), "transaction_id"),
            "transaction_id must be a string or an integer, not null");
  EXPECT_EQ(OneProblem(With("customer_id", R"({"id":1})"), "customer_id"),
            "customer_id must be a string or an integer, not an object");
  EXPECT_EQ(OneProblem(With("vendor_id", "[1]"), "vendor_id"),
            "vendor_id must be a string or an integer, not an array");
  // 128 characters is the limit, counted in characters, not bytes.
  Ok(With("transaction_id", "\"" + std::string(128, 'x') + "\""));
  std::string accented;
  for (int i = 0; i < 128; ++i) accented += "\xC3\xA9";
  EXPECT_EQ(Ok(With("transaction_id", "\"" + accented + "\"")).transaction_id.size(), 256u);
  EXPECT_EQ(
      OneProblem(With("transaction_id", "\"" + std::string(129, 'x') + "\""), "transaction_id"),
      "transaction_id must be at most 128 characters");
  // Negative and very long integers are ids too, kept as their text.
  EXPECT_EQ(Ok(With("customer_id", "-5")).customer_id, "-5");
  Transaction big = Ok(With("customer_id", "123456789012345678901234567890"));
  EXPECT_EQ(big.customer_id, "123456789012345678901234567890");
  EXPECT_EQ(big.customer_key, IdKey("123456789012345678901234567890"));
}

TEST(TransactionJsonTest, IdKeysAreTheIntegerOrAStableHash) {
  EXPECT_EQ(IdKey("0"), 0);
  EXPECT_EQ(IdKey("42"), 42);
  EXPECT_EQ(IdKey("123456789012345678"), 123456789012345678);
  EXPECT_EQ(IdKey("9223372036854775807"), INT64_MAX);
  // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c; the top bit is cleared.
  EXPECT_EQ(IdKey("a"), 0x2f63dc4c8601ec8cLL);
  for (const char* hashed : {"", "a", "c-7", "007", "-5", "9223372036854775808", "1.5", " 42"}) {
    EXPECT_GE(IdKey(hashed), 0) << hashed;
    EXPECT_EQ(IdKey(hashed), IdKey(std::string(hashed))) << hashed;
  }
  EXPECT_NE(IdKey("007"), 7);
  EXPECT_NE(IdKey("-5"), -5);
  EXPECT_NE(IdKey("c-7"), IdKey("c-8"));
}

TEST_F(TransactionParserTest, IntegerAndStringIdsShareKeys) {
  Transaction a = Ok(With("customer_id", "42"));
  Transaction b = Ok(With("customer_id", "\"42\""));
  EXPECT_EQ(a.customer_key, 42);
  EXPECT_EQ(b.customer_key, 42);
  EXPECT_EQ(a.customer_id, b.customer_id);
}

TEST_F(TransactionParserTest, ChecksAmount) {
  EXPECT_EQ(OneProblem(With("amount", "\"12.5\""), "amount"),
            "amount must be a number, not a string");
  EXPECT_EQ(OneProblem(With("amount", "null"), "amount"), "amount must be a number, not null");
  EXPECT_EQ(OneProblem(With("amount", "[1]"), "amount"), "amount must be a number, not an array");
  EXPECT_EQ(OneProblem(With("amount", "-0.01"), "amount"), "amount must not be negative");
  EXPECT_EQ(OneProblem(With("amount", "-1e400"), "amount"), "amount must not be negative");
  EXPECT_EQ(OneProblem(With("amount", "1000000000.5"), "amount"),
            "amount must be at most 1000000000");
  EXPECT_EQ(OneProblem(With("amount", "1e10"), "amount"), "amount must be at most 1000000000");
  EXPECT_EQ(OneProblem(With("amount", "1e400"), "amount"), "amount must be at most 1000000000");
  EXPECT_EQ(OneProblem(With("amount", "1" + std::string(400, '0')), "amount"),
            "amount must be at most 1000000000");
  EXPECT_EQ(Ok(With("amount", "1000000000")).amount, 1e9);
  EXPECT_EQ(Ok(With("amount", "0")).amount, 0.0);
  EXPECT_FALSE(std::signbit(Ok(With("amount", "-0.0")).amount));
  // Too small for a double: it would read as 0, which the client did not send.
  EXPECT_EQ(OneProblem(With("amount", "1e-400"), "amount"),
            "amount 1e-400 is too small to represent (it would be read as 0)");
  EXPECT_EQ(Ok(With("amount", "1e-300")).amount, 1e-300);
  EXPECT_EQ(Ok(With("amount", "0.1")).amount, 0.1);
  EXPECT_EQ(Ok(With("amount", "12345678.123456789012345678901234567890")).amount,
            12345678.123456789);
}

TEST_F(TransactionParserTest, NanAndInfinityAreNotJson) {
  for (const char* token :
       {"NaN", "nan", "Infinity", "-Infinity", "+1", ".5", "01", "1.", "0x10"}) {
    std::string problem = OneProblem(With("amount", token), "");
    EXPECT_TRUE(problem.starts_with("malformed JSON at line 1, column "))
        << token << ": " << problem;
  }
}

TEST_F(TransactionParserTest, ChecksTimestamp) {
  EXPECT_EQ(OneProblem(With("timestamp", "\"2024-05-01T12:00:00\""), "timestamp"),
            "timestamp '2024-05-01T12:00:00' has no time zone: add 'Z' for UTC or an offset such "
            "as +02:00");
  EXPECT_EQ(OneProblem(With("timestamp", "\"2023-02-30T12:00:00Z\""), "timestamp"),
            "timestamp '2023-02-30' is not a valid calendar date");
  EXPECT_EQ(OneProblem(With("timestamp", "\"2024-05-01T25:00:00Z\""), "timestamp"),
            "timestamp '2024-05-01T25:00:00Z' is not an RFC 3339 timestamp (time of day out of "
            "range)");
  // Sanity bounds: a payment in year 1 or 9999 is a client's bug.
  EXPECT_EQ(OneProblem(With("timestamp", "\"0001-01-01T00:00:00Z\""), "timestamp"),
            "timestamp must be between 2000-01-01T00:00:00Z and 2099-12-31T23:59:59Z (got "
            "'0001-01-01T00:00:00Z')");
  EXPECT_EQ(OneProblem(With("timestamp", "\"9999-12-31T23:59:59Z\""), "timestamp"),
            "timestamp must be between 2000-01-01T00:00:00Z and 2099-12-31T23:59:59Z (got "
            "'9999-12-31T23:59:59Z')");
  EXPECT_EQ(OneProblem(With("timestamp", "\"1999-12-31T23:59:59Z\""), "timestamp"),
            "timestamp must be between 2000-01-01T00:00:00Z and 2099-12-31T23:59:59Z (got "
            "'1999-12-31T23:59:59Z')");
  EXPECT_EQ(Ok(With("timestamp", "\"2000-01-01T00:00:00Z\"")).timestamp, 946684800);
  EXPECT_EQ(Ok(With("timestamp", "\"2099-12-31T23:59:59Z\"")).timestamp, 4102444799);
  EXPECT_EQ(OneProblem(With("timestamp", "\"yesterday\""), "timestamp"),
            "timestamp 'yesterday' is not an RFC 3339 timestamp (expected YYYY-MM-DDTHH:MM:SSZ)");
  EXPECT_EQ(OneProblem(With("timestamp", "1714564800"), "timestamp"),
            "timestamp must be an RFC 3339 string such as \"2024-05-01T12:00:00Z\", not a number");
  EXPECT_EQ(OneProblem(With("timestamp", "\"" + std::string(1000, '2') + "\""), "timestamp"),
            "timestamp must be an RFC 3339 timestamp such as \"2024-05-01T12:00:00Z\" (got 1000 "
            "bytes)");
  // A multi-byte character inside the date: the message quotes it whole (found by fuzzing).
  EXPECT_EQ(OneProblem(With("timestamp",
                            "\"2024-05-0\xDB\xAB"
                            "12:00:00Z\""),
                       "timestamp"),
            "timestamp '2024-05-0\xDB\xAB"
            "12:00:00Z' is not an RFC 3339 timestamp (bad date)");
  EXPECT_EQ(Ok(With("timestamp", "\"2024-02-29T00:00:00Z\"")).timestamp, 1709164800);
  EXPECT_EQ(Ok(With("timestamp", "\"2024-05-01T07:30:00-04:30\"")).timestamp, 1714564800);
}

TEST_F(TransactionParserTest, ChecksCurrencyStatusAndMetadata) {
  const std::string currency = "currency must be a string of 3 upper-case letters such as \"EUR\"";
  EXPECT_EQ(OneProblem(With("currency", "\"eur\""), "currency"), currency);
  EXPECT_EQ(OneProblem(With("currency", "\"EURO\""), "currency"), currency);
  EXPECT_EQ(OneProblem(With("currency", "978"), "currency"), currency + ", not a number");
  EXPECT_EQ(Ok(With("currency", "\"USD\"")).currency, "USD");
  const std::string status = R"(status must be one of "submitted", "accepted", "rejected")";
  EXPECT_EQ(OneProblem(With("status", "\"approved\""), "status"), status);
  EXPECT_EQ(OneProblem(With("status", "\"ACCEPTED\""), "status"), status);
  EXPECT_EQ(OneProblem(With("status", "false"), "status"), status + ", not a boolean");
  EXPECT_EQ(OneProblem(With("metadata", "[1,2]"), "metadata"),
            "metadata must be an object, not an array");
  EXPECT_EQ(OneProblem(With("metadata", "\"x\""), "metadata"),
            "metadata must be an object, not a string");
}

TEST_F(TransactionParserTest, ReportsAllProblemsTogetherInContractOrder) {
  std::vector<FieldProblem> p =
      Bad(R"({"status":"x","amount":"5","customer_id":"","extra":[1,{"a":null}]})");
  ASSERT_EQ(p.size(), 6u);
  EXPECT_EQ(p[0].field, "transaction_id");
  EXPECT_EQ(p[1].field, "customer_id");
  EXPECT_EQ(p[1].problem, "customer_id must not be empty");
  EXPECT_EQ(p[2].field, "terminal_id");
  EXPECT_EQ(p[3].field, "amount");
  EXPECT_EQ(p[4].field, "timestamp");
  EXPECT_EQ(p[5].field, "status");
  EXPECT_EQ(message_, "invalid transaction: transaction_id is required (and 5 more problems)");
}

TEST_F(TransactionParserTest, LastDuplicateKeyWins) {
  std::string body = kMinimal;
  body.pop_back();
  EXPECT_EQ(Ok(body + R"(,"amount":7})").amount, 7.0);
  // An earlier bad value is forgotten, a later bad one counts.
  // An overflowing amount replaced by a duplicate is still JSON nlohmann refuses (fuzzing).
  std::string overflow_first = With("amount", "1e999");
  overflow_first.pop_back();
  std::string problem = OneProblem(overflow_first + R"(,"amount":3})", "");
  EXPECT_NE(problem.find("number overflow parsing '1e999'"), std::string::npos) << problem;
  std::string bad_first = With("amount", "\"x\"");
  bad_first.pop_back();
  EXPECT_EQ(Ok(bad_first + R"(,"amount":3})").amount, 3.0);
  EXPECT_EQ(OneProblem(body + R"(,"amount":-3})", "amount"), "amount must not be negative");
  EXPECT_EQ(Ok(With("currency", "\"EUR\"").substr(0, With("currency", "\"EUR\"").size() - 1) +
               R"(,"currency":null})")
                .currency,
            "");
}

TEST_F(TransactionParserTest, KeysWithEscapesAreDecoded) {
  std::string body = With("amount", "");
  body.back() = ',';
  EXPECT_EQ(Ok(body + R"("am\u006funt":8})").amount, 8.0);
}

TEST_F(TransactionParserTest, MalformedJsonGivesLineAndColumn) {
  EXPECT_EQ(OneProblem(R"({"amount": 12.5,})", ""),
            "malformed JSON at line 1, column 17: syntax error while parsing object key - "
            "unexpected '}'; expected string literal");
  EXPECT_EQ(message_,
            "invalid transaction: malformed JSON at line 1, column 17: syntax error while parsing "
            "object key - unexpected '}'; expected string literal");
  // Line and column of the last byte read: here the newline that ended "tru".
  EXPECT_EQ(OneProblem("{\n  \"transaction_id\": \"a\",\n  \"amount\": tru\n}", ""),
            "malformed JSON at line 3, column 16: syntax error while parsing value - invalid "
            "literal; last read: '\"amount\": tru<U+000A>'");
  // Elsewhere, the same line and column as nlohmann::json's own message.
  const std::string multi = "{\n  \"a\": [1,\n    2,, 3]}";
  std::string problem = OneProblem(multi, "");
  EXPECT_TRUE(problem.starts_with("malformed JSON at line 3, column 7: ")) << problem;
  try {
    nlohmann::json parsed = nlohmann::json::parse(multi);
    ADD_FAILURE() << "nlohmann accepted it: " << parsed.dump();
  } catch (const nlohmann::json::parse_error& e) {
    EXPECT_NE(std::string(e.what()).find("line 3, column 7:"), std::string::npos) << e.what();
  }
  EXPECT_EQ(OneProblem("{", ""),
            "malformed JSON at line 1, column 2: syntax error while parsing object key - "
            "unexpected end of input; expected string literal");
}

TEST_F(TransactionParserTest, RejectsEveryKindOfMalformedJson) {
  std::string valid = kMinimal;
  valid.pop_back();
  const std::vector<std::string> bad = {
      "{",
      "{\"amount\":",
      R"({"transaction_id":"unterminated)",
      valid + "}}",
      valid + "} x",
      valid + "}{}",
      valid + ",}",
      valid + ",\"x\":[1,,2]}",
      valid + ",\"x\":[1 2]}",
      valid + ",\"x\":{\"a\" 1}}",
      valid + ",\"x\":{1:2}}",
      // On-Demand skips an unread string followed by ':' as a key (found by fuzzing).
      valid + ",\"x\":{\"a\":[1,\"b\":\"c\"}]}",
      valid + ",\"x\":{\"a\":\"b\":\"c\"}}",
      valid + ",\"x\":[\"b\":1]}",
      valid + ",\"currency\":\"EUR\":1}",
      R"({"transaction_id":"a":"b",)" + valid.substr(1) + "}",
      valid + ",\"x\":tru}",
      valid + ",\"x\":nul}",
      valid + ",\"x\":truex}",
      valid + ",\"x\":falsey}",
      valid + ",\"x\":\"bad \\x escape\"}",
      valid + ",\"x\":\"lone \\udc00 surrogate\"}",
      valid + ",\"x\":\"high \\ud800 alone\"}",
      valid + ",\"x\":\"\\u12\"}",
      valid + ",\"x\":\"tab\tinside\"}",
      valid + ",\"x\":\"invalid \xFF utf8\"}",
      valid + ",\"x\":\"\xC0\xAF\"}",
      valid + ",\"x\":01}",
      valid + ",\"x\":-}",
      valid + ",\"x\":1e}",
      valid + ",\"x\":1e400}",
      valid + ",\"x\":'single'}",
      valid + ",\"bad \\q key\":1}",
      valid + ",x:1}",
      valid + std::string("\0}", 2),
      std::string(kMinimal) + std::string(1, '\0'),
  };
  for (const std::string& body : bad) {
    // nlohmann takes a NUL byte for the end of input: it accepts "{}\0".
    if (body.find('\0') == std::string::npos) {
      ASSERT_FALSE(nlohmann::json::accept(body)) << "test input is valid JSON: " << body;
    }
    std::string problem = OneProblem(body, "");
    EXPECT_TRUE(problem.starts_with("malformed JSON at line 1, column ")) << body << "\n"
                                                                          << problem;
  }
}

TEST_F(TransactionParserTest, ProblemsAreValidUtf8EvenForBinaryInput) {
  std::string body = "{\"x\":\"" + std::string(500, '\xFF') + "\"}";
  std::string problem = OneProblem(body, "");
  nlohmann::json reply = {{"problem", problem}};
  EXPECT_NO_THROW((void)reply.dump());  // dump() throws on invalid UTF-8
  EXPECT_LT(problem.size(), 400u);
}

TEST_F(TransactionParserTest, RejectsBodiesThatAreNotObjects) {
  EXPECT_EQ(OneProblem("[1,2]", ""), "body must be a JSON object, not an array");
  EXPECT_EQ(OneProblem(std::string("[") + kMinimal + "]", ""),
            "body must be a JSON object, not an array");
  EXPECT_EQ(OneProblem("\"text\"", ""), "body must be a JSON object, not a string");
  EXPECT_EQ(OneProblem(" 42 ", ""), "body must be a JSON object, not a number");
  EXPECT_EQ(OneProblem("null", ""), "body must be a JSON object, not null");
  EXPECT_EQ(OneProblem("true", ""), "body must be a JSON object, not a boolean");
  EXPECT_TRUE(OneProblem("[1,2", "").starts_with("malformed JSON at line 1, column "));
  EXPECT_TRUE(OneProblem("nope", "").starts_with("malformed JSON at line 1, column "));
}

TEST_F(TransactionParserTest, RejectsEmptyBody) {
  EXPECT_EQ(OneProblem("", ""), "body is empty; expected a JSON object");
  EXPECT_EQ(OneProblem(" \n\t ", ""), "body is empty; expected a JSON object");
  EXPECT_EQ(OneProblem("\xEF\xBB\xBF", ""), "body is empty; expected a JSON object");
}

TEST_F(TransactionParserTest, IgnoresByteOrderMark) {
  Transaction tx = Ok(std::string("\xEF\xBB\xBF") + kMinimal);
  EXPECT_EQ(tx.json, kMinimal);
}

TEST_F(TransactionParserTest, BoundsNesting) {
  auto nested = [](int levels) {  // metadata holding objects down to total depth `levels`
    std::string open, close;
    for (int i = 2; i < levels; ++i) {
      open += "{\"a\":";
      close += "}";
    }
    return With("metadata", open + "{}" + close);
  };
  Ok(nested(kMaxJsonDepth));
  EXPECT_EQ(OneProblem(nested(kMaxJsonDepth + 1), ""),
            "JSON is nested more than 64 levels deep, which is not accepted");
  // Deep enough to break a recursive parser, and malformed too: the position wins.
  std::string deep(200000, '[');
  std::string problem = OneProblem(With("metadata", deep), "");
  EXPECT_TRUE(problem.starts_with("malformed JSON at line 1")) << problem;
  EXPECT_EQ(OneProblem(With("x", deep + std::string(200000, ']')), ""),
            "JSON is nested more than 64 levels deep, which is not accepted");
}

TEST_F(TransactionParserTest, HugeNumbersOutsideAmount) {
  // Big integers are JSON; numbers beyond a double's range are refused, as nlohmann does.
  Ok(With("x", std::string(300, '9')));
  Ok(With("metadata", "{\"n\":-0.000000000000000000000000000000001e-400}"));
  std::string problem = OneProblem(With("metadata", "{\"n\":1e999}"), "");
  EXPECT_NE(problem.find("number overflow parsing '1e999'"), std::string::npos) << problem;
  EXPECT_FALSE(nlohmann::json::accept(With("metadata", "{\"n\":1e999}")));
}

TEST_F(TransactionParserTest, ReusesItselfAcrossBodiesOfAnySize) {
  std::string big = With("metadata", "{\"blob\":\"" + std::string(200000, 'z') + "\"}");
  EXPECT_EQ(Ok(big).json.size(), big.size());
  Transaction tx = Ok(kMinimal);
  EXPECT_EQ(tx.json, kMinimal);
  // One Transaction reused: nothing of the previous transaction leaks into the next.
  Transaction reused;
  ASSERT_TRUE(parser_.Parse(With("currency", "\"EUR\""), &reused, &problems_).ok());
  EXPECT_EQ(reused.currency, "EUR");
  ASSERT_TRUE(parser_.Parse(kMinimal, &reused, &problems_).ok());
  EXPECT_EQ(reused.currency, "");
  EXPECT_FALSE(parser_.Parse("{", &reused, &problems_).ok());
  ASSERT_TRUE(parser_.Parse(kMinimal, &reused, &problems_).ok());
  EXPECT_TRUE(problems_.empty());
}

// --- batches --------------------------------------------------------------------------------

std::string Batch(const std::vector<std::string>& items, bool wrapped = true) {
  std::string out = wrapped ? "{\"transactions\": [" : "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out + (wrapped ? "]}" : "]");
}

TEST_F(TransactionParserTest, ParsesBatch) {
  std::string second = With("transaction_id", "\"tx-2\"");
  for (bool wrapped : {true, false}) {
    std::vector<Transaction> out;
    Status s = parser_.ParseBatch(Batch({kMinimal, second}, wrapped), 10, &out, &problems_);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].transaction_id, "tx-1");
    EXPECT_EQ(out[1].transaction_id, "tx-2");
    EXPECT_EQ(out[0].json, kMinimal);
    EXPECT_EQ(out[1].json, second);
  }
  // Other top-level keys are ignored; a reused vector shrinks.
  std::vector<Transaction> out(5);
  ASSERT_TRUE(
      parser_
          .ParseBatch("{\"request\":{\"id\":1},\"transactions\":[" + std::string(kMinimal) + "]}",
                      10, &out, &problems_)
          .ok());
  EXPECT_EQ(out.size(), 1u);
}

TEST_F(TransactionParserTest, BatchWithTooManyItems) {
  std::vector<Transaction> out;
  Status s = parser_.ParseBatch(Batch({kMinimal, kMinimal, kMinimal}), 2, &out, &problems_);
  EXPECT_FALSE(s.ok());
  ASSERT_EQ(problems_.size(), 1u);
  EXPECT_EQ(problems_[0].field, "transactions");
  EXPECT_EQ(problems_[0].problem,
            "transactions holds 3 transactions; at most 2 are accepted in one batch");
  // Items past the limit are still checked as JSON.
  s = parser_.ParseBatch(Batch({kMinimal, kMinimal, kMinimal, "[1,,]"}), 2, &out, &problems_);
  ASSERT_EQ(problems_.size(), 1u);
  EXPECT_TRUE(problems_[0].problem.starts_with("malformed JSON")) << problems_[0].problem;
}

TEST_F(TransactionParserTest, BatchItemProblemsArePrefixed) {
  std::vector<Transaction> out;
  Status s = parser_.ParseBatch(
      Batch({kMinimal, With("amount", "\"1\""), "7", With("timestamp", "")}), 10, &out, &problems_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  ASSERT_EQ(problems_.size(), 3u);
  EXPECT_EQ(problems_[0].field, "transactions[1].amount");
  EXPECT_EQ(problems_[0].problem, "amount must be a number, not a string");
  EXPECT_EQ(problems_[1].field, "transactions[2]");
  EXPECT_EQ(problems_[1].problem, "transactions[2] must be a JSON object, not a number");
  EXPECT_EQ(problems_[2].field, "transactions[3].timestamp");
  EXPECT_EQ(s.message(),
            "invalid batch: transactions[1]: amount must be a number, not a string (and 2 more "
            "problems)");
}

TEST_F(TransactionParserTest, BatchListsAtMostAHundredProblems) {
  std::vector<std::string> items(300, "{}");
  std::vector<Transaction> out;
  ASSERT_FALSE(parser_.ParseBatch(Batch(items), 1000, &out, &problems_).ok());
  ASSERT_EQ(problems_.size(), kMaxFieldProblems + 1);
  EXPECT_EQ(problems_.back().field, "");
  EXPECT_EQ(problems_.back().problem, "1400 more problems not listed");  // 300 × 5 − 100
}

TEST_F(TransactionParserTest, BatchShapeProblems) {
  std::vector<Transaction> out;
  auto one = [&](const std::string& body) {
    EXPECT_FALSE(parser_.ParseBatch(body, 10, &out, &problems_).ok()) << body;
    EXPECT_EQ(problems_.size(), 1u) << body;
    return problems_.empty() ? FieldProblem{} : problems_[0];
  };
  FieldProblem p = one(R"({"transactions": {"a": 1}})");
  EXPECT_EQ(p.field, "transactions");
  EXPECT_EQ(p.problem, "transactions must be an array, not an object");
  p = one(R"({"items": []})");
  EXPECT_EQ(p.field, "transactions");
  EXPECT_EQ(p.problem, "transactions is required: {\"transactions\": [...]}");
  p = one(kMinimal);
  EXPECT_EQ(p.field, "transactions");
  EXPECT_EQ(one("[]").problem, "transactions must hold at least one transaction");
  EXPECT_EQ(one(R"({"transactions": []})").problem,
            "transactions must hold at least one transaction");
  p = one("\"x\"");
  EXPECT_EQ(p.field, "");
  EXPECT_EQ(p.problem,
            "body must be a JSON object {\"transactions\": [...]} or an array, not a string");
  EXPECT_EQ(one("").problem, "body is empty; expected {\"transactions\": [...]}");
  p = one(R"({"transactions": [{"a":1},]})");
  EXPECT_EQ(p.field, "");
  EXPECT_TRUE(p.problem.starts_with("malformed JSON at line 1, column 27")) << p.problem;
  EXPECT_TRUE(out.empty());
}

// The queue path: the reference's producers write datetime.utcnow().isoformat() (no zone) and
// may leave the id out.
TEST_F(TransactionParserTest, QueueOptionsTakeZonelessTimestampsAsUtcAndADefaultId) {
  const std::string body =
      R"({"customer_id": "cust_001", "vendor_id": 17, "amount": 12.5, "status": "submitted",)"
      R"( "timestamp": "2018-04-01T00:00:31.123456"})";
  std::vector<FieldProblem> p = Bad(body);  // without the options, both are problems
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].field, "transaction_id");
  EXPECT_EQ(p[1].field, "timestamp");
  EXPECT_NE(p[1].problem.find("has no time zone"), std::string::npos) << p[1].problem;
  TransactionParseOptions queue;
  queue.zoneless_timestamps_are_utc = true;
  queue.default_transaction_id = "TQ1-7";
  Transaction tx;
  ASSERT_TRUE(parser_.Parse(body, &tx, &problems_, queue).ok()) << problems_.size();
  EXPECT_EQ(tx.transaction_id, "TQ1-7");
  EXPECT_EQ(tx.timestamp, 1522540831);
  EXPECT_EQ(tx.terminal_id, "17");
  // A zone still counts; an id sent wins over the default; a bad zone-less date is still bad.
  ASSERT_TRUE(parser_.Parse(R"({"transaction_id": "own", "customer_id": 1, "terminal_id": 2, "amount": 1,)"
                            R"( "timestamp": "2018-04-01T02:00:31+02:00"})",
                            &tx, &problems_, queue).ok());
  EXPECT_EQ(tx.transaction_id, "own");
  EXPECT_EQ(tx.timestamp, 1522540831);
  EXPECT_FALSE(parser_.Parse(R"({"customer_id": 1, "terminal_id": 2, "amount": 1, "timestamp": "1999-12-31T23:00:00"})",
                             &tx, &problems_, queue).ok());
  EXPECT_EQ(problems_[0].field, "timestamp");
  // The options last one call only.
  EXPECT_FALSE(parser_.Parse(body, &tx, &problems_).ok());
}

TEST_F(TransactionParserTest, ParsesQueuePushBodies) {
  std::vector<MessageText> out;
  bool batch = true;
  ASSERT_TRUE(parser_.ParseMessages(R"({"content": {"a": [1, 2]} , "message_type": "transaction"})", 10, &out,
                                    &problems_, &batch).ok());
  EXPECT_FALSE(batch);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].content, R"({"a": [1, 2]})");
  EXPECT_EQ(out[0].message_type, "transaction");
  ASSERT_TRUE(parser_.ParseMessages(
      R"({"messages": [{"content": 1}, {"content": "two", "x": 0}, {"content": null, "message_type": "n"},)"
      R"( {"content": [true,false]}], "other": {"ignored": 1}})", 10, &out, &problems_, &batch).ok());
  EXPECT_TRUE(batch);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].content, "1");
  EXPECT_EQ(out[1].content, "\"two\"");
  EXPECT_EQ(out[2].content, "null");
  EXPECT_EQ(out[2].message_type, "n");
  EXPECT_EQ(out[3].content, "[true,false]");
}

TEST_F(TransactionParserTest, RefusesBadQueuePushBodiesNamingTheField) {
  std::vector<MessageText> out;
  auto one = [&](const std::string& body) {
    Status s = parser_.ParseMessages(body, 2, &out, &problems_);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << body;
    EXPECT_TRUE(out.empty()) << body;
    return problems_.empty() ? FieldProblem{} : problems_[0];
  };
  EXPECT_EQ(one(R"({"message_type": "t"})").field, "content");
  EXPECT_EQ(one(R"({"content": 1, "message_type": 5})").field, "message_type");
  EXPECT_EQ(one(R"({"content": 1, "message_type": ")" + std::string(65, 'm') + "\"}").field, "message_type");
  EXPECT_EQ(one(R"({"messages": {}})").field, "messages");
  EXPECT_EQ(one(R"({"messages": []})").field, "messages");
  EXPECT_EQ(one(R"({"messages": [{"content": 1}, 2]})").field, "messages[1]");
  EXPECT_EQ(one(R"({"messages": [{"content": 1}, {"message_type": "x"}]})").field, "messages[1].content");
  FieldProblem p = one(R"({"messages": [{"content": 1}, {"content": 2}, {"content": 3}]})");
  EXPECT_EQ(p.field, "messages");
  EXPECT_NE(p.problem.find("at most 2"), std::string::npos) << p.problem;
  EXPECT_EQ(one(R"({"content": 1, "messages": [{"content": 2}]})").field, "");
  p = one(R"({"content": {"a": 1,}})");
  EXPECT_EQ(p.field, "");
  EXPECT_TRUE(p.problem.starts_with("malformed JSON at line 1")) << p.problem;
  EXPECT_EQ(one("[1]").field, "");
  EXPECT_EQ(one("").field, "");
  EXPECT_EQ(one(R"({"content": 1} x)").field, "");
}

}  // namespace
}  // namespace vigil
