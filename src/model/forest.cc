// Forest: compiles an Ensemble into the layout of forest_layout.h, picks a kernel for the CPU,
// and turns the kernels' tree sums into margins and outputs as XGBoost does (float arithmetic).
#include "vigil/forest.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "model/forest_layout.h"
#include "model/tree.h"

namespace vigil {

std::string_view KernelName(Kernel k) {
  switch (k) {
    case Kernel::kAuto:
      return "auto";
    case Kernel::kScalar:
      return "scalar";
    case Kernel::kAvx2:
      return "avx2";
    case Kernel::kAvx512:
      return "avx512";
  }
  return "unknown";
}

namespace {

bool CpuHas(Kernel k) {
  __builtin_cpu_init();
  switch (k) {
    case Kernel::kAuto:
    case Kernel::kScalar:
      return true;
    case Kernel::kAvx2:
      return __builtin_cpu_supports("avx2");
    case Kernel::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
  }
  return false;
}

// Depth of the deepest leaf (the root alone: 0). REQUIRES: the tree passed ValidateEnsemble.
int TreeDepth(const Tree& t) {
  int depth = 0;
  std::vector<std::pair<int32_t, int>> stack = {{0, 0}};
  while (!stack.empty()) {
    auto [node, d] = stack.back();
    stack.pop_back();
    depth = std::max(depth, d);
    if (!t.is_leaf(node)) {
      stack.push_back({t.left[node], d + 1});
      stack.push_back({t.right[node], d + 1});
    }
  }
  return depth;
}

// The canonical order of the trees: deepest first (stable), so that each group of 16 and each
// run of groups walked together need about the same number of steps.
std::vector<int32_t> CanonicalOrder(const Ensemble& e, std::vector<int>* depths) {
  depths->resize(e.trees.size());
  for (size_t i = 0; i < e.trees.size(); ++i) (*depths)[i] = TreeDepth(e.trees[i]);
  std::vector<int32_t> order(e.trees.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return (*depths)[a] > (*depths)[b]; });
  return order;
}

// Builds the SIMD-friendly layout. Returns false when the trees use more features than a row
// register set holds (the portable wide walk then scores the model).
StatusOr<bool> BuildLayout(const Ensemble& e, const std::vector<int32_t>& order,
                           const std::vector<int>& depths, ForestLayout* out) {
  ForestLayout f;
  f.num_features = e.num_features;
  std::vector<int32_t> feature_map(e.num_features);
  for (size_t i = 0; i < feature_map.size(); ++i) feature_map[i] = static_cast<int32_t>(i);
  f.row_width = e.num_features;
  if (e.num_features > static_cast<size_t>(kMaxRegisterFeatures)) {
    std::vector<uint8_t> used(e.num_features, 0);
    for (const Tree& t : e.trees) {
      for (size_t n = 0; n < t.size(); ++n) {
        // (Nodes that the root cannot reach were not validated: ignore what they hold.)
        const int32_t feature = t.feature[n];
        if (!t.is_leaf(static_cast<int32_t>(n)) && feature >= 0 &&
            static_cast<size_t>(feature) < e.num_features) {
          used[feature] = 1;
        }
      }
    }
    for (size_t i = 0; i < used.size(); ++i) {
      if (used[i]) {
        feature_map[i] = static_cast<int32_t>(f.compact_features.size());
        f.compact_features.push_back(static_cast<int32_t>(i));
      }
    }
    if (f.compact_features.size() > static_cast<size_t>(kMaxRegisterFeatures)) return false;
    f.row_width = f.compact_features.size();
    // An unused-feature model still needs a non-empty compact row for the kernels' loads.
    if (f.compact_features.empty()) f.compact_features.push_back(0);
  }

  f.num_trees = e.trees.size();
  f.num_groups = (e.trees.size() + kGroupLanes - 1) / kGroupLanes;
  f.depth.assign(f.num_groups, 0);
  f.top_threshold.assign(f.num_groups * kTopNodes * kGroupLanes, 0.0f);
  f.top_info.assign(f.num_groups * kTopNodes * kGroupLanes, 0);
  constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
  struct Pending {
    int32_t tree;  // -1: an empty lane, a leaf of value -0.0
    int32_t node;
    uint32_t slot;
  };
  auto is_leaf = [&](int32_t tree, int32_t node) {
    return tree < 0 || e.trees[tree].is_leaf(node);
  };
  // Allocates n consecutive slots of the node array.
  auto allocate = [&](uint32_t n) -> StatusOr<uint32_t> {
    const size_t at = f.node.size();
    if (at + n > kMaxLayoutNodes) {
      return InvalidArgument("the model has too many nodes to compile (more than " +
                             std::to_string(kMaxLayoutNodes) + ")");
    }
    f.node.resize(at + n);
    f.leaf.resize(at + n);
    return static_cast<uint32_t>(at);
  };
  auto set_node = [&](uint32_t slot, float threshold, uint32_t info, float leaf) {
    uint32_t bits;
    std::memcpy(&bits, &threshold, sizeof bits);
    f.node[slot] = bits | (uint64_t{info} << 32);
    f.leaf[slot] = leaf;
  };
  std::deque<Pending> queue;
  for (size_t g = 0; g < f.num_groups; ++g) {
    int32_t tree_of[kGroupLanes];
    for (int j = 0; j < kGroupLanes; ++j) {
      const size_t k = g * kGroupLanes + j;
      tree_of[j] = k < order.size() ? order[k] : -1;
      if (tree_of[j] >= 0) f.depth[g] = std::max(f.depth[g], depths[tree_of[j]] - kTopLevels);
    }
    // The top levels, complete: node_at[p] is the tree node on path p (a leaf repeats down its
    // right-hand paths as pass-through nodes).
    for (int j = 0; j < kGroupLanes; ++j) {
      const int32_t tree = tree_of[j];
      std::vector<int32_t> node_at = {0};
      for (int level = 0; level < kTopLevels; ++level) {
        std::vector<int32_t> next(node_at.size() * 2);
        for (size_t p = 0; p < node_at.size(); ++p) {
          const int32_t node = node_at[p];
          const size_t at = ((g * kTopNodes) + (size_t{1} << level) - 1 + p) * kGroupLanes + j;
          uint32_t info = 0;
          float threshold = kNaN;
          if (is_leaf(tree, node)) {
            next[2 * p] = next[2 * p + 1] = node;
          } else {
            const Tree& t = e.trees[tree];
            threshold = t.threshold[node];
            info = (t.default_left[node] ? kInfoDefaultLeft : 0u) |
                   static_cast<uint32_t>(feature_map[t.feature[node]]);
            next[2 * p] = t.left[node];
            next[2 * p + 1] = t.right[node];
          }
          if (level == kTopLevels - 1) {
            // Link to the node array: a split's two children side by side, or the leaf itself.
            if (is_leaf(tree, node)) {
              VIGIL_ASSIGN_OR_RETURN(const uint32_t slot, allocate(1));
              queue.push_back({tree, node, slot});
              info |= slot << kInfoChildShift;
            } else {
              VIGIL_ASSIGN_OR_RETURN(const uint32_t left, allocate(2));
              queue.push_back({tree, next[2 * p], left});
              queue.push_back({tree, next[2 * p + 1], left + 1});
              info |= (left + 1) << kInfoChildShift;
            }
          }
          f.top_threshold[at] = threshold;
          f.top_info[at] = info;
        }
        node_at = std::move(next);
      }
    }
    // Below the top: breadth-first over the group's trees.
    while (!queue.empty()) {
      const Pending p = queue.front();
      queue.pop_front();
      if (is_leaf(p.tree, p.node)) {
        // A leaf is its own right child.
        set_node(p.slot, kNaN, p.slot << kInfoChildShift,
                 p.tree < 0 ? -0.0f : e.trees[p.tree].value[p.node]);
        continue;
      }
      const Tree& t = e.trees[p.tree];
      VIGIL_ASSIGN_OR_RETURN(const uint32_t left, allocate(2));
      set_node(p.slot, t.threshold[p.node],
               ((left + 1) << kInfoChildShift) | (t.default_left[p.node] ? kInfoDefaultLeft : 0u) |
                   static_cast<uint32_t>(feature_map[t.feature[p.node]]),
               0.0f);
      queue.push_back({p.tree, t.left[p.node], left});
      queue.push_back({p.tree, t.right[p.node], left + 1});
    }
  }
  *out = std::move(f);
  return true;
}

// XGBoost's logistic transform, in float (xgboost/src/common/math.h, 1.7).
inline float SigmoidF(float x) { return 1.0f / (1.0f + std::exp(-x)); }

constexpr size_t kBlockRows = 256;
// Below this many rows per thread, starting threads costs more than it saves.
constexpr size_t kMinRowsPerThread = 4096;

}  // namespace

