#include "vigil/scorer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "model/explain.h"
#include "model/tree.h"

namespace vigil {

struct Scorer::Impl {
  ModelFile model;
  std::unique_ptr<Forest> forest;
  std::unique_ptr<Forest> anomaly;  // null when the model carries none
  std::unique_ptr<Explainer> explainer;
  std::vector<int> engine_index;  // model input j reads engine_row[engine_index[j]]
  bool is_anomaly_model = false;
};

Scorer::Scorer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Scorer::~Scorer() = default;

StatusOr<std::unique_ptr<Scorer>> Scorer::Create(ModelFile model, Kernel kernel,
                                                 ReasonsMethod reasons) {
  auto impl = std::make_unique<Impl>();
  const std::vector<std::string> engine_names = FeatureNames(FeatureSet::kAll);
  for (const std::string& name : model.feature_names) {
    auto it = std::find(engine_names.begin(), engine_names.end(), name);
    if (it == engine_names.end()) {
      return InvalidArgument("model feature '" + name +
                             "' is not a feature Vigil computes (see `vigil features --list`)");
    }
    impl->engine_index.push_back(static_cast<int>(it - engine_names.begin()));
  }
  if (model.label_delay_days < 1) {
    return InvalidArgument("model label_delay_days must be at least 1");
  }
  VIGIL_ASSIGN_OR_RETURN(impl->forest, Forest::FromModel(model, kernel));
  impl->is_anomaly_model = model.algo == Algorithm::kIsolationForest;
  if (!model.anomaly_json.empty()) {
    VIGIL_ASSIGN_OR_RETURN(Ensemble e,
                           ParseXGBoostJson(model.anomaly_json, model.feature_names.size()));
    if (e.link != Link::kIsolation) {
      return InvalidArgument("the model's anomaly section is not an isolation forest");
    }
    VIGIL_ASSIGN_OR_RETURN(impl->anomaly, Forest::FromEnsemble(std::move(e), kernel));
  }
  if (!impl->is_anomaly_model) {
    impl->explainer = std::make_unique<Explainer>(
        impl->forest->ensemble(), Explainer::kDefaultTableBudget,
        reasons == ReasonsMethod::kExact ? Explainer::Method::kExact : Explainer::Method::kFast);
  }
  impl->model = std::move(model);
  return std::unique_ptr<Scorer>(new Scorer(std::move(impl)));
}

StatusOr<std::unique_ptr<Scorer>> Scorer::Load(const std::string& path, Kernel kernel,
                                               ReasonsMethod reasons) {
  VIGIL_ASSIGN_OR_RETURN(ModelFile model, LoadModel(path));
  auto scorer = Create(std::move(model), kernel, reasons);
  if (!scorer.ok()) return scorer.status().WithContext("model file '" + path + "'");
  return scorer;
}

const ModelFile& Scorer::model() const { return impl_->model; }

std::string_view Scorer::reasons_method() const {
  if (!impl_->explainer) return "none";
  return impl_->explainer->approximated_trees() > 0 ? "treeshap+path" : "treeshap";
}
const Forest& Scorer::forest() const { return *impl_->forest; }

FeatureOptions Scorer::engine_options() const {
  return {.label_delay_days = impl_->model.label_delay_days};
}

ScoreResult Scorer::Score(std::span<const float> engine_row, int explain_top_k) const {
  const Impl& m = *impl_;
  constexpr size_t kMaxInline = 64;
  const size_t n = m.engine_index.size();
  float inline_row[kMaxInline];
  std::vector<float> heap_row;
  float* row = inline_row;
  if (n > kMaxInline) {
    heap_row.resize(n);
    row = heap_row.data();
  }
  for (size_t j = 0; j < n; ++j) row[j] = engine_row[m.engine_index[j]];
  const std::span<const float> input(row, n);

  ScoreResult r;
  r.score = m.forest->Predict(input);
  r.anomaly_score = m.is_anomaly_model ? r.score
                    : m.anomaly       ? m.anomaly->Predict(input)
                                      : std::numeric_limits<double>::quiet_NaN();
  r.decision = m.model.has_thresholds ? Decide(r.score, m.model.thresholds) : Decision::kApprove;
  if (explain_top_k > 0 && m.explainer) {
    std::vector<double> phi(n + 1);
    m.explainer->Contributions(input, phi);
    std::vector<size_t> order;
    for (size_t j = 0; j < n; ++j) {
      if (phi[j] > 0) order.push_back(j);
    }
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return phi[a] > phi[b]; });
    if (order.size() > static_cast<size_t>(explain_top_k)) order.resize(explain_top_k);
    for (size_t j : order) {
      r.reasons.push_back(
          DescribeFeature(m.model.feature_names[j], row[j], phi[j], m.model.label_delay_days));
    }
  }
  return r;
}

