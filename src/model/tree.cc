// The XGBoost JSON adapter: the one place where nlohmann::json exceptions become a Status.
//
// Schema (XGBoost 1.7, `Booster.save_model("m.json")`):
//   learner.learner_model_param.base_score   "5E-1" (a string, probability space for logistic)
//   learner.objective.name                   binary:logistic | reg:logistic | binary:logitraw |
//                                            reg:squarederror | vigil:isolation
//   learner.gradient_booster.name            gbtree | dart | gblinear
//   gbtree: gradient_booster.model.trees[i]  left_children, right_children, split_indices,
//                                            split_conditions (the leaf value at leaves),
//                                            default_left, sum_hessian; tree_info all 0
//   dart:   gradient_booster.gbtree.model... and gradient_booster.weight_drop (one per tree)
//   gblinear: gradient_booster.model.weights [w_0 .. w_{F-1}, bias]
#include "model/tree.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace vigil {
namespace {

using Json = nlohmann::json;

// The member `key` of object `j`, or nullptr.
const Json* Find(const Json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

StatusOr<const Json*> Require(const Json& j, const char* key, const std::string& where) {
  const Json* v = Find(j, key);
  if (v == nullptr) {
    return InvalidArgument("not an XGBoost model: " + where + " has no '" + key + "'");
  }
  return v;
}

// XGBoost writes most scalars as strings ("5E-1", "100"); accept numbers too.
StatusOr<double> NumberOrString(const Json& j, const std::string& what) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) return v;
  }
  return InvalidArgument("not an XGBoost model: " + what + " is not a number: " + j.dump());
}

// A float parsed as XGBoost parses its parameters: straight to float.
StatusOr<float> FloatOrString(const Json& j, const std::string& what) {
  if (j.is_number()) return static_cast<float>(j.get<double>());
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    char* end = nullptr;
    const float v = std::strtof(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) return v;
  }
  return InvalidArgument("not an XGBoost model: " + what + " is not a number: " + j.dump());
}

template <typename T>
Status ReadArray(const Json& tree, const char* key, const std::string& where, std::vector<T>* out) {
  VIGIL_ASSIGN_OR_RETURN(const Json* a, Require(tree, key, where));
  if (!a->is_array()) return InvalidArgument(where + ": '" + key + "' is not an array");
  out->clear();
  out->reserve(a->size());
  for (const Json& v : *a) {
    if (!v.is_number()) {
      return InvalidArgument(where + ": '" + key + "' holds a non-number: " + v.dump());
    }
    if constexpr (std::is_floating_point_v<T>) {
      // Through double, as nlohmann stores it: XGBoost prints the shortest decimal that reads
      // back as the same float, so this is the float XGBoost holds.
      out->push_back(static_cast<T>(v.get<double>()));
    } else {
      const double d = v.get<double>();
      if (d != std::floor(d) || d < -2147483648.0 || d > 2147483647.0) {
        return InvalidArgument(where + ": '" + key + "' holds a non-integer: " + v.dump());
      }
      out->push_back(static_cast<T>(static_cast<int64_t>(d)));
    }
  }
  return Status::Ok();
}

