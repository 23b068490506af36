#include "vigil/forest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/log.h"
#include "model/tree.h"
#include "vigil/model.h"

namespace vigil {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// A deterministic synthetic fraud-like data set: `cols` features of assorted scales, a label
// driven by a few of them with interactions, and missing values in four columns (so that XGBoost
// learns default directions).
struct Data {
  size_t rows = 0, cols = 0;
  std::vector<float> x;
  std::vector<uint8_t> y;
  std::vector<std::string> names;
};

Data MakeData(size_t rows, size_t cols, uint32_t seed, double missing_rate) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  Data d;
  d.rows = rows;
  d.cols = cols;
  d.x.resize(rows * cols);
  d.y.resize(rows);
  for (size_t c = 0; c < cols; ++c) d.names.push_back("f" + std::to_string(c));
  for (size_t r = 0; r < rows; ++r) {
    float* x = &d.x[r * cols];
    for (size_t c = 0; c < cols; ++c) {
      // Mixed scales: amounts, counts, ratios.
      x[c] = c % 3 == 0   ? std::exp(normal(rng)) * 50.0f
             : c % 3 == 1 ? std::floor(unit(rng) * 12)
                          : normal(rng);
    }
    const double z = 0.02 * x[0] - 2.0 + 0.3 * x[1] + (x[2] > 0.5 ? 1.2 : 0.0) +
                     (x[4] * x[5] > 3 ? 0.8 : -0.2) + 0.5 * normal(rng);
    d.y[r] = z > 0 ? 1 : 0;
    for (size_t c : {size_t{0}, size_t{2}, size_t{5}, cols - 1}) {
      if (unit(rng) < missing_rate) x[c] = kNaN;
    }
  }
  return d;
}

std::vector<Kernel> AvailableKernels(const Ensemble& any) {
  std::vector<Kernel> out;
  for (Kernel k : {Kernel::kScalar, Kernel::kAvx2, Kernel::kAvx512}) {
    if (Forest::FromEnsemble(any, k).ok()) out.push_back(k);
  }
  return out;
}

struct Case {
  Algorithm algo;
  size_t cols;
  std::map<std::string, std::string> params;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << AlgorithmName(c.algo) << " with " << c.cols << " features";
}

class ForestVsXGBoostTest : public ::testing::TestWithParam<Case> {};

