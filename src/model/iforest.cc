#include "model/iforest.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <numbers>
#include <numeric>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vigil {

namespace {

// XGBoost's marker for the root's parent.
constexpr int32_t kNoParent = 2147483647;

// SplitMix64's finaliser: spreads (seed, tree index) into an mt19937_64 seed, so neighbouring
// seeds and trees get unrelated streams.
uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The random draws are written on the engine's raw output rather than std::*_distribution, whose
// algorithms the standard leaves open: the same seed gives the same forest with any library.

// Uniform in [0, n). REQUIRES: n > 0
uint64_t UniformIndex(std::mt19937_64& rng, uint64_t n) {
  // Reject the top partial block of 2^64 so that every residue is equally likely.
  const uint64_t reject_below = (0 - n) % n;
  uint64_t r = rng();
  while (r < reject_below) r = rng();
  return r % n;
}

// Uniform in [0, 1), 53 random bits.
double UniformUnit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// k distinct indices out of [0, n) by the first k steps of a Fisher-Yates shuffle. Small samples of
// large tables keep the displaced entries in a hash map instead of materialising [0, n); both
// branches consume the same draws and return the same indices.
std::vector<size_t> SampleWithoutReplacement(std::mt19937_64& rng, size_t n, size_t k) {
  std::vector<size_t> out(k);
  if (k * 8 >= n) {
    std::vector<size_t> perm(n);
    std::iota(perm.begin(), perm.end(), size_t{0});
    for (size_t i = 0; i < k; ++i) {
      std::swap(perm[i], perm[i + UniformIndex(rng, n - i)]);
      out[i] = perm[i];
    }
    return out;
  }
  std::unordered_map<size_t, size_t> displaced;
  auto at = [&displaced](size_t i) {
    auto it = displaced.find(i);
    return it == displaced.end() ? i : it->second;
  };
  for (size_t i = 0; i < k; ++i) {
    const size_t j = i + UniformIndex(rng, n - i);
    const size_t value_j = at(j);
    displaced[j] = at(i);
    out[i] = value_j;
  }
  return out;
}

// The smallest d with 2^d >= n: ceil(log2(n)) without floating point.
int CeilLog2(size_t n) {
  int d = 0;
  while (d < 63 && (size_t{1} << d) < n) ++d;
  return d;
}

// Grows one isolation tree on `psi` rows of x drawn with `rng`.
Tree BuildTree(std::span<const float> x, size_t rows, size_t cols, size_t psi, int max_depth,
               std::mt19937_64& rng) {
  // The subsample, copied row-major so the node scans stay in cache.
  const std::vector<size_t> picked = SampleWithoutReplacement(rng, rows, psi);
  std::vector<float> sample(psi * cols);
  for (size_t i = 0; i < psi; ++i) {
    std::copy_n(x.begin() + picked[i] * cols, cols, sample.begin() + i * cols);
  }
  // Sample rows of the node being split are idx[begin, end); children partition the range.
  std::vector<uint32_t> idx(psi);
  std::iota(idx.begin(), idx.end(), uint32_t{0});

  Tree tree;
  auto add_node = [&tree]() {
    tree.left.push_back(-1);
    tree.right.push_back(-1);
    tree.feature.push_back(0);
    tree.threshold.push_back(0);
    tree.default_left.push_back(1);
    tree.value.push_back(0);
    tree.cover.push_back(0);
    return static_cast<int32_t>(tree.left.size() - 1);
  };
  struct Pending {
    int32_t node;
    size_t begin, end;
    int depth;
  };
  // Breadth first, as XGBoost numbers the nodes of a depthwise tree.
  std::vector<Pending> queue = {{add_node(), 0, psi, 0}};
  std::vector<float> lo(cols), hi(cols);
  std::vector<int32_t> candidates;
  candidates.reserve(cols);
  for (size_t q = 0; q < queue.size(); ++q) {
    const Pending p = queue[q];
    const size_t n = p.end - p.begin;
    tree.cover[p.node] = static_cast<float>(n);

    candidates.clear();
    if (n > 1 && p.depth < max_depth) {
      const float* first = &sample[idx[p.begin] * cols];
      std::copy_n(first, cols, lo.begin());
      std::copy_n(first, cols, hi.begin());
      for (size_t i = p.begin + 1; i < p.end; ++i) {
        const float* r = &sample[idx[i] * cols];
        for (size_t f = 0; f < cols; ++f) {
          lo[f] = std::min(lo[f], r[f]);
          hi[f] = std::max(hi[f], r[f]);
        }
      }
      for (size_t f = 0; f < cols; ++f) {
        if (lo[f] < hi[f]) candidates.push_back(static_cast<int32_t>(f));
      }
    }
    if (candidates.empty()) {
      tree.value[p.node] = static_cast<float>(p.depth + IsolationAveragePathLength(n));
      continue;
    }

    const int32_t f = candidates[UniformIndex(rng, candidates.size())];
    const float a = lo[f], b = hi[f];
    // Uniform in [a, b) in double, then rounded to the float the tree stores. Rounding may land
    // on a, which would send nothing left: the smallest float above a still separates a from b.
    float t = static_cast<float>(a + UniformUnit(rng) * (static_cast<double>(b) - a));
    if (!(t > a)) t = std::nextafter(a, std::numeric_limits<float>::infinity());
    t = std::min(t, b);
    const auto mid = std::partition(idx.begin() + p.begin, idx.begin() + p.end,
                                    [&](uint32_t i) { return sample[i * cols + f] < t; });
    const size_t split = static_cast<size_t>(mid - idx.begin());

    const int32_t left = add_node();
    const int32_t right = add_node();
    tree.left[p.node] = left;
    tree.right[p.node] = right;
    tree.feature[p.node] = f;
    tree.threshold[p.node] = t;
    queue.push_back({left, p.begin, split, p.depth + 1});
    queue.push_back({right, split, p.end, p.depth + 1});
  }
  return tree;
}

Status ValidateInput(std::span<const float> x, size_t rows, size_t cols,
                     const IsolationForestOptions& options) {
  if (rows < 2) {
    return InvalidArgument("isolation forest: need at least 2 training rows, got " +
                           std::to_string(rows));
  }
  if (cols == 0) return InvalidArgument("isolation forest: need at least 1 feature column, got 0");
  if (rows > x.size() / cols || x.size() != rows * cols) {
    return InvalidArgument("isolation forest: data has " + std::to_string(x.size()) +
                           " values, expected rows * cols = " + std::to_string(rows) + " * " +
                           std::to_string(cols));
  }
  if (options.trees < 1) {
    return InvalidArgument("isolation forest: trees must be >= 1, got " +
                           std::to_string(options.trees));
  }
  if (options.sample_size < 2) {
    return InvalidArgument("isolation forest: sample_size must be >= 2, got " +
                           std::to_string(options.sample_size));
  }
  if (options.threads < 0) {
    return InvalidArgument("isolation forest: threads must be >= 0 (0 = all cores), got " +
                           std::to_string(options.threads));
  }
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) {
      return InvalidArgument("isolation forest: training data row " + std::to_string(i / cols) +
                             ", column " + std::to_string(i % cols) + " is " +
                             (std::isnan(x[i]) ? "NaN" : "infinite") +
                             "; missing values are not supported in training");
    }
  }
  return Status::Ok();
}

}  // namespace

