// The scoring core: one model compiled for scoring, turning a transaction's features into a
// fraud score, an anomaly score, a decision and the reasons behind it.
#ifndef VIGIL_SCORER_H_
#define VIGIL_SCORER_H_

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vigil/decision.h"
#include "vigil/features.h"
#include "vigil/forest.h"
#include "vigil/model.h"
#include "vigil/status.h"

namespace vigil {

// Why a transaction scored as it did: one feature's push toward fraud.
struct Reason {
  std::string code;      // stable, e.g. "AMOUNT_VS_CUSTOMER_AVERAGE"
  std::string text;      // for a person: "amount is 5.1x this customer's 30-day average"
  std::string feature;   // the feature's name
  double value = 0;      // the feature's value
  double contribution = 0;  // its SHAP contribution to the margin (log-odds for probabilities)
};

struct ScoreResult {
  double score = 0;          // fraud probability (the anomaly score for an iforest model)
  double anomaly_score = 0;  // isolation-forest score in (0, 1]; NaN when the model has none
  Decision decision = Decision::kApprove;
  std::vector<Reason> reasons;  // strongest first; empty unless asked for
};

// A Scorer holds a model file compiled for scoring: the forest, the anomaly forest, the
// thresholds and the explainer. Model inputs are read by name from a row of the FeatureEngine's
// "all" set, so a model may use any subset of Vigil's features in any order.
// Thread-safe: every method is const.
// How reasons are computed for trees too deep for the precomputed TreeSHAP tables (a leaf with
// more than 8 distinct features on its path, e.g. the default random forest of depth 20). Trees
// within reach of the tables (every default gbdt) always get exact TreeSHAP.
enum class ReasonsMethod {
  kFast,   // path attributions (Saabas; XGBoost's approx_contribs): microseconds per row
  kExact,  // recursive TreeSHAP: about 16 ms per row for 100 trees of depth 20
};

class Scorer {
 public:
  ~Scorer();
  Scorer(const Scorer&) = delete;
  Scorer& operator=(const Scorer&) = delete;

  // Fails with a clear message when a model feature is not one Vigil computes, or the trees do
  // not load.
  static StatusOr<std::unique_ptr<Scorer>> Create(ModelFile model, Kernel kernel = Kernel::kAuto,
                                                  ReasonsMethod reasons = ReasonsMethod::kFast);
  static StatusOr<std::unique_ptr<Scorer>> Load(const std::string& path,
                                                Kernel kernel = Kernel::kAuto,
                                                ReasonsMethod reasons = ReasonsMethod::kFast);

  const ModelFile& model() const;
  // "treeshap" when every tree's reasons are exact TreeSHAP; "treeshap+path" when some trees
  // use path attributions (ReasonsMethod::kFast on deep trees); "none" for an isolation forest.
  std::string_view reasons_method() const;
  const Forest& forest() const;
  // The feature set, and delay, the FeatureEngine that feeds this scorer must use.
  FeatureSet engine_set() const { return FeatureSet::kAll; }
  FeatureOptions engine_options() const;

  // Scores one row of engine features (FeatureNames(kAll) order). NaN features count as
  // missing and follow the trees' default directions. explain_top_k > 0 adds up to that many
  // reasons: the features pushing hardest toward fraud.
  // REQUIRES: engine_row.size() == Features(kAll).size()
  ScoreResult Score(std::span<const float> engine_row, int explain_top_k = 0) const;

 private:
  struct Impl;
  explicit Scorer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The reason a feature's value gives, in words.
Reason DescribeFeature(const std::string& feature, double value, double contribution,
                       int label_delay_days);

}  // namespace vigil

#endif  // VIGIL_SCORER_H_