// Forest agrees with XGBoost's own predictor within 1e-6 on every row (with and without missing
// values), every kernel gives bit-identical answers, and batch results do not depend on threads.
TEST_P(ForestVsXGBoostTest, MatchesXGBoostOnEveryRow) {
  const Case& c = GetParam();
  // TrainModel standardises logistic inputs with a plain mean, which a NaN would poison, so the
  // linear model trains on complete rows; it still scores rows with missing values below.
  const Data train = MakeData(3000, c.cols, 11, c.algo == Algorithm::kLogistic ? 0.0 : 0.08);
  // Enough rows that PredictBatch with 3 threads really splits the batch.
  const Data test = MakeData(12500, c.cols, 12, 0.08);
  TrainOptions options;
  options.algo = c.algo;
  options.params = c.params;
  options.threads = 1;
  options.seed = 5;
  auto model = TrainModel(train.x, train.y, train.names, options);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto reference = PredictWithXGBoost(*model, test.x, 1);
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();

  auto auto_forest = Forest::FromModel(*model);
  ASSERT_TRUE(auto_forest.ok()) << auto_forest.status().ToString();
  EXPECT_EQ((*auto_forest)->num_features(), c.cols);
  const std::vector<Kernel> kernels = AvailableKernels((*auto_forest)->ensemble());
  ASSERT_FALSE(kernels.empty());
  // Auto picks one of the kernels this model can be forced to (timed on this machine: which
  // one is not for a test to say); a linear model runs no tree kernel and says scalar.
  EXPECT_NE(std::find(kernels.begin(), kernels.end(), (*auto_forest)->kernel()), kernels.end())
      << KernelName((*auto_forest)->kernel());
  if (c.algo == Algorithm::kLogistic) {
    EXPECT_EQ((*auto_forest)->kernel(), Kernel::kScalar);
  }

  std::vector<double> first;
  for (Kernel k : kernels) {
    SCOPED_TRACE(std::string(KernelName(k)));
    auto forest = Forest::FromModel(*model, k);
    ASSERT_TRUE(forest.ok()) << forest.status().ToString();
    ASSERT_EQ((*forest)->kernel(), k);
    std::vector<double> single(test.rows);
    double max_diff_nan = 0, max_diff_dense = 0;
    size_t rows_with_nan = 0;
    for (size_t r = 0; r < test.rows; ++r) {
      std::span<const float> row(&test.x[r * c.cols], c.cols);
      single[r] = (*forest)->Predict(row);
      bool has_nan = false;
      for (float v : row) has_nan |= std::isnan(v);
      rows_with_nan += has_nan;
      const double diff = std::abs(single[r] - (*reference)[r]);
      (has_nan ? max_diff_nan : max_diff_dense) =
          std::max(has_nan ? max_diff_nan : max_diff_dense, diff);
      ASSERT_NEAR(single[r], (*reference)[r], 1e-6) << "row " << r;
    }
    EXPECT_GT(rows_with_nan, test.rows / 10);
    char diffs[64];
    std::snprintf(diffs, sizeof(diffs), "%.3g / %.3g", max_diff_dense, max_diff_nan);
    RecordProperty("max_abs_diff_dense_nan_" + std::string(KernelName(k)), diffs);
    for (int threads : {1, 3}) {
      std::vector<double> batch(test.rows, -1.0);
      (*forest)->PredictBatch(test.x, batch, threads);
      for (size_t r = 0; r < test.rows; ++r) {
        ASSERT_EQ(batch[r], single[r]) << "threads " << threads << " row " << r;
      }
    }
    if (first.empty()) {
      first = single;
    } else {
      for (size_t r = 0; r < test.rows; ++r) ASSERT_EQ(single[r], first[r]) << "row " << r;
    }
  }
  ASSERT_EQ(kernels.front(), Kernel::kScalar);
  for (size_t r = 0; r < test.rows; ++r) {
    ASSERT_EQ((*auto_forest)->Predict(std::span<const float>(&test.x[r * c.cols], c.cols)),
              first[r])
        << "auto against scalar, row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, ForestVsXGBoostTest,
    ::testing::Values(
        // Vigil's defaults (depth-20 forest, depth-3 boosting, standardised logistic).
        Case{Algorithm::kRandomForest, 17, {{"n_estimators", "40"}}},
        Case{Algorithm::kGbdt, 15, {}}, Case{Algorithm::kLogistic, 19, {}},
        // Deeper boosting on hist, 19 features (two registers of 16 or three of 8), more trees
        // than a multiple of 16.
        Case{Algorithm::kGbdt,
             19,
             {{"n_estimators", "75"}, {"max_depth", "6"}, {"tree_method", "hist"}}},
        Case{Algorithm::kRandomForest, 16, {{"n_estimators", "20"}, {"max_depth", "12"}}}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(AlgorithmName(info.param.algo)) + "_" + std::to_string(info.param.cols) +
             "_" + std::to_string(info.index);
    });

// ------------------------------------------------------------------------------------------
// Hand-built ensembles.

Tree Leaf(float v) {
  Tree t;
  t.left = {-1};
  t.right = {-1};
  t.feature = {0};
  t.threshold = {0};
  t.default_left = {0};
  t.value = {v};
  t.cover = {1};
  return t;
}

// A random tree over `num_features` features, up to `max_depth` deep, sparse (leaves appear at
// every depth), with random default directions.
Tree RandomTree(std::mt19937& rng, size_t num_features, int max_depth) {
  Tree t;
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::uniform_int_distribution<int> feat(0, static_cast<int>(num_features) - 1);
  struct Item {
    int32_t node;
    int depth;
  };
  auto add = [&] {
    t.left.push_back(-1);
    t.right.push_back(-1);
    t.feature.push_back(0);
    t.threshold.push_back(0);
    t.default_left.push_back(0);
    t.value.push_back(0);
    t.cover.push_back(1);
    return static_cast<int32_t>(t.left.size() - 1);
  };
  std::vector<Item> stack = {{add(), 0}};
  while (!stack.empty()) {
    const Item it = stack.back();
    stack.pop_back();
    const bool split = it.depth < max_depth && (it.depth < 2 || unit(rng) < 0.6f);
    if (!split) {
      t.value[it.node] = unit(rng);
      continue;
    }
    const int32_t l = add(), r = add();
    t.left[it.node] = l;
    t.right[it.node] = r;
    t.feature[it.node] = feat(rng);
    t.threshold[it.node] = unit(rng);
    t.default_left[it.node] = unit(rng) > 0;
    stack.push_back({l, it.depth + 1});
    stack.push_back({r, it.depth + 1});
  }
  return t;
}

double ReferenceSum(const Ensemble& e, const float* x) {
  double sum = 0;
  for (const Tree& t : e.trees) {
    int32_t node = 0;
    while (!t.is_leaf(node)) {
      const float v = x[t.feature[node]];
      const bool left = std::isnan(v) ? t.default_left[node] != 0 : v < t.threshold[node];
      node = left ? t.left[node] : t.right[node];
    }
    sum += t.value[node];
  }
  return sum;
}

// Random deep sparse forests over many row widths: every kernel agrees bit for bit, and with a
// plain walk summed in double.
TEST(ForestKernelTest, KernelsAgreeOnRandomDeepForests) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> unit(-1.2f, 1.2f);
  for (size_t nf : {1, 5, 8, 9, 16, 17, 19, 24, 32, 40}) {
    for (int max_depth : {0, 3, 14}) {
      SCOPED_TRACE("features " + std::to_string(nf) + " depth " + std::to_string(max_depth));
      Ensemble e;
      e.num_features = nf;
      e.link = Link::kIdentity;
      e.base_margin = 0.25;
      const int trees = 1 + static_cast<int>(rng() % 40);
      for (int i = 0; i < trees; ++i) e.trees.push_back(RandomTree(rng, nf, max_depth));
      const size_t rows = 300;
      std::vector<float> x(rows * nf);
      for (float& v : x) v = unit(rng) > 1.0f ? kNaN : unit(rng);
      std::vector<std::vector<double>> results;
      for (Kernel k : AvailableKernels(e)) {
        auto forest = Forest::FromEnsemble(e, k);
        ASSERT_TRUE(forest.ok()) << forest.status().ToString();
        std::vector<double> out(rows);
        (*forest)->PredictBatch(x, out);
        for (size_t r = 0; r < rows; ++r) {
          ASSERT_NEAR(out[r], 0.25 + ReferenceSum(e, &x[r * nf]), 1e-4) << KernelName(k);
          ASSERT_EQ((*forest)->PredictMargin(std::span<const float>(&x[r * nf], nf)), out[r]);
        }
        results.push_back(out);
      }
      for (size_t i = 1; i < results.size(); ++i) ASSERT_EQ(results[i], results[0]);
    }
  }
}