struct Forest::Impl {
  Ensemble ensemble;
  Kernel kernel = Kernel::kScalar;
  bool has_layout = false;
  ForestLayout layout;
  // For the wide walk (more than kMaxRegisterFeatures features used): the canonical order.
  std::vector<int32_t> order;
  bool standardize = false;
  bool unit_scale = true;
  float base_margin_f = 0;

  // The tree sums of n rows (already standardised), in the canonical order.
  void TreeSums(const float* rows, size_t n, float* sums) const {
    if (!has_layout) return WideTreeSums(rows, n, sums);
    switch (kernel) {
      case Kernel::kAvx512:
        return TreeSumsAvx512(layout, rows, n, sums);
      case Kernel::kAvx2:
        return TreeSumsAvx2(layout, rows, n, sums);
      default:
        return TreeSumsScalar(layout, rows, n, sums);
    }
  }

  // A plain walk of the canonical trees for rows of many features, with the kernels'
  // accumulation order (16 lanes, group after group, ReduceLanes).
  void WideTreeSums(const float* rows, size_t n, float* sums) const {
    const size_t nf = ensemble.num_features;
    const size_t groups = (order.size() + kGroupLanes - 1) / kGroupLanes;
    for (size_t i = 0; i < n; ++i) {
      const float* x = rows + i * nf;
      float lanes[kGroupLanes];
      std::fill(lanes, lanes + kGroupLanes, -0.0f);
      for (size_t g = 0; g < groups; ++g) {
        for (int j = 0; j < kGroupLanes; ++j) {
          const size_t k = g * kGroupLanes + j;
          float v = -0.0f;
          if (k < order.size()) {
            const Tree& t = ensemble.trees[order[k]];
            int32_t node = 0;
            while (!t.is_leaf(node)) {
              const float xv = x[t.feature[node]];
              const bool left = std::isnan(xv) ? t.default_left[node] != 0 : xv < t.threshold[node];
              node = left ? t.left[node] : t.right[node];
            }
            v = t.value[node];
          }
          lanes[j] += v;
        }
      }
      sums[i] = ReduceLanes(lanes);
    }
  }