StatusOr<Tree> ParseTree(const Json& j, size_t index, float weight) {
  const std::string where = "tree " + std::to_string(index);
  if (!j.is_object())
    return InvalidArgument("not an XGBoost model: " + where + " is not an object");
  Tree t;
  std::vector<int32_t> default_left, split_type;
  VIGIL_RETURN_IF_ERROR(ReadArray(j, "left_children", where, &t.left));
  VIGIL_RETURN_IF_ERROR(ReadArray(j, "right_children", where, &t.right));
  VIGIL_RETURN_IF_ERROR(ReadArray(j, "split_indices", where, &t.feature));
  VIGIL_RETURN_IF_ERROR(ReadArray(j, "split_conditions", where, &t.threshold));
  VIGIL_RETURN_IF_ERROR(ReadArray(j, "default_left", where, &default_left));
  VIGIL_RETURN_IF_ERROR(ReadArray(j, "sum_hessian", where, &t.cover));
  if (Find(j, "split_type") != nullptr) {
    VIGIL_RETURN_IF_ERROR(ReadArray(j, "split_type", where, &split_type));
  }
  if (const Json* param = Find(j, "tree_param")) {
    if (const Json* slv = Find(*param, "size_leaf_vector")) {
      VIGIL_ASSIGN_OR_RETURN(double size, NumberOrString(*slv, where + " size_leaf_vector"));
      if (size > 1) return InvalidArgument(where + ": vector leaves are not supported");
    }
  }
  const size_t n = t.left.size();
  if (n == 0) return InvalidArgument(where + ": no nodes");
  if (t.right.size() != n || t.feature.size() != n || t.threshold.size() != n ||
      default_left.size() != n || t.cover.size() != n) {
    return InvalidArgument(where + ": node arrays differ in length (left_children has " +
                           std::to_string(n) + ")");
  }
  t.default_left.resize(n);
  t.value.assign(n, 0.0f);
  for (size_t i = 0; i < n; ++i) {
    if (!split_type.empty() && i < split_type.size() && split_type[i] != 0 && t.left[i] >= 0) {
      return InvalidArgument(where + ": node " + std::to_string(i) +
                             " is a categorical split, which Vigil does not support");
    }
    t.default_left[i] = default_left[i] != 0;
    if (t.left[i] < 0) {
      // At a leaf XGBoost keeps the leaf value in split_conditions. A DART tree's output is
      // weight * leaf, in float, exactly as XGBoost scales it.
      t.value[i] = t.threshold[i] * weight;
      t.threshold[i] = 0;
      t.feature[i] = 0;
      t.left[i] = t.right[i] = -1;
    }
  }
  return t;
}

Status CheckSingleOutput(const Json& learner) {
  const Json* mp = Find(learner, "learner_model_param");
  if (mp == nullptr) return Status::Ok();
  for (const char* key : {"num_class", "num_target"}) {
    if (const Json* v = Find(*mp, key)) {
      VIGIL_ASSIGN_OR_RETURN(double k, NumberOrString(*v, key));
      if (k > 1) {
        return InvalidArgument(std::string("multi-output models are not supported (") + key +
                               " = " + std::to_string(static_cast<int64_t>(k)) +
                               "): Vigil scores one output per row");
      }
    }
  }
  return Status::Ok();
}