// The kernels this CPU runs, asked of the CPU itself rather than of Forest.
std::vector<Kernel> CpuKernels() {
  __builtin_cpu_init();
  std::vector<Kernel> out = {Kernel::kScalar};
  if (__builtin_cpu_supports("avx2")) out.push_back(Kernel::kAvx2);
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl")) {
    out.push_back(Kernel::kAvx512);
  }
  return out;
}

// Every kernel the CPU has, forced one at a time, against the scalar kernel bit for bit. Scoring
// elsewhere goes through the default dispatch, which runs one kernel only, so a kernel that is
// wrong (here the AVX-512 one was, in the sanitizer build only) must fail here. Covers every row
// width up to 32 (AVX-512 keeps a row in one or two registers, AVX2 in one to four), a wide row
// compacted to the features its trees use, missing values, both a pair of rows walked together
// and a row alone, and a batch of more than one block of rows.
TEST(ForestKernelTest, EveryKernelTheCpuHasMatchesTheScalarKernel) {
  const std::vector<Kernel> kernels = CpuKernels();
  std::string names;
  for (Kernel k : kernels) {
    if (!names.empty()) names += " ";
    names += KernelName(k);
  }
  RecordProperty("kernels", names);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> unit(-1.2f, 1.2f);
  std::vector<size_t> widths;
  for (size_t nf = 1; nf <= 32; ++nf) widths.push_back(nf);
  widths.push_back(48);  // 20 of them used: compacted
  for (size_t nf : widths) {
    for (int max_depth : {2, 9}) {
      SCOPED_TRACE("features " + std::to_string(nf) + " depth " + std::to_string(max_depth));
      const size_t used = nf <= 32 ? nf : 20;
      Ensemble e;
      e.num_features = nf;
      e.link = Link::kIdentity;
      e.base_margin = -0.5;
      const int trees = 1 + static_cast<int>(rng() % 100);
      for (int i = 0; i < trees; ++i) {
        Tree t = RandomTree(rng, used, max_depth);
        // Spread the used features over the row (37 is coprime with 48: no two collide).
        if (used < nf) {
          for (int32_t& f : t.feature) f = static_cast<int32_t>((static_cast<size_t>(f) * 37) % nf);
        }
        e.trees.push_back(std::move(t));
      }
      const size_t rows = 301;  // more than one block of 256, and an odd row at the end of each
      std::vector<float> x(rows * nf);
      for (float& v : x) v = unit(rng) > 1.0f ? kNaN : unit(rng);

      auto scalar = Forest::FromEnsemble(e, Kernel::kScalar);
      ASSERT_TRUE(scalar.ok()) << scalar.status().ToString();
      std::vector<double> expected(rows);
      (*scalar)->PredictBatch(x, expected);
      for (Kernel k : kernels) {
        SCOPED_TRACE(std::string(KernelName(k)));
        auto forest = Forest::FromEnsemble(e, k);
        ASSERT_TRUE(forest.ok()) << forest.status().ToString();
        ASSERT_EQ((*forest)->kernel(), k);
        std::vector<double> batch(rows);
        (*forest)->PredictBatch(x, batch);
        for (size_t r = 0; r < rows; ++r) {
          ASSERT_EQ(batch[r], expected[r]) << "batch row " << r;
          ASSERT_EQ((*forest)->PredictMargin(std::span<const float>(&x[r * nf], nf)), expected[r])
              << "single row " << r;
        }
      }
    }
  }
}

