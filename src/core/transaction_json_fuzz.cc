// libFuzzer target over the request parser and validator (TransactionParser::Parse and
// ParseBatch). Besides crashes and sanitizer reports, it aborts when the parser breaks a promise:
//   - OK exactly when there are no problems, and every problem names a field or the body;
//   - a body Vigil accepts is JSON nlohmann::json accepts, and so is every stored `json` text;
//   - "malformed JSON" only for bodies nlohmann::json refuses (or that hold a NUL byte);
//   - accepted values keep the rules (amount in [0, 1e9], ids non-empty, ...), and the stored
//     `json` text parses again to the same transaction;
//   - the same body gives the same result, whatever the reused parser saw before;
//   - problem texts are valid UTF-8 (they go into a JSON reply).
//
// Build (tests/fuzz_test.sh does this):
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
//     -I include -I src src/core/transaction_json_fuzz.cc src/core/transaction_json.cc \
//     src/core/time.cc src/core/status.cc -lsimdjson -o /tmp/fuzz
// Run: /tmp/fuzz corpus/ -max_total_time=600 -rss_limit_mb=2048
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/transaction_json.h"

namespace {

void Check(bool ok, const char* what, std::string_view detail = {}) {
  if (ok) return;
  std::fprintf(stderr, "broken promise: %s\n%.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

bool IsUtf8(std::string_view s) {
  try {
    (void)nlohmann::json(std::string(s)).dump();  // throws type_error 316 on invalid UTF-8
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

void CheckProblems(const vigil::Status& s, const std::vector<vigil::FieldProblem>& problems,
                   bool accepted) {
  Check(s.ok() == problems.empty(), "OK exactly when no problems", s.ToString());
  Check(s.ok() || s.code() == vigil::StatusCode::kInvalidArgument, "failures are InvalidArgument",
        s.ToString());
  if (s.ok()) Check(accepted, "a body Vigil accepts is valid JSON");
  Check(IsUtf8(s.message()), "status message is UTF-8", s.message());
  for (const vigil::FieldProblem& p : problems) {
    Check(!p.problem.empty(), "problem text present", p.field);
    Check(IsUtf8(p.problem) && IsUtf8(p.field), "problem is UTF-8", p.problem);
    if (p.problem.starts_with("malformed JSON")) {
      Check(!accepted, "malformed only when nlohmann refuses", p.problem);
      Check(problems.size() == 1, "malformed JSON is the only problem");
    }
  }
}

void CheckTransaction(const vigil::Transaction& tx) {
  Check(!tx.transaction_id.empty() && !tx.customer_id.empty() && !tx.terminal_id.empty(),
        "ids present");
  Check(tx.amount >= 0 && tx.amount <= vigil::kMaxAmount, "amount in range");
  Check(tx.currency.empty() || tx.currency.size() == 3, "currency shape", tx.currency);
  Check(tx.customer_key >= 0 && tx.terminal_key >= 0, "keys non-negative");
  Check(tx.customer_key == vigil::IdKey(tx.customer_id), "customer key");
  nlohmann::json stored;
  try {
    stored = nlohmann::json::parse(tx.json);
  } catch (const nlohmann::json::exception& e) {
    Check(false, "stored json parses", tx.json);
  }
  Check(stored.is_object(), "stored json is an object", tx.json);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // One parser for the whole run, as a server thread holds one: buffer reuse is fuzzed too.
  static vigil::TransactionParser parser;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  // The reference: nlohmann::json, except that it takes a NUL byte for the end of input and so
  // accepts "{}\0junk"; a raw NUL is never valid JSON.
  const bool accepted = body.find('\0') == std::string_view::npos && nlohmann::json::accept(body);

  vigil::Transaction tx;
  std::vector<vigil::FieldProblem> problems;
  vigil::Status s = parser.Parse(body, &tx, &problems);
  CheckProblems(s, problems, accepted);
  if (s.ok()) {
    CheckTransaction(tx);
    // The stored text parses again to the same transaction.
    vigil::Transaction again;
    std::vector<vigil::FieldProblem> again_problems;
    Check(parser.Parse(tx.json, &again, &again_problems).ok(), "stored json parses again", tx.json);
    Check(again.transaction_id == tx.transaction_id && again.customer_id == tx.customer_id &&
              again.terminal_id == tx.terminal_id && again.amount == tx.amount &&
              again.timestamp == tx.timestamp && again.currency == tx.currency &&
              again.status == tx.status && again.json == tx.json,
          "stored json gives the same transaction", tx.json);
  }
  // Parsing is a function of the body alone, whatever came before (buffers are reused).
  vigil::Transaction second;
  std::vector<vigil::FieldProblem> second_problems;
  vigil::Status s2 = parser.Parse(body, &second, &second_problems);
  Check(
      s2.ok() == s.ok() && s2.message() == s.message() && second_problems.size() == problems.size(),
      "same body, same result", s2.message());

  std::vector<vigil::Transaction> batch;
  constexpr size_t kMaxItems = 4;
  s = parser.ParseBatch(body, kMaxItems, &batch, &problems);
  CheckProblems(s, problems, accepted);
  Check(problems.size() <= vigil::kMaxFieldProblems + 2, "problems capped");
  if (s.ok()) {
    Check(!batch.empty() && batch.size() <= kMaxItems, "batch size");
    for (const vigil::Transaction& item : batch) CheckTransaction(item);
  }
  return 0;
}