StatusOr<Ensemble> ParseLearner(const Json& root, size_t num_features) {
  if (!root.is_object())
    return InvalidArgument("not an XGBoost model: the document is not an object");
  VIGIL_ASSIGN_OR_RETURN(const Json* learner, Require(root, "learner", "the document"));
  VIGIL_RETURN_IF_ERROR(CheckSingleOutput(*learner));
  VIGIL_ASSIGN_OR_RETURN(const Json* objective, Require(*learner, "objective", "learner"));
  VIGIL_ASSIGN_OR_RETURN(const Json* obj_name, Require(*objective, "name", "learner.objective"));
  VIGIL_ASSIGN_OR_RETURN(const Json* booster, Require(*learner, "gradient_booster", "learner"));
  VIGIL_ASSIGN_OR_RETURN(const Json* booster_name,
                         Require(*booster, "name", "learner.gradient_booster"));
  if (!obj_name->is_string() || !booster_name->is_string()) {
    return InvalidArgument("not an XGBoost model: objective or booster name is not a string");
  }
  const std::string objective_name = obj_name->get<std::string>();
  const std::string booster_kind = booster_name->get<std::string>();

  if (objective_name.rfind("multi:", 0) == 0) {
    return InvalidArgument("multi-class models are not supported (objective '" + objective_name +
                           "'): Vigil scores one output per row");
  }

  float base_score = 0.5f;
  if (const Json* mp = Find(*learner, "learner_model_param")) {
    if (const Json* bs = Find(*mp, "base_score")) {
      VIGIL_ASSIGN_OR_RETURN(base_score, FloatOrString(*bs, "base_score"));
    }
  }

  Ensemble e;
  e.num_features = num_features;
  if (objective_name == "binary:logistic" || objective_name == "reg:logistic") {
    if (!(base_score > 0.0f && base_score < 1.0f)) {
      return InvalidArgument("base_score must be in (0, 1) for " + objective_name + ", got " +
                             std::to_string(base_score));
    }
    e.link = Link::kSigmoid;
    // XGBoost's ProbToMargin, in float.
    e.base_margin = -std::log(1.0f / base_score - 1.0f);
  } else if (objective_name == "binary:logitraw" || objective_name == "reg:squarederror" ||
             objective_name == "reg:linear") {
    // For logitraw XGBoost 1.7 uses base_score as the margin itself (checked against
    // Booster.predict(output_margin=True)).
    e.link = Link::kIdentity;
    e.base_margin = base_score;
  } else if (objective_name == "vigil:isolation") {
    VIGIL_ASSIGN_OR_RETURN(const Json* norm,
                           Require(*objective, "isolation_norm", "learner.objective"));
    VIGIL_ASSIGN_OR_RETURN(e.isolation_norm, NumberOrString(*norm, "isolation_norm"));
    if (!(e.isolation_norm > 0) || !std::isfinite(e.isolation_norm)) {
      return InvalidArgument("isolation_norm must be a positive number");
    }
    e.link = Link::kIsolation;
    e.base_margin = 0;
  } else {
    return InvalidArgument("objective '" + objective_name +
                           "' is not supported (binary:logistic, reg:logistic, binary:logitraw, "
                           "reg:squarederror, vigil:isolation)");
  }

  if (booster_kind == "gblinear") {
    if (e.link == Link::kIsolation) {
      return InvalidArgument("vigil:isolation needs trees, not gblinear");
    }
    VIGIL_ASSIGN_OR_RETURN(const Json* model, Require(*booster, "model", "gblinear"));
    std::vector<float> w;
    VIGIL_RETURN_IF_ERROR(ReadArray(*model, "weights", "gblinear", &w));
    if (w.size() != num_features + 1) {
      return InvalidArgument("gblinear model has " + std::to_string(w.size()) +
                             " weights but rows have " + std::to_string(num_features) +
                             " features (expected " + std::to_string(num_features + 1) +
                             ": one per feature and the bias)");
    }
    e.linear = true;
    e.linear_bias = w.back();
    w.pop_back();
    e.linear_weights = std::move(w);
  } else if (booster_kind == "gbtree" || booster_kind == "dart") {
    const Json* gbtree = booster;
    std::vector<float> weights;
    if (booster_kind == "dart") {
      VIGIL_ASSIGN_OR_RETURN(gbtree, Require(*booster, "gbtree", "dart"));
      VIGIL_RETURN_IF_ERROR(ReadArray(*booster, "weight_drop", "dart", &weights));
    }
    VIGIL_ASSIGN_OR_RETURN(const Json* model, Require(*gbtree, "model", "gbtree"));
    VIGIL_ASSIGN_OR_RETURN(const Json* trees, Require(*model, "trees", "gbtree.model"));
    if (!trees->is_array()) return InvalidArgument("not an XGBoost model: trees is not an array");
    if (trees->empty()) return InvalidArgument("the model has no trees");
    if (!weights.empty() && weights.size() != trees->size()) {
      return InvalidArgument("dart: " + std::to_string(weights.size()) + " weights for " +
                             std::to_string(trees->size()) + " trees");
    }
    if (Find(*model, "tree_info") != nullptr) {
      std::vector<int32_t> groups;
      VIGIL_RETURN_IF_ERROR(ReadArray(*model, "tree_info", "gbtree.model", &groups));
      for (int32_t g : groups) {
        if (g != 0) {
          return InvalidArgument(
              "multi-class models are not supported: trees belong to output group " +
              std::to_string(g) + "; Vigil scores one output per row");
        }
      }
    }
    e.trees.reserve(trees->size());
    for (size_t i = 0; i < trees->size(); ++i) {
      const float w = weights.empty() ? 1.0f : weights[i];
      VIGIL_ASSIGN_OR_RETURN(Tree t, ParseTree((*trees)[i], i, w));
      e.trees.push_back(std::move(t));
    }
    if (e.link == Link::kIsolation) e.tree_scale = 1.0 / static_cast<double>(e.trees.size());
  } else {
    return InvalidArgument("booster '" + booster_kind +
                           "' is not supported (gbtree, dart, gblinear)");
  }
  VIGIL_RETURN_IF_ERROR(ValidateEnsemble(e));
  return e;
}

}  // namespace

