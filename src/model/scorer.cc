#include "vigil/scorer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <span>
#include <vector>

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
    // On the stack for the usual sizes: this runs for every scored request.
    double inline_phi[kMaxInline + 1];
    size_t inline_order[kMaxInline];
    std::vector<double> heap_phi;
    std::vector<size_t> heap_order;
    std::span<double> phi(inline_phi, n + 1);
    size_t* order = inline_order;
    if (n > kMaxInline) {
      heap_phi.resize(n + 1);
      heap_order.resize(n);
      phi = heap_phi;
      order = heap_order.data();
    }
    m.explainer->Contributions(input, phi);  // sets every element
    size_t positive = 0;
    for (size_t j = 0; j < n; ++j) {
      if (phi[j] > 0) order[positive++] = j;
    }
    std::sort(order, order + positive, [&](size_t a, size_t b) { return phi[a] > phi[b]; });
    const size_t k = std::min(positive, static_cast<size_t>(explain_top_k));
    r.reasons.reserve(k);
    for (size_t i = 0; i < k; ++i) {
      const size_t j = order[i];
      r.reasons.push_back(
          DescribeFeature(m.model.feature_names[j], row[j], phi[j], m.model.label_delay_days));
    }
  }
  return r;
}

Reason DescribeFeature(const std::string& f, double v, double contribution, int delay) {
  Reason r;
  r.feature = f;
  r.value = v;
  r.contribution = contribution;
  if (const FeatureInfo* info = FindFeature(f)) {
    r.code = info->reason_code;
    r.text = info->ReasonText(v, delay);
  } else {
    // Not a feature Vigil computes (Scorer::Create rejects those): say the bare value.
    char value[32];
    std::snprintf(value, sizeof value, "%g", v);
    r.code = "FEATURE_" + f;
    r.text = f + " is " + value;
  }
  return r;
}

}  // namespace vigil
