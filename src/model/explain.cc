#include "model/explain.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

namespace vigil {
namespace {

// Lundberg, Erion & Lee (2018), Algorithm 2, in the form XGBoost implements it
// (src/tree/tree_model.cc: ExtendPath, UnwindPath, UnwoundPathSum, TreeShap).
struct PathElement {
  int feature = -1;
  double zero_fraction = 0;
  double one_fraction = 0;
  double pweight = 0;
};

void ExtendPath(PathElement* path, int depth, double zero_fraction, double one_fraction,
                int feature) {
  path[depth] = {feature, zero_fraction, one_fraction, depth == 0 ? 1.0 : 0.0};
  for (int i = depth - 1; i >= 0; --i) {
    path[i + 1].pweight += one_fraction * path[i].pweight * (i + 1) / (depth + 1);
    path[i].pweight = zero_fraction * path[i].pweight * (depth - i) / (depth + 1);
  }
}

void UnwindPath(PathElement* path, int depth, int path_index) {
  const double one_fraction = path[path_index].one_fraction;
  const double zero_fraction = path[path_index].zero_fraction;
  double next_one_portion = path[depth].pweight;
  for (int i = depth - 1; i >= 0; --i) {
    if (one_fraction != 0) {
      const double tmp = path[i].pweight;
      path[i].pweight = next_one_portion * (depth + 1) / ((i + 1) * one_fraction);
      next_one_portion = tmp - path[i].pweight * zero_fraction * (depth - i) / (depth + 1);
    } else {
      path[i].pweight = path[i].pweight * (depth + 1) / (zero_fraction * (depth - i));
    }
  }
  for (int i = path_index; i < depth; ++i) {
    path[i].feature = path[i + 1].feature;
    path[i].zero_fraction = path[i + 1].zero_fraction;
    path[i].one_fraction = path[i + 1].one_fraction;
  }
}

double UnwoundPathSum(const PathElement* path, int depth, int path_index) {
  const double one_fraction = path[path_index].one_fraction;
  const double zero_fraction = path[path_index].zero_fraction;
  double next_one_portion = path[depth].pweight;
  double total = 0;
  for (int i = depth - 1; i >= 0; --i) {
    if (one_fraction != 0) {
      const double tmp = next_one_portion * (depth + 1) / ((i + 1) * one_fraction);
      total += tmp;
      next_one_portion = path[i].pweight - tmp * zero_fraction * (depth - i) / (depth + 1);
    } else {
      total += path[i].pweight / zero_fraction / ((depth - i) / static_cast<double>(depth + 1));
    }
  }
  return total;
}

// The child a row takes at `node` (missing values take the default direction).
int32_t HotChild(const Tree& t, std::span<const float> row, int32_t node) {
  const float x = row[t.feature[node]];
  if (std::isnan(x)) return t.default_left[node] ? t.left[node] : t.right[node];
  return x < t.threshold[node] ? t.left[node] : t.right[node];
}

class TreeShap {
 public:
  TreeShap(const Tree& tree, std::span<const float> row, std::span<double> phi, double scale,
           PathElement* scratch)
      : tree_(tree), row_(row), phi_(phi), scale_(scale), scratch_(scratch) {}

  void Run() { Recurse(0, 0, scratch_, 1, 1, -1); }

 private:
  void Recurse(int node, int depth, PathElement* parent_path, double parent_zero,
               double parent_one, int parent_feature) {
    PathElement* path = parent_path + depth + 1;
    std::copy(parent_path, parent_path + depth + 1, path);
    ExtendPath(path, depth, parent_zero, parent_one, parent_feature);
    if (tree_.is_leaf(node)) {
      for (int i = 1; i <= depth; ++i) {
        const double w = UnwoundPathSum(path, depth, i);
        phi_[path[i].feature] +=
            w * (path[i].one_fraction - path[i].zero_fraction) * tree_.value[node] * scale_;
      }
      return;
    }
    const int split = tree_.feature[node];
    const int hot = HotChild(tree_, row_, node);
    const int cold = hot == tree_.left[node] ? tree_.right[node] : tree_.left[node];
    const double w = tree_.cover[node];
    const double hot_zero = w > 0 ? tree_.cover[hot] / w : 0;
    const double cold_zero = w > 0 ? tree_.cover[cold] / w : 0;
    double incoming_zero = 1, incoming_one = 1;
    int path_index = 0;
    for (; path_index <= depth; ++path_index) {
      if (path[path_index].feature == split) break;
    }
    if (path_index != depth + 1) {
      incoming_zero = path[path_index].zero_fraction;
      incoming_one = path[path_index].one_fraction;
      UnwindPath(path, depth, path_index);
      depth -= 1;
    }
    Recurse(hot, depth + 1, path, hot_zero * incoming_zero, incoming_one, split);
    Recurse(cold, depth + 1, path, cold_zero * incoming_zero, 0, split);
  }

