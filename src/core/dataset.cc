#include "vigil/dataset.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <string_view>

#include "core/file_util.h"
#include "core/hash.h"
#include "vigil/time.h"

namespace vigil {

void Dataset::Reserve(size_t n) {
  transaction_id.reserve(n);
  timestamp.reserve(n);
  customer_id.reserve(n);
  terminal_id.reserve(n);
  amount.reserve(n);
  if (has_labels) {
    fraud.reserve(n);
    fraud_scenario.reserve(n);
  }
}

void Dataset::Append(int64_t id, int64_t ts, int64_t customer, int64_t terminal, double amt,
                     uint8_t is_fraud, uint8_t scenario) {
  transaction_id.push_back(id);
  timestamp.push_back(ts);
  customer_id.push_back(customer);
  terminal_id.push_back(terminal);
  amount.push_back(amt);
  if (has_labels) {
    fraud.push_back(is_fraud);
    fraud_scenario.push_back(scenario);
  }
}

Dataset Dataset::Slice(size_t begin, size_t end) const {
  std::vector<size_t> rows(end - begin);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = begin + i;
  return Select(rows);
}

Dataset Dataset::Select(const std::vector<size_t>& rows) const {
  Dataset out;
  out.has_labels = has_labels;
  out.Reserve(rows.size());
  for (size_t r : rows) {
    out.Append(transaction_id[r], timestamp[r], customer_id[r], terminal_id[r], amount[r],
               has_labels ? fraud[r] : 0, has_labels ? fraud_scenario[r] : 0);
  }
  return out;
}

size_t Dataset::LowerBound(int64_t t) const {
  return static_cast<size_t>(std::lower_bound(timestamp.begin(), timestamp.end(), t) -
                             timestamp.begin());
}

std::string Dataset::Fingerprint() const {
  // FNV-1a over the rows, each value's bytes as they lie in memory (little-endian on x86-64 and
  // AArch64): transaction_id, timestamp, customer_id, terminal_id, amount, then fraud if labelled.
  uint64_t h = kFnv1a64OffsetBasis;
  auto mix = [&h](const auto& value) {
    h = Fnv1a64({reinterpret_cast<const char*>(&value), sizeof value}, h);
  };
  for (size_t i = 0; i < size(); ++i) {
    mix(transaction_id[i]);
    mix(timestamp[i]);
    mix(customer_id[i]);
    mix(terminal_id[i]);
    mix(amount[i]);
    if (has_labels) mix(fraud[i]);
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string FormatDouble(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

namespace {

enum Column { kId, kTime, kCustomer, kTerminal, kAmount, kFraud, kScenario, kNumColumns };
constexpr const char* kColumnNames[kNumColumns] = {
    "transaction_id", "timestamp", "customer_id", "terminal_id", "amount", "fraud",
    "fraud_scenario"};

// Splits one CSV line on commas. Vigil's files hold no quoted fields; a quote is an error.
void SplitLine(std::string_view line, std::vector<std::string_view>* fields,
               std::vector<size_t>* offsets) {
  fields->clear();
  offsets->clear();
  size_t start = 0;
  while (true) {
    size_t comma = line.find(',', start);
    offsets->push_back(start);
    if (comma == std::string_view::npos) {
      fields->push_back(line.substr(start));
      return;
    }
    fields->push_back(line.substr(start, comma - start));
    start = comma + 1;
  }
}

}  // namespace

StatusOr<Dataset> ReadTransactionsCsv(const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  if (text.empty()) return InvalidArgument(path + ": the file is empty (expected a CSV header)");

  std::string_view rest(text);
  size_t line_no = 0;
  auto next_line = [&](std::string_view* line) {
    if (rest.empty()) return false;
    size_t nl = rest.find('\n');
    *line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
    ++line_no;
    return true;
  };

  std::string_view header;
  next_line(&header);
  std::vector<std::string_view> fields;
  std::vector<size_t> offsets;
  SplitLine(header, &fields, &offsets);
  int position[kNumColumns];
  std::fill(std::begin(position), std::end(position), -1);
  for (size_t i = 0; i < fields.size(); ++i) {
    std::string_view name = fields[i];
    if (name == "vendor_id") name = "terminal_id";
    for (int c = 0; c < kNumColumns; ++c) {
      if (name == kColumnNames[c]) position[c] = static_cast<int>(i);
    }
  }
  for (int c = kId; c <= kAmount; ++c) {
    if (position[c] < 0) {
      return InvalidArgument(path + ":1: missing column '" + kColumnNames[c] + "' (header is '" +
                             std::string(header) + "')");
    }
  }

  const size_t header_fields = fields.size();
  Dataset data;
  data.has_labels = position[kFraud] >= 0;
  data.Reserve(text.size() / 60);
  std::string_view line;
  while (next_line(&line)) {
    if (line.empty()) continue;
    SplitLine(line, &fields, &offsets);
    auto where = [&](int c) {
      return path + ":" + std::to_string(line_no) + ":" + std::to_string(offsets[position[c]] + 1) +
             ": " + kColumnNames[c] + ": ";
    };
    if (fields.size() != header_fields) {
      return InvalidArgument(path + ":" + std::to_string(line_no) + ": expected " +
                             std::to_string(header_fields) + " fields as in the header, found " +
                             std::to_string(fields.size()));
    }
    int64_t ints[kNumColumns] = {};
    for (int c : {kId, kCustomer, kTerminal, kFraud, kScenario}) {
      if (position[c] < 0) continue;
      std::string_view f = fields[position[c]];
      auto [p, ec] = std::from_chars(f.data(), f.data() + f.size(), ints[c]);
      if (ec != std::errc() || p != f.data() + f.size() || f.empty()) {
        return InvalidArgument(where(c) + "'" + std::string(f) + "' is not an integer");
      }
    }
    if (data.has_labels && ints[kFraud] != 0 && ints[kFraud] != 1) {
      return InvalidArgument(where(kFraud) + "'" + std::string(fields[position[kFraud]]) +
                             "' is not 0 or 1");
    }
    if (ints[kScenario] < 0 || ints[kScenario] > 255) {
      return InvalidArgument(where(kScenario) + "out of range 0..255");
    }
    std::string_view af = fields[position[kAmount]];
    double amount = 0;
    auto [ap, aec] = std::from_chars(af.data(), af.data() + af.size(), amount);
    if (aec != std::errc() || ap != af.data() + af.size() || af.empty()) {
      return InvalidArgument(where(kAmount) + "'" + std::string(af) + "' is not a number");
    }
    if (!std::isfinite(amount) || amount < 0) {
      return InvalidArgument(where(kAmount) + "'" + std::string(af) +
                             "' is not a finite, non-negative amount");
    }
    auto ts = ParseRfc3339(fields[position[kTime]]);
    if (!ts.ok()) return InvalidArgument(where(kTime) + ts.status().message());
    if (!data.timestamp.empty() && *ts < data.timestamp.back()) {
      return InvalidArgument(where(kTime) + "rows are not in time order ('" +
                             std::string(fields[position[kTime]]) + "' is before the previous row)");
    }
    data.Append(ints[kId], *ts, ints[kCustomer], ints[kTerminal], amount,
                static_cast<uint8_t>(ints[kFraud]), static_cast<uint8_t>(ints[kScenario]));
  }
  if (data.size() == 0) return InvalidArgument(path + ": no transactions after the header");
  return data;
}

Status WriteTransactionsCsv(const Dataset& data, const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(auto file, AtomicFile::Create(path));
  std::FILE* f = file->stream();
  std::fputs(data.has_labels
                 ? "transaction_id,timestamp,customer_id,terminal_id,amount,fraud,fraud_scenario\n"
                 : "transaction_id,timestamp,customer_id,terminal_id,amount\n",
             f);
  for (size_t i = 0; i < data.size(); ++i) {
    std::string ts = FormatRfc3339(data.timestamp[i]);
    std::string amt = FormatDouble(data.amount[i]);
    std::fprintf(f, "%lld,%s,%lld,%lld,%s", static_cast<long long>(data.transaction_id[i]),
                 ts.c_str(), static_cast<long long>(data.customer_id[i]),
                 static_cast<long long>(data.terminal_id[i]), amt.c_str());
    if (data.has_labels) std::fprintf(f, ",%d,%d", data.fraud[i], data.fraud_scenario[i]);
    std::fputc('\n', f);
  }
  return file->Commit();
}

}  // namespace vigil