namespace {

std::string Format(const char* fmt, double v) {
  char buf[96];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

std::string Duration(double seconds) {
  if (seconds < 120) return Format("%.0f s", seconds);
  if (seconds < 7200) return Format("%.0f min", seconds / 60);
  if (seconds < 2 * 86400) return Format("%.1f h", seconds / 3600);
  return Format("%.1f days", seconds / 86400);
}

}  // namespace

Reason DescribeFeature(const std::string& f, double v, double contribution, int delay) {
  Reason r;
  r.feature = f;
  r.value = v;
  r.contribution = contribution;
  const std::string ago = std::to_string(delay) + " days ago";
  // Window features end in _<n>d.
  std::string days;
  if (f.size() > 3 && f.back() == 'd') {
    size_t us = f.rfind('_');
    days = f.substr(us + 1, f.size() - us - 2);
  }
  const std::string window = days == "1" ? "day" : days + " days";
  if (f == "amount") {
    r.code = "AMOUNT";
    r.text = Format("amount is %.2f", v);
  } else if (f == "weekend") {
    r.code = "WEEKEND";
    r.text = v > 0.5 ? "made on a weekend" : "made on a weekday";
  } else if (f == "night") {
    r.code = "NIGHT";
    r.text = v > 0.5 ? "made at night (00:00-06:59 UTC)" : "made during the day";
  } else if (f.rfind("customer_nb_tx_", 0) == 0) {
    r.code = "CUSTOMER_VELOCITY_" + days + "D";
    r.text = Format("%.0f", v) + " transaction(s) by this customer in the last " + window;
  } else if (f.rfind("customer_avg_amount_", 0) == 0) {
    r.code = "CUSTOMER_AVERAGE_AMOUNT_" + days + "D";
    r.text = "this customer's average amount over the last " + window + " is " + Format("%.2f", v);
  } else if (f.rfind("terminal_nb_tx_", 0) == 0) {
    r.code = "TERMINAL_VOLUME_" + days + "D";
    r.text = Format("%.0f", v) + " transaction(s) at this terminal in the " + window +
             " ending " + ago;
  } else if (f.rfind("terminal_risk_", 0) == 0) {
    r.code = "TERMINAL_FRAUD_RATE_" + days + "D";
    r.text = Format("%.0f%%", 100 * v) + " of this terminal's transactions in the " + window +
             " ending " + ago + " were fraud";
  } else if (f == "customer_amount_ratio_30d") {
    r.code = "AMOUNT_VS_CUSTOMER_AVERAGE";
    r.text = Format("amount is %.1fx this customer's 30-day average", v);
  } else if (f == "customer_amount_zscore_30d") {
    r.code = "AMOUNT_UNUSUAL_FOR_CUSTOMER";
    r.text = Format("amount is %.1f standard deviations from this customer's 30-day mean", v);
  } else if (f == "customer_amount_median_ratio_30d") {
    r.code = "AMOUNT_VS_CUSTOMER_MEDIAN";
    r.text = Format("amount is %.1fx this customer's 30-day median", v);
  } else if (f == "customer_seconds_since_prev") {
    r.code = "CUSTOMER_TIME_SINCE_PREVIOUS";
    r.text = Duration(v) + " since this customer's previous transaction";
  } else {
    r.code = "FEATURE_" + f;
    r.text = f + " is " + Format("%g", v);
  }
  return r;
}

}  // namespace vigil