double IsolationAveragePathLength(size_t n) {
  if (n <= 1) return 0;
  if (n == 2) return 1;
  const double m = static_cast<double>(n - 1);
  return 2 * (std::log(m) + std::numbers::egamma) - 2 * m / static_cast<double>(n);
}

StatusOr<Ensemble> TrainIsolationForest(std::span<const float> x, size_t rows, size_t cols,
                                        const IsolationForestOptions& options) {
  VIGIL_RETURN_IF_ERROR(ValidateInput(x, rows, cols, options));
  const size_t psi = std::min(static_cast<size_t>(options.sample_size), rows);
  const int max_depth = CeilLog2(psi);
  const size_t num_trees = static_cast<size_t>(options.trees);

  Ensemble e;
  e.num_features = cols;
  e.trees.resize(num_trees);
  e.base_margin = 0;
  e.tree_scale = 1.0 / static_cast<double>(num_trees);
  e.link = Link::kIsolation;
  e.isolation_norm = IsolationAveragePathLength(psi);

  // Trees are independent: each takes the next index and seeds its own generator from it, so
  // which thread grows which tree does not matter. Each worker reports into its own slot.
  std::atomic<size_t> next{0};
  auto work = [&](Status* status) {
    try {
      for (size_t t = next.fetch_add(1); t < num_trees; t = next.fetch_add(1)) {
        std::mt19937_64 rng(Mix(options.seed ^ Mix(t + 0x9e3779b97f4a7c15ULL)));
        e.trees[t] = BuildTree(x, rows, cols, psi, max_depth, rng);
      }
    } catch (const std::bad_alloc&) {
      *status = Status(StatusCode::kResourceExhausted, "isolation forest: out of memory");
    } catch (const std::exception& ex) {
      *status = Internal(std::string("isolation forest: ") + ex.what());
    }
  };

  size_t num_threads = options.threads == 0 ? std::thread::hardware_concurrency()
                                            : static_cast<size_t>(options.threads);
  num_threads = std::clamp<size_t>(num_threads, 1, num_trees);
  std::vector<Status> statuses(num_threads);
  std::vector<std::thread> helpers;
  for (size_t i = 1; i < num_threads; ++i) {
    try {
      helpers.emplace_back(work, &statuses[i]);
    } catch (const std::system_error&) {
      break;  // Fewer threads than asked: the ones running take the remaining trees.
    }
  }
  work(&statuses[0]);
  for (std::thread& h : helpers) h.join();
  for (const Status& s : statuses) VIGIL_RETURN_IF_ERROR(s);
  return e;
}