  const Tree& tree_;
  std::span<const float> row_;
  std::span<double> phi_;
  double scale_;
  PathElement* scratch_;  // (max_depth + 2) * (max_depth + 3) / 2 elements
};

// Cover-weighted mean of the leaves below `node`: the tree's expected value there. Also stored
// for every node below when `means` is given.
double MeanValue(const Tree& t, int node, std::vector<double>* means = nullptr) {
  double m;
  if (t.is_leaf(node)) {
    m = t.value[node];
  } else {
    const double cl = t.cover[t.left[node]], cr = t.cover[t.right[node]];
    const double ml = MeanValue(t, t.left[node], means);
    const double mr = MeanValue(t, t.right[node], means);
    m = cl + cr > 0 ? (ml * cl + mr * cr) / (cl + cr) : (ml + mr) / 2;
  }
  if (means != nullptr) (*means)[node] = m;
  return m;
}

int MaxDepth(const Tree& t, int node) {
  if (t.is_leaf(node)) return 0;
  return 1 + std::max(MaxDepth(t, t.left[node]), MaxDepth(t, t.right[node]));
}

// A tree with a leaf of more distinct path features than this is explained recursively: its
// leaves' tables (2^k * k entries each) would cost memory and cache misses for little gain (a
// deep random forest's trees). Depth <= 8 trees always qualify.
constexpr size_t kMaxTabulatedSlots = 8;

// Visits every leaf with the (node, child) pairs of its path from the root.
template <typename Fn>
void ForEachLeafPath(const Tree& t, int32_t node, std::vector<std::pair<int32_t, int32_t>>* path,
                     Fn&& fn) {
  if (t.is_leaf(node)) {
    fn(node, *path);
    return;
  }
  for (int32_t child : {t.left[node], t.right[node]}) {
    path->emplace_back(node, child);
    ForEachLeafPath(t, child, path, fn);
    path->pop_back();
  }
}

// The distinct split features on a path, in order of first appearance.
std::vector<int32_t> DistinctFeatures(const Tree& t,
                                      const std::vector<std::pair<int32_t, int32_t>>& path) {
  std::vector<int32_t> features;
  for (const auto& [node, child] : path) {
    if (std::find(features.begin(), features.end(), t.feature[node]) == features.end()) {
      features.push_back(t.feature[node]);
    }
  }
  return features;
}

}  // namespace

Explainer::Explainer(const Ensemble& ensemble, size_t table_budget_bytes, Method method)
    : e_(ensemble) {
  size_t budget = table_budget_bytes / sizeof(double);
  tables_.resize(e_.trees.size());
  for (size_t i = 0; i < e_.trees.size(); ++i) {
    const Tree& t = e_.trees[i];
    bias_.push_back(t.size() > 0 ? MeanValue(t, 0) : 0.0);
    if (t.size() == 0) continue;
    // What this tree's tables would take, or "too much" when a leaf has too many slots.
    size_t need = 0;
    std::vector<std::pair<int32_t, int32_t>> path;
    ForEachLeafPath(t, 0, &path, [&](int32_t, const auto& p) {
      const size_t k = DistinctFeatures(t, p).size();
      need = k > kMaxTabulatedSlots || need > budget ? budget + 1 : need + (size_t{1} << k) * k;
    });
    if (need <= budget) {
      budget -= need;
      Tabulate(t, &tables_[i]);
    } else if (method == Method::kFast) {
      tables_[i].node_mean.resize(t.size());
      MeanValue(t, 0, &tables_[i].node_mean);
    } else {
      max_depth_ = std::max(max_depth_, MaxDepth(t, 0));
    }
  }
}

void Explainer::Tabulate(const Tree& t, TreeTables* tables) {
  tables->tabulated = true;
  tables->first_leaf = static_cast<uint32_t>(leaves_.size());
  std::vector<std::pair<int32_t, int32_t>> path;
  std::vector<PathElement> shap_path;
  ForEachLeafPath(t, 0, &path, [&](int32_t leaf, const auto& p) {
    const std::vector<int32_t> features = DistinctFeatures(t, p);
    const size_t k = features.size();
    Leaf l;
    l.first_condition = static_cast<uint32_t>(conditions_.size());
    l.num_conditions = static_cast<uint32_t>(p.size());
    l.first_slot = static_cast<uint32_t>(slot_feature_.size());
    l.num_slots = static_cast<uint32_t>(k);
    l.first_value = static_cast<uint32_t>(values_.size());
    // Each slot's zero fraction: the share of training cover that follows the path through all
    // of that feature's conditions, as the recursive algorithm multiplies it up.
    std::vector<double> zero(k, 1.0);
    for (const auto& [node, child] : p) {
      const size_t slot = std::find(features.begin(), features.end(), t.feature[node]) -
                          features.begin();
      const double w = t.cover[node];
      zero[slot] *= w > 0 ? t.cover[child] / w : 0;
      conditions_.push_back({node, child, static_cast<int32_t>(slot)});
    }
    slot_feature_.insert(slot_feature_.end(), features.begin(), features.end());
    // For each pattern of met slots (bit s: the row meets all of slot s's conditions), each
    // slot's contribution: Algorithm 2's leaf step on the path those fractions make.
    const double leaf_value = static_cast<double>(t.value[leaf]) * e_.tree_scale;
    shap_path.assign(k + 1, PathElement{});
    for (size_t pattern = 0; pattern < (size_t{1} << k); ++pattern) {
      ExtendPath(shap_path.data(), 0, 1, 1, -1);
      for (size_t s = 0; s < k; ++s) {
        ExtendPath(shap_path.data(), static_cast<int>(s + 1), zero[s],
                   static_cast<double>((pattern >> s) & 1), features[s]);
      }
      for (size_t s = 0; s < k; ++s) {
        const double one = static_cast<double>((pattern >> s) & 1);
        // A slot no row can tell apart from the average (one == zero) contributes nothing; the
        // sum would be 0 times a weight that may divide by a zero fraction.
        values_.push_back(one == zero[s] ? 0.0
                                         : UnwoundPathSum(shap_path.data(), static_cast<int>(k),
                                                          static_cast<int>(s + 1)) *
                                               (one - zero[s]) * leaf_value);
      }
    }
    leaves_.push_back(l);
  });
  tables->num_leaves = static_cast<uint32_t>(leaves_.size()) - tables->first_leaf;
}

size_t Explainer::approximated_trees() const {
  return static_cast<size_t>(std::count_if(tables_.begin(), tables_.end(), [](const TreeTables& t) {
    return !t.node_mean.empty();
  }));
}

size_t Explainer::tabulated_trees() const {
  return static_cast<size_t>(
      std::count_if(tables_.begin(), tables_.end(), [](const TreeTables& t) { return t.tabulated; }));
}

void Explainer::Contributions(std::span<const float> row, std::span<double> out) const {
  std::fill(out.begin(), out.end(), 0.0);
  const size_t n = e_.num_features;
  constexpr size_t kInline = 256;
  float inline_x[kInline];
  std::vector<float> heap_x;
  std::span<const float> x = row;
  if (!e_.mean.empty()) {
    float* buf = inline_x;
    if (n > kInline) {
      heap_x.resize(n);
      buf = heap_x.data();
    }
    Standardize(row, e_.mean, e_.scale, {buf, n});
    x = {buf, n};
  }
  out[n] = e_.base_margin;
  if (e_.linear) {
    out[n] += e_.linear_bias;
    for (size_t j = 0; j < n; ++j) {
      if (!std::isnan(x[j])) out[j] = static_cast<double>(e_.linear_weights[j]) * x[j];
    }
    return;
  }
  std::vector<PathElement> scratch;
  for (size_t i = 0; i < e_.trees.size(); ++i) {
    const Tree& t = e_.trees[i];
    if (t.size() == 0) continue;
    out[n] += bias_[i] * e_.tree_scale;
    const TreeTables& tables = tables_[i];
    if (!tables.node_mean.empty()) {
      // Path attributions: each split on the row's path gives its feature the change in the
      // expected value; from the root's (the bias) down to the leaf's value.
      const std::vector<double>& mean = tables.node_mean;
      int32_t node = 0;
      while (!t.is_leaf(node)) {
        const int32_t child = HotChild(t, x, node);
        out[t.feature[node]] += (mean[child] - mean[node]) * e_.tree_scale;
        node = child;
      }
      continue;
    }
    if (!tables.tabulated) {
      if (scratch.empty()) {
        scratch.resize(static_cast<size_t>((max_depth_ + 2) * (max_depth_ + 3) / 2));
      }
      TreeShap(t, x, out, e_.tree_scale, scratch.data()).Run();
      continue;
    }
    for (uint32_t li = tables.first_leaf; li < tables.first_leaf + tables.num_leaves; ++li) {
      const Leaf& l = leaves_[li];
      uint32_t met = (uint32_t{1} << l.num_slots) - 1;
      for (uint32_t c = l.first_condition; c < l.first_condition + l.num_conditions; ++c) {
        const Condition& cond = conditions_[c];
        if (HotChild(t, x, cond.node) != cond.child) met &= ~(uint32_t{1} << cond.slot);
      }
      const double* v = &values_[l.first_value + static_cast<size_t>(met) * l.num_slots];
      const int32_t* features = &slot_feature_[l.first_slot];
      for (uint32_t s = 0; s < l.num_slots; ++s) out[features[s]] += v[s];
    }
  }
}

}  // namespace vigil