// A model splitting on more features than the kernels hold in registers still scores (with the
// portable walk); forcing a SIMD kernel on it is a clear error.
TEST(ForestKernelTest, ManyUsedFeaturesFallBackToScalar) {
  Ensemble e;
  e.num_features = 60;
  e.link = Link::kIdentity;
  std::mt19937 rng(3);
  for (int i = 0; i < 40; ++i) e.trees.push_back(RandomTree(rng, 60, 6));
  auto forest = Forest::FromEnsemble(e);
  ASSERT_TRUE(forest.ok());
  EXPECT_EQ((*forest)->kernel(), Kernel::kScalar);
  std::vector<float> row(60);
  for (size_t i = 0; i < row.size(); ++i) row[i] = std::sin(static_cast<float>(i));
  row[7] = kNaN;
  EXPECT_NEAR((*forest)->PredictMargin(row), ReferenceSum(e, row.data()), 1e-5);
  auto forced = Forest::FromEnsemble(e, Kernel::kAvx2);
  ASSERT_FALSE(forced.ok());
  EXPECT_EQ(forced.status().code(), StatusCode::kInvalidArgument);
}

TEST(ForestKernelTest, ForcingAKernelTheCpuLacksIsAnError) {
  Ensemble e;
  e.num_features = 3;
  e.trees.push_back(Leaf(0.5f));
  __builtin_cpu_init();
  const bool has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl");
  const bool has2 = __builtin_cpu_supports("avx2");
  EXPECT_EQ(Forest::FromEnsemble(e, Kernel::kAvx512).ok(), has512);
  EXPECT_EQ(Forest::FromEnsemble(e, Kernel::kAvx2).ok(), has2);
  EXPECT_TRUE(Forest::FromEnsemble(e, Kernel::kScalar).ok());
  // The error names the kernel asked for and the ones this CPU has.
  for (Kernel k : {Kernel::kAvx2, Kernel::kAvx512}) {
    auto forced = Forest::FromEnsemble(e, k);
    if (forced.ok()) continue;
    EXPECT_EQ(forced.status().code(), StatusCode::kInvalidArgument);
    const std::string& m = forced.status().message();
    EXPECT_NE(m.find("the " + std::string(KernelName(k)) + " kernel"), std::string::npos) << m;
    EXPECT_NE(m.find("it runs auto, scalar"), std::string::npos) << m;
  }
  EXPECT_EQ(KernelName(Kernel::kAvx512), "avx512");
}