StatusOr<Ensemble> ParseXGBoostJson(std::string_view json, size_t num_features) {
  Json root;
  try {
    root = Json::parse(json.begin(), json.end());
  } catch (const Json::exception& e) {
    return InvalidArgument(std::string("not an XGBoost model: not valid JSON (truncated or "
                                       "corrupt?): ") +
                           e.what());
  }
  try {
    return ParseLearner(root, num_features);
  } catch (const Json::exception& e) {
    // A field of an unexpected type that the checks above did not anticipate.
    return InvalidArgument(std::string("not an XGBoost model: ") + e.what());
  }
}

Status ValidateEnsemble(const Ensemble& e) {
  const size_t nf = e.num_features;
  if (!e.mean.empty() || !e.scale.empty()) {
    if (e.mean.size() != nf || e.scale.size() != nf) {
      return InvalidArgument("standardisation has " + std::to_string(e.mean.size()) +
                             " means and " + std::to_string(e.scale.size()) + " scales for " +
                             std::to_string(nf) + " features");
    }
    for (size_t i = 0; i < nf; ++i) {
      if (!(e.scale[i] != 0) || !std::isfinite(e.scale[i]) || !std::isfinite(e.mean[i])) {
        return InvalidArgument("standardisation of feature " + std::to_string(i) +
                               " is not usable (mean " + std::to_string(e.mean[i]) + ", scale " +
                               std::to_string(e.scale[i]) + ")");
      }
    }
  }
  if (e.link == Link::kIsolation && !(e.isolation_norm > 0)) {
    return InvalidArgument("isolation_norm must be positive");
  }
  if (e.linear) {
    if (e.linear_weights.size() != nf) {
      return InvalidArgument("linear model has " + std::to_string(e.linear_weights.size()) +
                             " weights for " + std::to_string(nf) + " features");
    }
    return Status::Ok();
  }
  if (e.trees.empty()) return InvalidArgument("the model has no trees");
  std::vector<int32_t> stack;
  std::vector<uint8_t> seen;
  for (size_t ti = 0; ti < e.trees.size(); ++ti) {
    const Tree& t = e.trees[ti];
    const std::string where = "tree " + std::to_string(ti);
    const size_t n = t.left.size();
    if (n == 0) return InvalidArgument(where + ": no nodes");
    if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
      return InvalidArgument(where + ": too many nodes");
    }
    if (t.right.size() != n || t.feature.size() != n || t.threshold.size() != n ||
        t.default_left.size() != n || t.value.size() != n ||
        (!t.cover.empty() && t.cover.size() != n)) {
      return InvalidArgument(where + ": node arrays differ in length");
    }
    // Walk from the root: every reachable node must be reached once (a tree, not a graph).
    seen.assign(n, 0);
    stack.assign(1, 0);
    while (!stack.empty()) {
      const int32_t node = stack.back();
      stack.pop_back();
      if (seen[node]) {
        return InvalidArgument(where + ": node " + std::to_string(node) +
                               " is reached twice (not a tree)");
      }
      seen[node] = 1;
      const int32_t l = t.left[node], r = t.right[node];
      if (l < 0 && r < 0) continue;
      if (l <= 0 || r <= 0 || static_cast<size_t>(l) >= n || static_cast<size_t>(r) >= n) {
        return InvalidArgument(where + ": node " + std::to_string(node) +
                               " has children out of range (" + std::to_string(l) + ", " +
                               std::to_string(r) + ")");
      }
      if (t.feature[node] < 0 || static_cast<size_t>(t.feature[node]) >= nf) {
        return InvalidArgument(where + ": split on feature " + std::to_string(t.feature[node]) +
                               " but rows have " + std::to_string(nf) + " features");
      }
      stack.push_back(r);
      stack.push_back(l);
    }
  }
  return Status::Ok();
}

void Standardize(std::span<const float> x, std::span<const double> mean,
                 std::span<const double> scale, std::span<float> out) {
  const size_t cols = mean.size();
  for (size_t i = 0; i < x.size(); i += cols) {
    for (size_t c = 0; c < cols; ++c) {
      out[i + c] = static_cast<float>((x[i + c] - mean[c]) / scale[c]);
    }
  }
}

}  // namespace vigil
