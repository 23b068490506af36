// Explanations: per-feature contributions to one prediction's margin (TreeSHAP), as XGBoost's
// `pred_contribs` computes them.
#ifndef VIGIL_MODEL_EXPLAIN_H_
#define VIGIL_MODEL_EXPLAIN_H_

#include <span>
#include <vector>

#include "model/tree.h"

namespace vigil {

// An Explainer computes per-feature contributions for one model. It precomputes each tree's
// expected values and depth once. Thread-safe: Contributions() is const and keeps its scratch on
// the caller's stack frame.
class Explainer {
 public:
  // REQUIRES: `ensemble` outlives the Explainer.
  explicit Explainer(const Ensemble& ensemble);

  // Writes the SHAP value of each feature to out[0..num_features) and the bias (the expected
  // margin) to out[num_features]; together they sum to the row's margin. Missing values (NaN)
  // follow the default directions. For a linear model feature j contributes w_j * x_j.
  // REQUIRES: row.size() == num_features, out.size() == num_features + 1
  void Contributions(std::span<const float> row, std::span<double> out) const;

 private:
  const Ensemble& e_;
  std::vector<std::vector<double>> node_mean_;  // per tree, per node
  int max_depth_ = 0;
};

}  // namespace vigil

#endif  // VIGIL_MODEL_EXPLAIN_H_