// The ensembles the kAuto tests time: a forest of 200 trees of depth 6 (the size of the
// benchmark's gbdt), a small one (the default gbdt's size), a row of 48 features of which 20
// are used (compacted), and one over 60 used features (the portable walk).
std::vector<Ensemble> AutoTestEnsembles() {
  struct Shape {
    size_t features, used;
    int trees, depth;
  };
  std::mt19937 rng(17);
  std::vector<Ensemble> out;
  for (const Shape& s :
       {Shape{16, 16, 200, 6}, Shape{19, 19, 50, 3}, Shape{48, 20, 60, 8}, Shape{60, 60, 40, 6}}) {
    Ensemble e;
    e.num_features = s.features;
    e.link = Link::kSigmoid;
    e.base_margin = -1.5;
    for (int i = 0; i < s.trees; ++i) {
      Tree t = RandomTree(rng, s.used, s.depth);
      // Spread the used features over the row (37 is coprime with every width here: no two
      // collide).
      for (int32_t& f : t.feature) {
        f = static_cast<int32_t>((static_cast<size_t>(f) * 37) % s.features);
      }
      e.trees.push_back(std::move(t));
    }
    out.push_back(std::move(e));
  }
  return out;
}

// Kernel::kAuto times the kernels and keeps one: whichever it is, the CPU has it, the forest
// reports it (never kAuto), one log line names it with the timings, and every score equals the
// scalar kernel's bit for bit, single rows and batches.
TEST(ForestKernelTest, AutoChoosesAKernelTheCpuHasAndScoresAsTheScalarKernel) {
  const std::vector<Kernel> cpu = CpuKernels();
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> unit(-1.2f, 1.2f);
  for (const Ensemble& e : AutoTestEnsembles()) {
    SCOPED_TRACE("features " + std::to_string(e.num_features) + " trees " +
                 std::to_string(e.trees.size()));
    std::vector<std::string> lines;
    SetLogSink([&lines](std::string_view line) { lines.emplace_back(line); });
    auto chosen = Forest::FromEnsemble(e);
    SetLogSink({});
    ASSERT_TRUE(chosen.ok()) << chosen.status().ToString();
    const Kernel k = (*chosen)->kernel();
    EXPECT_NE(k, Kernel::kAuto);
    EXPECT_NE(std::find(cpu.begin(), cpu.end(), k), cpu.end()) << KernelName(k);
    if (e.num_features == 60) {
      EXPECT_EQ(k, Kernel::kScalar);  // more than 32 used features: the portable walk
    }

    ASSERT_EQ(lines.size(), 1u);
    const std::string& line = lines[0];
    EXPECT_NE(line.find("\"msg\":\"forest kernel chosen\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"kernel\":\"" + std::string(KernelName(k)) + "\""), std::string::npos)
        << line;
    EXPECT_NE(line.find("\"calibration_ms\":"), std::string::npos) << line;
    // Timed when there was a choice: a figure for every kernel the CPU has, none for the rest.
    const bool timed = cpu.size() > 1 && e.num_features != 60;
    for (Kernel other : {Kernel::kScalar, Kernel::kAvx2, Kernel::kAvx512}) {
      const std::string null_field = "\"" + std::string(KernelName(other)) + "_us\":null";
      const bool has = std::find(cpu.begin(), cpu.end(), other) != cpu.end();
      EXPECT_EQ(line.find(null_field) == std::string::npos, timed && has) << line;
    }

    const size_t rows = 300, nf = e.num_features;
    std::vector<float> x(rows * nf);
    for (float& v : x) v = unit(rng) > 1.0f ? kNaN : unit(rng);
    auto scalar = Forest::FromEnsemble(e, Kernel::kScalar);
    ASSERT_TRUE(scalar.ok());
    std::vector<double> expected(rows), batch(rows);
    (*scalar)->PredictBatch(x, expected);
    (*chosen)->PredictBatch(x, batch);
    for (size_t r = 0; r < rows; ++r) {
      ASSERT_EQ(batch[r], expected[r]) << "batch row " << r;
      ASSERT_EQ((*chosen)->Predict(std::span<const float>(&x[r * nf], nf)), expected[r])
          << "single row " << r;
    }
  }
}