std::string IsolationForestToJson(const Ensemble& e) {
  using nlohmann::json;
  const std::string num_feature = std::to_string(e.num_features);
  json trees = json::array();
  for (size_t t = 0; t < e.trees.size(); ++t) {
    const Tree& tree = e.trees[t];
    const size_t n = tree.size();
    std::vector<int32_t> parents(n, kNoParent), split_indices(n, 0);
    // Floats stored as the doubles they convert to, which nlohmann prints shortest-round-trip.
    std::vector<double> conditions(n), base_weights(n, 0.0), hessians(n);
    std::vector<int> default_left(n);
    for (size_t i = 0; i < n; ++i) {
      const auto node = static_cast<int32_t>(i);
      default_left[i] = tree.default_left[i] ? 1 : 0;
      hessians[i] = tree.cover[i];
      if (tree.is_leaf(node)) {
        conditions[i] = tree.value[i];
        base_weights[i] = tree.value[i];
      } else {
        parents[tree.left[i]] = node;
        parents[tree.right[i]] = node;
        split_indices[i] = tree.feature[i];
        conditions[i] = tree.threshold[i];
      }
    }
    trees.push_back({
        {"id", t},
        {"left_children", tree.left},
        {"right_children", tree.right},
        {"parents", parents},
        {"split_indices", split_indices},
        {"split_conditions", conditions},
        {"default_left", default_left},
        {"sum_hessian", hessians},
        {"base_weights", base_weights},
        {"loss_changes", std::vector<double>(n, 0.0)},
        {"split_type", std::vector<int>(n, 0)},
        {"categories", json::array()},
        {"categories_nodes", json::array()},
        {"categories_segments", json::array()},
        {"categories_sizes", json::array()},
        {"tree_param",
         {{"num_deleted", "0"},
          {"num_feature", num_feature},
          {"num_nodes", std::to_string(n)},
          {"size_leaf_vector", "0"}}},
    });
  }

  char norm[32];
  std::snprintf(norm, sizeof(norm), "%.17g", e.isolation_norm);
  json model = {
      {"learner",
       {{"attributes", json::object()},
        {"feature_names", json::array()},
        {"feature_types", json::array()},
        {"gradient_booster",
         {{"model",
           {{"gbtree_model_param",
             {{"num_parallel_tree", "1"}, {"num_trees", std::to_string(e.trees.size())}}},
            {"tree_info", std::vector<int>(e.trees.size(), 0)},
            {"trees", std::move(trees)}}},
          {"name", "gbtree"}}},
        {"learner_model_param",
         {{"base_score", "0"},
          {"boost_from_average", "0"},
          {"num_class", "0"},
          {"num_feature", num_feature},
          {"num_target", "1"}}},
        {"objective", {{"name", "vigil:isolation"}, {"isolation_norm", norm}}}}},
      {"version", {1, 7, 4}},
  };
  return model.dump();
}

double IsolationScoreReference(const Ensemble& e, std::span<const float> row) {
  std::vector<float> standardised;
  if (!e.mean.empty()) {
    standardised.resize(row.size());
    Standardize(row, e.mean, e.scale, standardised);
    row = standardised;
  }
  double sum = 0;
  for (const Tree& tree : e.trees) {
    int32_t node = 0;
    while (!tree.is_leaf(node)) {
      const float v = row[tree.feature[node]];
      const bool go_left = std::isnan(v) ? tree.default_left[node] != 0 : v < tree.threshold[node];
      node = go_left ? tree.left[node] : tree.right[node];
    }
    sum += tree.value[node];
  }
  const double margin = e.base_margin + e.tree_scale * sum;
  return std::exp2(-margin / e.isolation_norm);
}

}  // namespace vigil
