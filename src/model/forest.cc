// Forest: compiles an Ensemble into the layout of forest_layout.h, picks a kernel for the CPU
// (by timing them on the model), and turns the kernels' tree sums into margins and outputs as
// XGBoost does (float arithmetic).
#include "vigil/forest.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "core/log.h"
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

StatusOr<Kernel> ParseKernel(std::string_view name) {
  for (Kernel k : {Kernel::kAuto, Kernel::kScalar, Kernel::kAvx2, Kernel::kAvx512}) {
    if (name == KernelName(k)) return k;
  }
  return InvalidArgument("unknown kernel '" + std::string(name) +
                         "': the kernels are auto, scalar, avx2 and avx512");
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

// "auto, scalar, avx2": what may be forced on this CPU.
std::string KernelsTheCpuHas() {
  std::string out;
  for (Kernel k : {Kernel::kAuto, Kernel::kScalar, Kernel::kAvx2, Kernel::kAvx512}) {
    if (!CpuHas(k)) continue;
    if (!out.empty()) out += ", ";
    out += KernelName(k);
  }
  return out;
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

// The tree sums of n rows with kernel k. REQUIRES: k != kAuto and CpuHas(k).
void KernelTreeSums(Kernel k, const ForestLayout& layout, const float* rows, size_t n,
                    float* sums) {
  switch (k) {
    case Kernel::kAvx512:
      return TreeSumsAvx512(layout, rows, n, sums);
    case Kernel::kAvx2:
      return TreeSumsAvx2(layout, rows, n, sums);
    default:
      return TreeSumsScalar(layout, rows, n, sums);
  }
}

// Kernel::kAuto's calibration: every kernel the CPU has walks the same rows one at a time (as
// serving scores them), in a few rounds taken in turn so that a slow moment of the machine falls
// on all of them; a kernel's figure is its fastest round (another process only ever adds time).
// The timed rounds are sized to kCalibrationBudget from a first, warm-up pass: a few
// milliseconds for a model of a few hundred trees, well under one for a small one.
constexpr size_t kCalibrationRows = 256;
constexpr size_t kCalibrationMinRows = 16;
constexpr size_t kCalibrationProbeRows = 32;
constexpr int kCalibrationRounds = 5;
constexpr double kCalibrationBudgetSeconds = 0.020;
// A kernel within 3% of the fastest counts as fast: the narrower of the two is chosen (less
// power, no AVX-512 frequency licence, and 3% is within the calibration's noise).
constexpr double kCalibrationTie = 1.03;

struct Calibration {
  Kernel chosen = Kernel::kScalar;
  std::string why;
  // Microseconds per row of the tree walk, by Kernel (NaN: not timed).
  std::array<double, 4> us_per_row;
  size_t rows = 0;
  int rounds = 0;
  double milliseconds = 0;

  Calibration() { us_per_row.fill(std::numeric_limits<double>::quiet_NaN()); }
};

// Rows for the calibration: every feature the trees split on takes a value next to one of its
// own thresholds, on a random side, so that the walks spread over the trees as real rows' do
// (a walk's steps do not depend on its path, its cache misses do). No missing values: the
// feature engine produces none. Deterministic.
std::vector<float> CalibrationRows(const Ensemble& e, size_t n) {
  std::vector<std::vector<float>> thresholds(e.num_features);
  for (const Tree& t : e.trees) {
    for (size_t node = 0; node < t.size(); ++node) {
      // (Nodes that the root cannot reach were not validated: ignore what they hold.)
      const int32_t feature = t.feature[node];
      if (!t.is_leaf(static_cast<int32_t>(node)) && feature >= 0 &&
          static_cast<size_t>(feature) < e.num_features && std::isfinite(t.threshold[node])) {
        thresholds[feature].push_back(t.threshold[node]);
      }
    }
  }
  std::mt19937 rng(20261201);
  std::vector<float> rows(n * e.num_features, 0.0f);
  for (size_t r = 0; r < n; ++r) {
    for (size_t f = 0; f < e.num_features; ++f) {
      const std::vector<float>& ts = thresholds[f];
      if (ts.empty()) continue;
      const float t = ts[rng() % ts.size()];
      // x == t goes right of the split, the float just below goes left.
      rows[r * e.num_features + f] =
          (rng() & 1) != 0 ? t : std::nextafter(t, -std::numeric_limits<float>::infinity());
    }
  }
  return rows;
}

// For the log: RoundTo(0.63127, 1000) is 0.631.
double RoundTo(double v, double per_unit) { return std::round(v * per_unit) / per_unit; }

// Seconds that kernel k takes to walk rows [0, n) one call per row.
double TimeSingleRows(Kernel k, const ForestLayout& layout, const float* rows, size_t n) {
  float sum;
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < n; ++i) KernelTreeSums(k, layout, rows + i * layout.num_features, 1, &sum);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Times `kernels` (the narrowest first, at least two) on the model and picks the fastest, the
// narrower one on a tie.
Calibration Calibrate(const Ensemble& e, const ForestLayout& layout,
                      const std::vector<Kernel>& kernels) {
  const auto start = std::chrono::steady_clock::now();
  Calibration c;
  const std::vector<float> rows = CalibrationRows(e, kCalibrationRows);
  // Warm-up (the layout into the caches, the branch predictors trained), then an estimate that
  // sizes the timed rounds.
  double probe_seconds = 0;
  for (int pass = 0; pass < 2; ++pass) {
    probe_seconds = 0;
    for (Kernel k : kernels) {
      probe_seconds += TimeSingleRows(k, layout, rows.data(), kCalibrationProbeRows);
    }
  }
  const double seconds_per_row = probe_seconds / kCalibrationProbeRows;  // all kernels
  const double affordable = kCalibrationBudgetSeconds / (kCalibrationRounds * seconds_per_row);
  c.rows = static_cast<size_t>(std::clamp(affordable, static_cast<double>(kCalibrationMinRows),
                                          static_cast<double>(kCalibrationRows)));
  c.rounds = kCalibrationRounds;
  std::array<double, 4> best;
  best.fill(std::numeric_limits<double>::infinity());
  for (int round = 0; round < c.rounds; ++round) {
    for (size_t i = 0; i < kernels.size(); ++i) {
      const Kernel k = kernels[(i + static_cast<size_t>(round)) % kernels.size()];
      double& b = best[static_cast<size_t>(k)];
      b = std::min(b, TimeSingleRows(k, layout, rows.data(), c.rows));
    }
  }
  Kernel fastest = kernels.front();
  for (Kernel k : kernels) {
    if (best[static_cast<size_t>(k)] < best[static_cast<size_t>(fastest)]) fastest = k;
    c.us_per_row[static_cast<size_t>(k)] =
        RoundTo(best[static_cast<size_t>(k)] * 1e6 / static_cast<double>(c.rows), 1000);
  }
  c.chosen = fastest;
  for (Kernel k : kernels) {  // the narrowest within the tie margin
    if (best[static_cast<size_t>(k)] <= kCalibrationTie * best[static_cast<size_t>(fastest)]) {
      c.chosen = k;
      break;
    }
  }
  c.why = c.chosen == fastest
              ? "fastest"
              : "within 3% of " + std::string(KernelName(fastest)) + ": the narrower";
  c.milliseconds = RoundTo(
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count(),
      100);
  return c;
}

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
    KernelTreeSums(kernel, layout, rows, n, sums);
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
  if (!CpuHas(kernel)) {
    return InvalidArgument("the " + std::string(KernelName(kernel)) +
                           " kernel needs instructions this CPU does not have; it runs " +
                           KernelsTheCpuHas());
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
    Calibration c;
    std::vector<Kernel> candidates;
    for (Kernel k : {Kernel::kScalar, Kernel::kAvx2, Kernel::kAvx512}) {
      if (CpuHas(k)) candidates.push_back(k);
    }
    if (ensemble.linear) {
      c.why = "a linear model: no tree kernel runs";
    } else if (!impl->has_layout) {
      c.why = "more than " + std::to_string(kMaxRegisterFeatures) +
              " features split on: the portable walk scores it";
    } else if (candidates.size() == 1) {
      c.why = "the only kernel this CPU has";
    } else {
      c = Calibrate(ensemble, impl->layout, candidates);
    }
    kernel = c.chosen;
    const auto us = [&](Kernel k) { return c.us_per_row[static_cast<size_t>(k)]; };
    Log(LogLevel::kInfo, "forest kernel chosen",
        {{"kernel", KernelName(kernel)},
         {"why", c.why},
         {"trees", ensemble.trees.size()},
         {"features", ensemble.num_features},
         {"scalar_us", us(Kernel::kScalar)},
         {"avx2_us", us(Kernel::kAvx2)},
         {"avx512_us", us(Kernel::kAvx512)},
         {"rows", c.rows},
         {"rounds", c.rounds},
         {"calibration_ms", c.milliseconds}});
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