// The names an operator gives (--kernel, VIGIL_KERNEL) select those kernels: each name parses
// to its kernel, and a forest compiled with it runs it.
TEST(ForestKernelTest, AKernelNameForcesThatKernel) {
  const std::vector<Kernel> cpu = CpuKernels();
  const Ensemble e = AutoTestEnsembles()[1];
  for (const char* name : {"auto", "scalar", "avx2", "avx512"}) {
    SCOPED_TRACE(name);
    auto k = ParseKernel(name);
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    EXPECT_EQ(KernelName(*k), name);
    auto forest = Forest::FromEnsemble(e, *k);
    if (*k == Kernel::kAuto) {
      ASSERT_TRUE(forest.ok());
      EXPECT_NE((*forest)->kernel(), Kernel::kAuto);
    } else if (std::find(cpu.begin(), cpu.end(), *k) != cpu.end()) {
      ASSERT_TRUE(forest.ok()) << forest.status().ToString();
      EXPECT_EQ((*forest)->kernel(), *k);
    } else {
      EXPECT_FALSE(forest.ok());
    }
  }
}

TEST(ForestKernelTest, AnUnknownKernelNameIsAClearError) {
  for (const char* name : {"avx3", "", "AVX2", "avx-512", "scalar ", "sse"}) {
    SCOPED_TRACE(std::string("'") + name + "'");
    auto k = ParseKernel(name);
    ASSERT_FALSE(k.ok());
    EXPECT_EQ(k.status().code(), StatusCode::kInvalidArgument);
    const std::string& m = k.status().message();
    EXPECT_NE(m.find("unknown kernel '" + std::string(name) + "'"), std::string::npos) << m;
    EXPECT_NE(m.find("auto, scalar, avx2 and avx512"), std::string::npos) << m;
  }
}

// An isolation forest: the output is 2^(-mean path length / c(psi)).
TEST(ForestIsolationTest, ScoresTwoToTheMinusMeanPathOverNorm) {
  Ensemble e;
  e.num_features = 2;
  e.link = Link::kIsolation;
  e.isolation_norm = 3.5;
  // Tree 0: x0 < 1 ? (x1 < 0 ? 2 : 3) : 1.  Tree 1: a leaf of path length 4.
  Tree t;
  t.left = {1, 3, -1, -1, -1};
  t.right = {2, 4, -1, -1, -1};
  t.feature = {0, 1, 0, 0, 0};
  t.threshold = {1.0f, 0.0f, 0, 0, 0};
  t.default_left = {1, 0, 0, 0, 0};
  t.value = {0, 0, 1.0f, 2.0f, 3.0f};
  t.cover = {4, 2, 2, 1, 1};
  e.trees = {t, Leaf(4.0f)};
  e.tree_scale = 0.5;
  for (Kernel k : AvailableKernels(e)) {
    SCOPED_TRACE(std::string(KernelName(k)));
    auto forest = Forest::FromEnsemble(e, k);
    ASSERT_TRUE(forest.ok()) << forest.status().ToString();
    const float a[] = {0.5f, -1.0f}, b[] = {0.5f, 1.0f}, c[] = {2.0f, 0.0f}, d[] = {kNaN, kNaN};
    EXPECT_DOUBLE_EQ((*forest)->PredictMargin(a), 3.0);  // (2 + 4) / 2
    EXPECT_DOUBLE_EQ((*forest)->Predict(a), std::exp2(-3.0 / 3.5));
    EXPECT_DOUBLE_EQ((*forest)->Predict(b), std::exp2(-3.5 / 3.5));
    EXPECT_DOUBLE_EQ((*forest)->Predict(c), std::exp2(-2.5 / 3.5));
    // Missing x0 goes left (default), missing x1 goes right: path 3.
    EXPECT_DOUBLE_EQ((*forest)->Predict(d), std::exp2(-3.5 / 3.5));
  }
}

