#include "model/explain.h"

#include <algorithm>
#include <cmath>
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

class TreeShap {
 public:
  TreeShap(const Tree& tree, std::span<const float> row, std::span<double> phi, double scale,
           PathElement* scratch)
      : tree_(tree), row_(row), phi_(phi), scale_(scale), scratch_(scratch) {}

  void Run() { Recurse(0, 0, scratch_, 1, 1, -1); }

 private:
  int HotChild(int node) const {
    const float x = row_[tree_.feature[node]];
    if (std::isnan(x)) return tree_.default_left[node] ? tree_.left[node] : tree_.right[node];
    return x < tree_.threshold[node] ? tree_.left[node] : tree_.right[node];
  }

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
    const int hot = HotChild(node);
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

// Cover-weighted mean of the leaves below `node`: the tree's expected value there.
double FillMeans(const Tree& t, int node, std::vector<double>* means) {
  double m;
  if (t.is_leaf(node)) {
    m = t.value[node];
  } else {
    const double cl = t.cover[t.left[node]], cr = t.cover[t.right[node]];
    const double ml = FillMeans(t, t.left[node], means);
    const double mr = FillMeans(t, t.right[node], means);
    m = cl + cr > 0 ? (ml * cl + mr * cr) / (cl + cr) : (ml + mr) / 2;
  }
  (*means)[node] = m;
  return m;
}

int MaxDepth(const Tree& t, int node) {
  if (t.is_leaf(node)) return 0;
  return 1 + std::max(MaxDepth(t, t.left[node]), MaxDepth(t, t.right[node]));
}

}  // namespace

Explainer::Explainer(const Ensemble& ensemble) : e_(ensemble) {
  for (const Tree& t : e_.trees) {
    std::vector<double> means(t.size());
    if (t.size() > 0) {
      FillMeans(t, 0, &means);
      max_depth_ = std::max(max_depth_, MaxDepth(t, 0));
    }
    node_mean_.push_back(std::move(means));
  }
}

void Explainer::Contributions(std::span<const float> row, std::span<double> out) const {
  std::fill(out.begin(), out.end(), 0.0);
  const size_t n = e_.num_features;
  // Rows are at most a few hundred features and trees a few dozen levels deep: stack scratch
  // would do, but a vector keeps deep random forests safe.
  std::vector<float> x(row.begin(), row.end());
  if (!e_.mean.empty()) {
    for (size_t j = 0; j < n; ++j) x[j] = static_cast<float>((row[j] - e_.mean[j]) / e_.scale[j]);
  }
  out[n] = e_.base_margin;
  if (e_.linear) {
    out[n] += e_.linear_bias;
    for (size_t j = 0; j < n; ++j) {
      if (!std::isnan(x[j])) out[j] = static_cast<double>(e_.linear_weights[j]) * x[j];
    }
    return;
  }
  std::vector<PathElement> scratch(static_cast<size_t>((max_depth_ + 2) * (max_depth_ + 3) / 2));
  for (size_t i = 0; i < e_.trees.size(); ++i) {
    const Tree& t = e_.trees[i];
    if (t.size() == 0) continue;
    out[n] += node_mean_[i][0] * e_.tree_scale;
    TreeShap(t, x, out, e_.tree_scale, scratch.data()).Run();
  }
}

}  // namespace vigil