  // XGBoost's gblinear: psum = bias + base, then += x_j * w_j over the present features, in
  // float, in feature order.
  double LinearMargin(const float* x) const {
    float psum = ensemble.linear_bias + base_margin_f;
    const float* w = ensemble.linear_weights.data();
    for (size_t j = 0; j < ensemble.num_features; ++j) {
      if (!std::isnan(x[j])) {
        const float term = x[j] * w[j];  // rounded apart, as XGBoost's build (no FMA) does
        psum += term;
      }
    }
    return psum;
  }

  double Margin(float tree_sum) const {
    // XGBoost starts from the base margin and adds the trees in float.
    if (unit_scale) return static_cast<double>(base_margin_f + tree_sum);
    return ensemble.base_margin + ensemble.tree_scale * static_cast<double>(tree_sum);
  }

  double Output(double margin) const {
    switch (ensemble.link) {
      case Link::kSigmoid:
        return SigmoidF(static_cast<float>(margin));
      case Link::kIdentity:
        return margin;
      case Link::kIsolation:
        return std::exp2(-margin / ensemble.isolation_norm);
    }
    return margin;
  }

  void Standardize(const float* x, size_t n, float* out) const {
    const size_t len = n * ensemble.num_features;
    vigil::Standardize({x, len}, ensemble.mean, ensemble.scale, {out, len});
  }

  // Outputs (or margins) of rows [0, n).
  void Run(const float* rows, size_t n, double* out, bool margins) const {
    const size_t nf = ensemble.num_features;
    thread_local std::vector<float> scratch;
    float sums[kBlockRows];
    for (size_t b = 0; b < n; b += kBlockRows) {
      const size_t m = std::min(kBlockRows, n - b);
      const float* x = rows + b * nf;
      if (standardize) {
        if (scratch.size() < kBlockRows * nf) scratch.resize(kBlockRows * nf);
        Standardize(x, m, scratch.data());
        x = scratch.data();
      }
      if (ensemble.linear) {
        for (size_t i = 0; i < m; ++i) {
          const double margin = LinearMargin(x + i * nf);
          out[b + i] = margins ? margin : Output(margin);
        }
      } else {
        TreeSums(x, m, sums);
        for (size_t i = 0; i < m; ++i) {
          const double margin = Margin(sums[i]);
          out[b + i] = margins ? margin : Output(margin);
        }
      }
    }
  }
};

