// The scoring API's request parsing: TransactionParser (simdjson On-Demand plus full validation)
// on a typical transaction, against the cost of the JSON parse alone.
//
//   Parse                  TransactionParser::Parse of one ~320-byte transaction (the fast path;
//                          allocs_per_op counts heap allocations per call, warm: expect 0)
//   SimdjsonFieldsOnly     simdjson On-Demand reading the same fields with no validation beyond
//                          what it does by itself: the floor DESIGN.md §6 measured (~141 ns)
//   NlohmannDom            nlohmann::json::parse of the same body (DESIGN.md §6: ~3,500 ns)
//   ParseMalformed         a body with a syntax error: fast path, then the nlohmann cold path
//   ParseBadFields         well-formed JSON with three field problems (the 400 reply's path)
//   ParseBatch/100         ParseBatch of 100 such transactions (items_per_second)
//
// Run: ./build/json_bench [--benchmark_filter=...] [--benchmark_repetitions=3]
// Note: Debian's libbenchmark is a debug build ("***WARNING*** Library was built as DEBUG"):
// that slows the harness, not the code under test.
#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/transaction_json.h"

// Counts heap allocations, to show the warm parse path makes none (counter allocs_per_op).
// GCC takes free() in the replaced operator delete for a mismatch with operator new; it is not.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<int64_t> g_allocations{0};
}  // namespace

void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace vigil {
namespace {

const std::string& TransactionBody() {
  static const std::string body =
      R"({"transaction_id":"8f14e45f-ceea-467f-a0e6-7c1b3c7a9d21","customer_id":"C-000184233",)"
      R"("terminal_id":"T-0000093812","amount":1234.56,"timestamp":"2024-05-01T12:34:56.789Z",)"
      R"("currency":"EUR","status":"submitted","metadata":{"channel":"ecommerce","mcc":"5411",)"
      R"("ip":"203.0.113.42","device":"ios-17.4","risk_hint":0.25,"recurring":false}})";
  return body;
}

void Parse(benchmark::State& state) {
  TransactionParser parser;
  Transaction tx;
  std::vector<FieldProblem> problems;
  const std::string& body = TransactionBody();
  if (!parser.Parse(body, &tx, &problems).ok()) state.SkipWithError("sample does not parse");
  const int64_t allocations_before = g_allocations.load();
  for (auto _ : state) {
    Status s = parser.Parse(body, &tx, &problems);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(tx.amount);
  }
  state.counters["allocs_per_op"] =
      benchmark::Counter(static_cast<double>(g_allocations.load() - allocations_before),
                         benchmark::Counter::kAvgIterations);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
  state.SetLabel(std::to_string(body.size()) + " bytes");
}
BENCHMARK(Parse);

void SimdjsonFieldsOnly(benchmark::State& state) {
  const simdjson::padded_string body(TransactionBody());
  simdjson::ondemand::parser parser;
  std::string id, customer, terminal, timestamp;
  for (auto _ : state) {
    auto doc = parser.iterate(body);
    double amount = 0;
    for (auto field : doc.get_object()) {
      std::string_view key = field.unescaped_key().value_unsafe();
      auto value = field.value();
      if (key == "transaction_id") {
        id = value.get_string().value_unsafe();
      } else if (key == "customer_id") {
        customer = value.get_string().value_unsafe();
      } else if (key == "terminal_id") {
        terminal = value.get_string().value_unsafe();
      } else if (key == "amount") {
        amount = value.get_double().value_unsafe();
      } else if (key == "timestamp") {
        timestamp = value.get_string().value_unsafe();
      }
    }
    benchmark::DoNotOptimize(amount);
    benchmark::DoNotOptimize(id.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(SimdjsonFieldsOnly);

void NlohmannDom(benchmark::State& state) {
  const std::string& body = TransactionBody();
  for (auto _ : state) {
    auto json = nlohmann::json::parse(body);
    benchmark::DoNotOptimize(json);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(NlohmannDom);

void ParseMalformed(benchmark::State& state) {
  std::string body = TransactionBody();
  body.insert(body.find("\"amount\"") + 9, "12,");  // "amount":12,1234.56 — a syntax error
  TransactionParser parser;
  Transaction tx;
  std::vector<FieldProblem> problems;
  for (auto _ : state) {
    Status s = parser.Parse(body, &tx, &problems);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(ParseMalformed);

void ParseBadFields(benchmark::State& state) {
  std::string body = TransactionBody();
  body.replace(body.find("1234.56"), 7, "\"1234.56\"");
  body.replace(body.find("56.789Z"), 7, "56.789");
  body.replace(body.find("EUR"), 3, "eur");
  TransactionParser parser;
  Transaction tx;
  std::vector<FieldProblem> problems;
  for (auto _ : state) {
    Status s = parser.Parse(body, &tx, &problems);
    benchmark::DoNotOptimize(s);
  }
  if (problems.size() != 3) state.SkipWithError("expected three problems");
}
BENCHMARK(ParseBadFields);

void ParseBatch(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  std::string body = "{\"transactions\":[";
  for (size_t i = 0; i < n; ++i) body += (i ? "," : "") + TransactionBody();
  body += "]}";
  TransactionParser parser;
  std::vector<Transaction> out;
  std::vector<FieldProblem> problems;
  if (!parser.ParseBatch(body, n, &out, &problems).ok()) state.SkipWithError("batch failed");
  for (auto _ : state) {
    Status s = parser.ParseBatch(body, n, &out, &problems);
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(ParseBatch)->Arg(100);

}  // namespace
}  // namespace vigil

BENCHMARK_MAIN();