TEST(ForestIsolationTest, FromVigilIsolationJson) {
  const std::string json = R"({"learner": {
      "learner_model_param": {"base_score": "0", "num_class": "0", "num_feature": "2",
                              "num_target": "1"},
      "objective": {"name": "vigil:isolation", "isolation_norm": "2.5"},
      "gradient_booster": {"name": "gbtree", "model": {"tree_info": [0, 0], "trees": [
        {"left_children": [1, -1, -1], "right_children": [2, -1, -1], "split_indices": [1, 0, 0],
         "split_conditions": [0.5, 2.0, 6.0], "default_left": [0, 0, 0], "sum_hessian": [2, 1, 1]},
        {"left_children": [-1], "right_children": [-1], "split_indices": [0],
         "split_conditions": [4.0], "default_left": [0], "sum_hessian": [1]}]}}},
      "version": [1, 7, 4]})";
  auto e = ParseXGBoostJson(json, 2);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->link, Link::kIsolation);
  EXPECT_DOUBLE_EQ(e->isolation_norm, 2.5);
  EXPECT_DOUBLE_EQ(e->tree_scale, 0.5);
  auto forest = Forest::FromEnsemble(*e);
  ASSERT_TRUE(forest.ok());
  const float near[] = {0.0f, 0.0f}, far[] = {0.0f, 1.0f};
  EXPECT_DOUBLE_EQ((*forest)->Predict(near), std::exp2(-3.0 / 2.5));  // (2 + 4) / 2
  EXPECT_DOUBLE_EQ((*forest)->Predict(far), std::exp2(-5.0 / 2.5));   // (6 + 4) / 2
}

TEST(ForestTest, RejectsAMalformedEnsemble) {
  Ensemble e;
  e.num_features = 4;
  Tree t = Leaf(1.0f);
  t.left = {1};  // a child out of range
  e.trees = {t};
  auto forest = Forest::FromEnsemble(e);
  ASSERT_FALSE(forest.ok());
  EXPECT_EQ(forest.status().code(), StatusCode::kInvalidArgument);
  Ensemble empty;
  empty.num_features = 4;
  EXPECT_FALSE(Forest::FromEnsemble(empty).ok());
}

// Standardisation (x - mean) / scale happens in double, rounded to float, before the trees.
TEST(ForestTest, StandardisesBeforeTheTrees) {
  Ensemble e;
  e.num_features = 1;
  e.link = Link::kIdentity;
  Tree t;
  t.left = {1, -1, -1};
  t.right = {2, -1, -1};
  t.feature = {0, 0, 0};
  t.threshold = {0.5f, 0, 0};
  t.default_left = {0, 0, 0};
  t.value = {0, -1.0f, 1.0f};
  t.cover = {2, 1, 1};
  e.trees = {t};
  e.mean = {10.0};
  e.scale = {2.0};
  auto forest = Forest::FromEnsemble(e);
  ASSERT_TRUE(forest.ok());
  const float below[] = {10.9f}, above[] = {11.1f};
  EXPECT_EQ((*forest)->Predict(below), -1.0);
  EXPECT_EQ((*forest)->Predict(above), 1.0);
}

}  // namespace
}  // namespace vigil
