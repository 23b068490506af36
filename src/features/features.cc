#include "vigil/features.h"

#include <algorithm>
#include <charconv>
#include <string>

#include "core/coding.h"
#include "core/file_util.h"
#include "features/catalog.h"
#include "features/customer_windows.h"
#include "features/terminal_windows.h"
#include "vigil/time.h"

namespace vigil {
namespace {

// The features of the transaction alone (FeatureSource::kTransaction).
void ComputeTransactionFeatures(const TransactionView& tx, std::span<float> out) {
  out[Index(FeatureId::kAmount)] = static_cast<float>(tx.amount);
  out[Index(FeatureId::kWeekend)] = Weekday(tx.timestamp) >= 5 ? 1.0f : 0.0f;
  out[Index(FeatureId::kNight)] = HourOfDay(tx.timestamp) <= 6 ? 1.0f : 0.0f;
}

// The first byte of a saved state: its format ("feature state, version 1"). A change to the
// encoding of either half takes a new value.
constexpr uint8_t kStateFormat = 0xF1;

uint8_t SetCode(FeatureSet set) { return set == FeatureSet::kBook ? 0 : 1; }

}  // namespace

FeatureEngine::FeatureEngine(FeatureSet set, FeatureOptions options)
    : set_(set),
      options_(options),
      num_features_(static_cast<int>(NumFeatures(set))),
      customers_(std::make_unique<CustomerWindows>(set)),
      terminals_(std::make_unique<TerminalWindows>(options.label_delay_days)) {}

FeatureEngine::~FeatureEngine() = default;

void FeatureEngine::Compute(const TransactionView& tx, std::span<float> out) const {
  ComputeTransactionFeatures(tx, out);
  customers_->Compute(tx, out);
  terminals_->Compute(tx, out);
}

void FeatureEngine::Insert(const TransactionView& tx) {
  customers_->Insert(tx);
  terminals_->Insert(tx);
}

void FeatureEngine::Remove(const TransactionView& tx) {
  // The known-transactions table is the record that this very transaction was inserted. The
  // customer's events hold no ids: without that record, a view never inserted would take away
  // the event of another transaction of the customer with the same second and amount.
  if (terminals_->Remove(tx)) customers_->Remove(tx);
}

void FeatureEngine::Update(const TransactionView& tx, std::span<float> out) {
  ComputeTransactionFeatures(tx, out);
  customers_->Update(tx, out);
  terminals_->Update(tx, out);
}

Status FeatureEngine::AddLabel(int64_t transaction_id, bool fraud) {
  return terminals_->AddLabel(transaction_id, fraud);
}

// The state: kStateFormat, the set's code (a byte), label_delay_days (a signed varint), then
// CustomerWindows::Save and TerminalWindows::Save, and nothing after. Varints are LEB128 (a
// number takes one encoding only: no overlong forms), signed ones zigzag; fixed-width words
// are little-endian.
void FeatureEngine::Save(std::string* out) const {
  out->push_back(static_cast<char>(kStateFormat));
  out->push_back(static_cast<char>(SetCode(set_)));
  PutSignedVarint(options_.label_delay_days, out);
  customers_->Save(out);
  terminals_->Save(out);
}

Status FeatureEngine::Load(std::string_view bytes) {
  Clear();
  ByteReader in(bytes);
  const auto error = [&](const std::string& what) {
    Clear();
    return InvalidArgument("feature state: " + what + " (at byte " +
                           std::to_string(bytes.size() - in.remaining()) + " of " +
                           std::to_string(bytes.size()) + ")");
  };
  const uint8_t format = in.Byte();
  if (!in.ok() || format != kStateFormat) {
    return InvalidArgument("not a feature state of a format this build reads");
  }
  const uint8_t set = in.Byte();
  const int64_t delay = in.SignedVarint();
  if (!in.ok() || set > 1) return error("malformed header");
  if (set != SetCode(set_)) {
    const FeatureSet saved = set == 0 ? FeatureSet::kBook : FeatureSet::kAll;
    return InvalidArgument("feature state of feature set '" + std::string(FeatureSetName(saved)) +
                           "', but this engine computes '" + std::string(FeatureSetName(set_)) +
                           "'");
  }
  if (delay != options_.label_delay_days) {
    return InvalidArgument("feature state for a label delay of " + std::to_string(delay) +
                           " days, but this engine's is " +
                           std::to_string(options_.label_delay_days));
  }
  if (Status s = customers_->Load(&in); !s.ok()) return error(s.message());
  if (Status s = terminals_->Load(&in); !s.ok()) return error(s.message());
  if (in.remaining() != 0) return error("trailing bytes");
  return Status::Ok();
}

void FeatureEngine::Clear() {
  customers_ = std::make_unique<CustomerWindows>(set_);
  terminals_ = std::make_unique<TerminalWindows>(options_.label_delay_days);
}

FeatureMatrix ComputeFeatures(const Dataset& data, FeatureSet set, const FeatureOptions& options,
                              const std::function<void(double)>& progress) {
  FeatureEngine engine(set, options);
  FeatureMatrix m;
  m.names = FeatureNames(set);
  m.rows = data.size();
  m.values.resize(m.rows * m.cols());
  const int64_t delay = int64_t{options.label_delay_days} * kSecondsPerDay;
  size_t next_label = 0;
  const size_t report_every = std::max<size_t>(1, data.size() / 50);
  for (size_t i = 0; i < data.size(); ++i) {
    const int64_t t = data.timestamp[i];
    if (data.has_labels) {
      for (; next_label < i && data.timestamp[next_label] + delay <= t; ++next_label) {
        if (data.fraud[next_label]) {
          (void)engine.AddLabel(data.transaction_id[next_label], true);
        }
      }
    }
    engine.Update({data.transaction_id[i], t, data.customer_id[i], data.terminal_id[i],
                   data.amount[i]},
                  std::span<float>(m.values.data() + i * m.cols(), m.cols()));
    if (progress && i % report_every == 0) progress(static_cast<double>(i) / data.size());
  }
  if (progress) progress(1.0);
  return m;
}

Status WriteFeaturesCsv(const Dataset& data, const FeatureMatrix& matrix,
                        const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(auto file, AtomicFile::Create(path));
  std::string line = "transaction_id";
  for (const auto& n : matrix.names) line += "," + n;
  if (data.has_labels) line += ",fraud";
  line += "\n";
  file->Write(line);
  char buf[64];
  for (size_t i = 0; i < matrix.rows; ++i) {
    line.clear();
    line += std::to_string(data.transaction_id[i]);
    const float* row = matrix.row(i);
    for (size_t j = 0; j < matrix.cols(); ++j) {
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, row[j]);
      line += ',';
      line.append(buf, end);
    }
    if (data.has_labels) {
      line += data.fraud[i] ? ",1" : ",0";
    }
    line += '\n';
    file->Write(line);
  }
  return file->Commit();
}

}  // namespace vigil
