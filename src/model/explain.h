// Explanations: per-feature contributions to one prediction's margin (TreeSHAP), as XGBoost's
// `pred_contribs` computes them.
#ifndef VIGIL_MODEL_EXPLAIN_H_
#define VIGIL_MODEL_EXPLAIN_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "model/tree.h"

namespace vigil {

// An Explainer computes per-feature contributions for one model. Thread-safe: Contributions() is
// const and keeps its scratch on the caller's stack frame (or the heap, for very deep trees).
//
// Path-dependent TreeSHAP gives a leaf's share to the distinct features on its path, and that
// share depends on the row only through which of those features' conditions the row meets: a
// pattern of k bits for k distinct features. So the Explainer precomputes, per leaf, the k
// contributions for each of the 2^k patterns (Fast TreeSHAP v2, Yang 2021), and explaining a row
// is then one pass over each leaf's conditions and k table reads: for the default depth-3 gbdt
// about 5x faster than the recursive algorithm (bench/inference_bench.cc). Trees with a leaf of
// more than 8 distinct path features (deep random forests), or past the memory budget, keep the
// recursive algorithm (Lundberg et al. 2018, Algorithm 2), or with Method::kFast path attributions.
class Explainer {
 public:
  // The precomputed tables' budget in bytes, over all trees; the default fits any boosted model
  // of depth <= 6 with a few hundred trees.
  static constexpr size_t kDefaultTableBudget = size_t{64} << 20;

  // For the trees that cannot be tabulated: kExact explains them with the recursive algorithm
  // (exact TreeSHAP, but about 0.15 ms per depth-20 tree); kFast with path attributions
  // (Saabas; XGBoost's `approx_contribs`): each split on the row's path gives its feature the
  // change in the tree's expected value, a walk of the path. Both sum to the margin.
  enum class Method { kExact, kFast };

  // REQUIRES: `ensemble` outlives the Explainer.
  explicit Explainer(const Ensemble& ensemble, size_t table_budget_bytes = kDefaultTableBudget,
                     Method method = Method::kExact);

  // Writes the SHAP value of each feature to out[0..num_features) and the bias (the expected
  // margin) to out[num_features]; together they sum to the row's margin. Missing values (NaN)
  // follow the default directions. For a linear model feature j contributes w_j * x_j.
  // REQUIRES: row.size() == num_features, out.size() == num_features + 1
  void Contributions(std::span<const float> row, std::span<double> out) const;

  // Trees explained from precomputed tables (the others recursively). For tests and benchmarks.
  size_t tabulated_trees() const;
  // Trees explained by path attributions (Method::kFast, trees not tabulated).
  size_t approximated_trees() const;
  // The bytes of contributions the tables hold (what counts against the budget).
  size_t table_bytes() const { return values_.size() * sizeof(double); }

 private:
  // One leaf's table: its path's conditions, its distinct features (slots) and, for each pattern
  // of met slots, each slot's contribution (already scaled).
  struct Condition {
    int32_t node;
    int32_t child;  // the child on the leaf's path
    int32_t slot;
  };
  struct Leaf {
    uint32_t first_condition, num_conditions;
    uint32_t first_slot, num_slots;  // into slot_feature_
    uint32_t first_value;            // into values_: (1 << num_slots) * num_slots doubles
  };
  struct TreeTables {
    bool tabulated = false;
    uint32_t first_leaf = 0, num_leaves = 0;
    std::vector<double> node_mean;  // path attributions only: each node's expected value
  };

  void Tabulate(const Tree& tree, TreeTables* tables);

  const Ensemble& e_;
  std::vector<double> bias_;  // per tree: its expected value (cover-weighted mean leaf)
  int max_depth_ = 0;         // over the trees explained recursively
  std::vector<TreeTables> tables_;  // per tree
  std::vector<Leaf> leaves_;
  std::vector<Condition> conditions_;
  std::vector<int32_t> slot_feature_;
  std::vector<double> values_;
};
}  // namespace vigil

#endif  // VIGIL_MODEL_EXPLAIN_H_
