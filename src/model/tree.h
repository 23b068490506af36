// The canonical form of a tree-ensemble model inside Vigil: what the XGBoost JSON parser produces
// and what every scoring kernel and the explainer are built from. Plain data; the fast layouts
// used for scoring are derived from it (forest.cc).
#ifndef VIGIL_MODEL_TREE_H_
#define VIGIL_MODEL_TREE_H_

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "vigil/status.h"

namespace vigil {

// One binary regression tree as XGBoost grows it. Node 0 is the root; arrays are indexed by node.
struct Tree {
  std::vector<int32_t> left;          // left child, -1 at a leaf
  std::vector<int32_t> right;         // right child, -1 at a leaf
  std::vector<int32_t> feature;       // split feature (unused at leaves)
  std::vector<float> threshold;       // a row goes left when x[feature] < threshold
  std::vector<uint8_t> default_left;  // 1: a missing (NaN) value goes left
  std::vector<float> value;           // leaf value at leaves (XGBoost's split_conditions there)
  std::vector<float> cover;           // sum of hessians that reached the node (TreeSHAP weights)

  size_t size() const { return left.size(); }
  bool is_leaf(int32_t node) const { return left[node] < 0; }
};

// How the summed margin becomes the model's output.
enum class Link {
  kSigmoid,    // probability = 1 / (1 + exp(-margin)) (binary:logistic)
  kIdentity,   // the margin itself (binary:logitraw, reg:squarederror)
  kIsolation,  // anomaly score = 2^(-margin / isolation_norm) (isolation forest: margin = mean path length)
};

// A whole model in canonical form.
struct Ensemble {
  size_t num_features = 0;
  std::vector<Tree> trees;
  // margin = base_margin + tree_scale * sum over trees of the leaf reached.
  double base_margin = 0;
  double tree_scale = 1;
  // A linear model (gblinear) instead of trees: margin = base_margin + linear_bias + w . x.
  bool linear = false;
  std::vector<float> linear_weights;
  float linear_bias = 0;
  Link link = Link::kSigmoid;
  double isolation_norm = 1;  // c(psi) of an isolation forest
  // Optional standardisation applied to the input first: x' = float((x - mean) / scale).
  std::vector<double> mean, scale;
};

// Parses an XGBoost JSON model (`Booster.save_model("m.json")`, format of XGBoost 1.x/2.x):
// gbtree (gradient boosting and random forests) or gblinear, objectives binary:logistic,
// reg:logistic, binary:logitraw and reg:squarederror. `num_features` is the row width the caller
// will provide; a split on a feature beyond it is an error.
StatusOr<Ensemble> ParseXGBoostJson(std::string_view json, size_t num_features);

// Checks that an ensemble is well formed: every tree's arrays agree in size, children are in
// range and form a tree rooted at node 0, split features are below num_features, the linear
// weights and standardisation (when present) have one entry per feature. Messages name the tree
// and node ("tree 3: split on feature 17 but rows have 15 features").
Status ValidateEnsemble(const Ensemble& ensemble);

// The one standardisation of model inputs, for rows of mean.size() features laid end to end:
// out[i] = float((x[i] - mean[c]) / scale[c]) with c the column of i. The same rounding wherever
// it is done (training, inference, explanations, benchmarks), so every path sees the same floats.
// REQUIRES: mean.size() == scale.size() > 0, out.size() == x.size(), a whole number of rows.
void Standardize(std::span<const float> x, std::span<const double> mean,
                 std::span<const double> scale, std::span<float> out);

}  // namespace vigil

#endif  // VIGIL_MODEL_TREE_H_