Forest::Forest(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Forest::~Forest() = default;

StatusOr<std::unique_ptr<Forest>> Forest::FromModel(const ModelFile& model, Kernel kernel) {
  VIGIL_ASSIGN_OR_RETURN(Ensemble e,
                         ParseXGBoostJson(model.xgboost_json, model.feature_names.size()));
  if (!model.feature_mean.empty() || !model.feature_scale.empty()) {
    e.mean = model.feature_mean;
    e.scale = model.feature_scale;
  }
  return FromEnsemble(std::move(e), kernel);
}

StatusOr<std::unique_ptr<Forest>> Forest::FromEnsemble(Ensemble ensemble, Kernel kernel) {
  VIGIL_RETURN_IF_ERROR(ValidateEnsemble(ensemble));
  if (kernel != Kernel::kAuto && !CpuHas(kernel)) {
    return InvalidArgument("the " + std::string(KernelName(kernel)) +
                           " kernel needs instructions this CPU does not have");
  }
  auto impl = std::make_unique<Impl>();
  impl->standardize = !ensemble.mean.empty();
  impl->unit_scale = ensemble.tree_scale == 1.0;
  impl->base_margin_f = static_cast<float>(ensemble.base_margin);
  if (!ensemble.linear) {
    std::vector<int> depths;
    impl->order = CanonicalOrder(ensemble, &depths);
    VIGIL_ASSIGN_OR_RETURN(impl->has_layout,
                           BuildLayout(ensemble, impl->order, depths, &impl->layout));
  }
  const bool simd_ok = ensemble.linear || impl->has_layout;
  if (kernel == Kernel::kAuto) {
    kernel = Kernel::kScalar;
    if (simd_ok && CpuHas(Kernel::kAvx2)) kernel = Kernel::kAvx2;
    if (simd_ok && CpuHas(Kernel::kAvx512)) kernel = Kernel::kAvx512;
  } else if (kernel != Kernel::kScalar && !simd_ok) {
    return InvalidArgument("the " + std::string(KernelName(kernel)) + " kernel holds at most " +
                           std::to_string(kMaxRegisterFeatures) +
                           " features in registers, and this model splits on more; use the "
                           "scalar kernel");
  }
  impl->kernel = kernel;
  impl->ensemble = std::move(ensemble);
  return std::unique_ptr<Forest>(new Forest(std::move(impl)));
}

size_t Forest::num_features() const { return impl_->ensemble.num_features; }
size_t Forest::num_trees() const { return impl_->ensemble.trees.size(); }
Kernel Forest::kernel() const { return impl_->kernel; }
const Ensemble& Forest::ensemble() const { return impl_->ensemble; }

double Forest::PredictMargin(std::span<const float> row) const {
  double margin;
  impl_->Run(row.data(), 1, &margin, /*margins=*/true);
  return margin;
}

double Forest::Predict(std::span<const float> row) const {
  double out;
  impl_->Run(row.data(), 1, &out, /*margins=*/false);
  return out;
}

void Forest::PredictBatch(std::span<const float> rows, std::span<double> out, int threads) const {
  const size_t n = out.size();
  const size_t nf = impl_->ensemble.num_features;
  size_t workers = threads > 1 ? static_cast<size_t>(threads) : 1;
  workers = std::min(workers, std::max<size_t>(1, n / kMinRowsPerThread));
  if (workers <= 1) return impl_->Run(rows.data(), n, out.data(), false);
  // Contiguous chunks; each row's result depends on that row alone, so the split cannot change
  // any output.
  const size_t chunk = (n + workers - 1) / workers;
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  size_t begin = chunk;  // the calling thread takes the first chunk
  for (; begin < n; begin += chunk) {
    const size_t end = std::min(n, begin + chunk);
    try {
      pool.emplace_back([this, &rows, &out, begin, end, nf] {
        impl_->Run(rows.data() + begin * nf, end - begin, out.data() + begin, false);
      });
    } catch (const std::system_error&) {
      // No thread to be had: score the chunk here.
      impl_->Run(rows.data() + begin * nf, end - begin, out.data() + begin, false);
    }
  }
  impl_->Run(rows.data(), std::min(chunk, n), out.data(), false);
  for (std::thread& t : pool) t.join();
}

}  // namespace vigil
