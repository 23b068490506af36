#include "vigil/features.h"

#include <algorithm>
#include <charconv>

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

}  // namespace

FeatureEngine::FeatureEngine(FeatureSet set, FeatureOptions options)
    : set_(set),
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
