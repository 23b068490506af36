#include "model/iforest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "vigil/forest.h"
#include "vigil/metrics.h"

namespace vigil {
namespace {

constexpr double kEulerGamma = 0.5772156649015329;

// c(n) as the paper writes it, H(i) = ln(i) + gamma.
double PaperC(double n) { return 2 * (std::log(n - 1) + kEulerGamma) - 2 * (n - 1) / n; }

// A Gaussian blob of `inliers` rows around the origin, then `outliers` rows about 8 standard
// deviations away in random directions. Row-major, `cols` wide.
std::vector<float> BlobWithOutliers(size_t inliers, size_t outliers, size_t cols, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x;
  for (size_t i = 0; i < inliers * cols; ++i) x.push_back(normal(gen));
  for (size_t i = 0; i < outliers; ++i) {
    std::vector<float> dir(cols);
    float norm = 0;
    for (float& d : dir) {
      d = normal(gen);
      norm += d * d;
    }
    norm = std::sqrt(norm);
    for (float d : dir) x.push_back(8.0f * d / norm);
  }
  return x;
}

// Depth of every node (root 0).
std::vector<int> Depths(const Tree& tree) {
  std::vector<int> depth(tree.size(), 0);
  for (size_t i = 0; i < tree.size(); ++i) {
    if (tree.is_leaf(static_cast<int32_t>(i))) continue;
    depth[tree.left[i]] = depth[i] + 1;
    depth[tree.right[i]] = depth[i] + 1;
  }
  return depth;
}

// Rows to score: the training rows, points far outside them, and rows with missing values.
std::vector<float> ProbeRows(const std::vector<float>& x, size_t cols) {
  std::vector<float> rows(x.begin(), x.begin() + std::min(x.size(), 200 * cols));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (size_t i = 0; i < 20; ++i) {
    for (size_t f = 0; f < cols; ++f) {
      const float far = static_cast<float>(i) * (f % 2 == 0 ? 3.0f : -2.5f);
      rows.push_back(i % 5 == 4 && f == i % cols ? nan : far);
    }
  }
  return rows;
}

void ExpectSameEnsemble(const Ensemble& a, const Ensemble& b) {
  ASSERT_EQ(a.trees.size(), b.trees.size());
  EXPECT_EQ(a.num_features, b.num_features);
  EXPECT_EQ(a.tree_scale, b.tree_scale);
  EXPECT_EQ(a.base_margin, b.base_margin);
  EXPECT_EQ(a.isolation_norm, b.isolation_norm);
  EXPECT_EQ(a.link, b.link);
  for (size_t t = 0; t < a.trees.size(); ++t) {
    const Tree& x = a.trees[t];
    const Tree& y = b.trees[t];
    EXPECT_EQ(x.left, y.left) << "tree " << t;
    EXPECT_EQ(x.right, y.right) << "tree " << t;
    EXPECT_EQ(x.default_left, y.default_left) << "tree " << t;
    EXPECT_EQ(x.cover, y.cover) << "tree " << t;
    ASSERT_EQ(x.size(), y.size()) << "tree " << t;
    for (size_t i = 0; i < x.size(); ++i) {
      if (x.is_leaf(static_cast<int32_t>(i))) {
        EXPECT_EQ(x.value[i], y.value[i]) << "tree " << t << " node " << i;
      } else {
        EXPECT_EQ(x.feature[i], y.feature[i]) << "tree " << t << " node " << i;
        EXPECT_EQ(x.threshold[i], y.threshold[i]) << "tree " << t << " node " << i;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// c(n)

TEST(IsolationAveragePathLengthTest, KnownValues) {
  EXPECT_EQ(IsolationAveragePathLength(0), 0.0);
  EXPECT_EQ(IsolationAveragePathLength(1), 0.0);
  EXPECT_EQ(IsolationAveragePathLength(2), 1.0);
  // scikit-learn's _average_path_length([256]).
  EXPECT_NEAR(IsolationAveragePathLength(256), 10.244770920119917, 1e-12);
  for (size_t n : {3, 10, 100, 256, 1000, 100000}) {
    EXPECT_NEAR(IsolationAveragePathLength(n), PaperC(static_cast<double>(n)), 1e-12) << n;
  }
}

TEST(IsolationAveragePathLengthTest, CloseToExactHarmonicAndIncreasing) {
  // H(i) ~ ln(i) + gamma errs by about 1 / (2i), so c(n) is within 1 / (n - 1) of the exact form.
  for (size_t n : {10, 100, 1000}) {
    double h = 0;
    for (size_t i = 1; i < n; ++i) h += 1.0 / static_cast<double>(i);
    const double exact = 2 * h - 2.0 * static_cast<double>(n - 1) / static_cast<double>(n);
    EXPECT_NEAR(IsolationAveragePathLength(n), exact, 1.0 / static_cast<double>(n - 1)) << n;
  }
  for (size_t n = 1; n < 600; ++n) {
    EXPECT_LT(IsolationAveragePathLength(n), IsolationAveragePathLength(n + 1)) << n;
  }
}

// ---------------------------------------------------------------------------------------------
// Detection quality.

TEST(IsolationForestTest, OutliersScoreHigherThanInliers) {
  constexpr size_t kInliers = 2000, kOutliers = 20, kCols = 4;
  const std::vector<float> x = BlobWithOutliers(kInliers, kOutliers, kCols, 7);
  const size_t rows = kInliers + kOutliers;
  StatusOr<Ensemble> e = TrainIsolationForest(x, rows, kCols, {.trees = 100, .seed = 3});
  ASSERT_TRUE(e.ok()) << e.status().ToString();

  std::vector<double> scores(rows);
  std::vector<uint8_t> labels(rows, 0);
  double inlier_mean = 0, outlier_mean = 0;
  for (size_t r = 0; r < rows; ++r) {
    scores[r] = IsolationScoreReference(*e, std::span(x).subspan(r * kCols, kCols));
    EXPECT_GT(scores[r], 0.0);
    EXPECT_LE(scores[r], 1.0);
    if (r < kInliers) {
      inlier_mean += scores[r] / kInliers;
    } else {
      labels[r] = 1;
      outlier_mean += scores[r] / kOutliers;
    }
  }
  EXPECT_GT(outlier_mean, 0.6);
  EXPECT_LT(inlier_mean, 0.5);
  EXPECT_GT(RocAuc(labels, scores), 0.95);
}

// ---------------------------------------------------------------------------------------------
// Structure of the trained trees.

TEST(IsolationForestTest, EnsembleFields) {
  const std::vector<float> x = BlobWithOutliers(1000, 0, 3, 1);
  StatusOr<Ensemble> e = TrainIsolationForest(x, 1000, 3, {.trees = 7, .sample_size = 100});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->link, Link::kIsolation);
  EXPECT_EQ(e->trees.size(), 7u);
  EXPECT_EQ(e->num_features, 3u);
  EXPECT_DOUBLE_EQ(e->tree_scale, 1.0 / 7);
  EXPECT_EQ(e->base_margin, 0.0);
  EXPECT_FALSE(e->linear);
  EXPECT_DOUBLE_EQ(e->isolation_norm, PaperC(100));
}

TEST(IsolationForestTest, LeafValuesAreDepthPlusCOfLeafSize) {
  const std::vector<float> x = BlobWithOutliers(3000, 10, 5, 2);
  const int psi = 256, max_depth = 8;
  StatusOr<Ensemble> e = TrainIsolationForest(x, 3010, 5, {.trees = 20, .sample_size = psi});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_DOUBLE_EQ(e->isolation_norm, IsolationAveragePathLength(psi));
  int deepest = 0;
  for (const Tree& tree : e->trees) {
    ASSERT_GT(tree.size(), 1u);
    ASSERT_EQ(tree.left.size(), tree.right.size());
    ASSERT_EQ(tree.left.size(), tree.feature.size());
    ASSERT_EQ(tree.left.size(), tree.threshold.size());
    ASSERT_EQ(tree.left.size(), tree.default_left.size());
    ASSERT_EQ(tree.left.size(), tree.value.size());
    ASSERT_EQ(tree.left.size(), tree.cover.size());
    EXPECT_EQ(tree.cover[0], static_cast<float>(psi));
    const std::vector<int> depth = Depths(tree);
    for (size_t i = 0; i < tree.size(); ++i) {
      EXPECT_EQ(tree.default_left[i], 1);
      EXPECT_LE(depth[i], max_depth);
      deepest = std::max(deepest, depth[i]);
      if (tree.is_leaf(static_cast<int32_t>(i))) {
        EXPECT_EQ(tree.right[i], -1);
        const auto size = static_cast<size_t>(tree.cover[i]);
        EXPECT_EQ(tree.value[i], static_cast<float>(depth[i] + IsolationAveragePathLength(size)));
        // Continuous data: a leaf is a single row or sits at the depth limit.
        EXPECT_TRUE(size == 1 || depth[i] == max_depth) << "size " << size;
      } else {
        EXPECT_GE(tree.feature[i], 0);
        EXPECT_LT(tree.feature[i], 5);
        EXPECT_TRUE(std::isfinite(tree.threshold[i]));
        // Every split sends at least one row each way.
        EXPECT_GE(tree.cover[tree.left[i]], 1.0f);
        EXPECT_GE(tree.cover[tree.right[i]], 1.0f);
        EXPECT_EQ(tree.cover[i], tree.cover[tree.left[i]] + tree.cover[tree.right[i]]);
      }
    }
  }
  EXPECT_EQ(deepest, max_depth);
}

TEST(IsolationForestTest, CoverCountsTrainingRowsRoutedWithLessThan) {
  // sample_size >= rows: every tree holds every row once, so routing the rows through a tree with
  // `x < threshold` must reproduce the cover of every leaf.
  const std::vector<float> x = BlobWithOutliers(150, 5, 3, 4);
  const size_t rows = 155;
  StatusOr<Ensemble> e = TrainIsolationForest(x, rows, 3, {.trees = 10, .sample_size = 1000});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_DOUBLE_EQ(e->isolation_norm, IsolationAveragePathLength(rows));
  for (const Tree& tree : e->trees) {
    std::vector<float> reached(tree.size(), 0);
    for (size_t r = 0; r < rows; ++r) {
      int32_t node = 0;
      while (!tree.is_leaf(node)) {
        node = x[r * 3 + tree.feature[node]] < tree.threshold[node] ? tree.left[node]
                                                                    : tree.right[node];
      }
      reached[node] += 1;
    }
    for (size_t i = 0; i < tree.size(); ++i) {
      if (tree.is_leaf(static_cast<int32_t>(i))) {
        EXPECT_EQ(reached[i], tree.cover[i]) << i;
      }
    }
  }
}

TEST(IsolationForestTest, ConstantFeaturesAreNeverSplit) {
  // Column 1 is constant; column 0 takes two values. Every tree can split only on column 0, once.
  std::vector<float> x;
  for (int r = 0; r < 40; ++r) x.insert(x.end(), {r < 30 ? 1.0f : 2.0f, 5.0f});
  StatusOr<Ensemble> e = TrainIsolationForest(x, 40, 2, {.trees = 5, .sample_size = 64});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  for (const Tree& tree : e->trees) {
    ASSERT_EQ(tree.size(), 3u);
    EXPECT_EQ(tree.feature[0], 0);
    EXPECT_GT(tree.threshold[0], 1.0f);
    EXPECT_LE(tree.threshold[0], 2.0f);
    EXPECT_EQ(tree.cover[tree.left[0]], 30.0f);
    EXPECT_EQ(tree.value[tree.left[0]], static_cast<float>(1 + IsolationAveragePathLength(30)));
    EXPECT_EQ(tree.value[tree.right[0]], static_cast<float>(1 + IsolationAveragePathLength(10)));
  }
}

TEST(IsolationForestTest, IdenticalRowsScoreOneHalf) {
  // Nothing to isolate: each tree is one leaf worth c(psi), so the score is 2^-1.
  std::vector<float> x(50 * 3, 1.5f);
  StatusOr<Ensemble> e = TrainIsolationForest(x, 50, 3, {.trees = 4, .sample_size = 32});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  for (const Tree& tree : e->trees) {
    ASSERT_EQ(tree.size(), 1u);
    EXPECT_EQ(tree.cover[0], 32.0f);
    EXPECT_EQ(tree.value[0], static_cast<float>(IsolationAveragePathLength(32)));
  }
  const std::vector<float> row = {1.5f, 1.5f, 1.5f};
  EXPECT_NEAR(IsolationScoreReference(*e, row), 0.5, 1e-7);
}

TEST(IsolationForestTest, TwoRows) {
  const std::vector<float> x = {0.0f, 1.0f};
  StatusOr<Ensemble> e = TrainIsolationForest(x, 2, 1, {.trees = 3});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->isolation_norm, 1.0);
  for (const Tree& tree : e->trees) {
    ASSERT_EQ(tree.size(), 3u);
    EXPECT_GT(tree.threshold[0], 0.0f);
    EXPECT_LE(tree.threshold[0], 1.0f);
    EXPECT_EQ(tree.value[1], 1.0f);
    EXPECT_EQ(tree.value[2], 1.0f);
  }
}

TEST(IsolationForestTest, AdjacentFloatsStillSplit) {
  // The only split value is the float just above the smaller one.
  const float a = 1.0f, b = std::nextafter(1.0f, 2.0f);
  const std::vector<float> x = {a, b, a, b};
  StatusOr<Ensemble> e = TrainIsolationForest(x, 4, 1, {.trees = 5});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  for (const Tree& tree : e->trees) {
    ASSERT_EQ(tree.size(), 3u);
    EXPECT_EQ(tree.threshold[0], b);
    EXPECT_EQ(tree.cover[1], 2.0f);
    EXPECT_EQ(tree.cover[2], 2.0f);
  }
}

// ---------------------------------------------------------------------------------------------
// Determinism.

TEST(IsolationForestTest, SameSeedSameForestWhateverTheThreads) {
  const std::vector<float> x = BlobWithOutliers(5000, 20, 6, 5);
  IsolationForestOptions options{.trees = 30, .sample_size = 128, .seed = 42, .threads = 1};
  StatusOr<Ensemble> one = TrainIsolationForest(x, 5020, 6, options);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  StatusOr<Ensemble> again = TrainIsolationForest(x, 5020, 6, options);
  ASSERT_TRUE(again.ok());
  ExpectSameEnsemble(*one, *again);
  for (int threads : {3, 0, 64}) {
    options.threads = threads;
    StatusOr<Ensemble> parallel = TrainIsolationForest(x, 5020, 6, options);
    ASSERT_TRUE(parallel.ok()) << parallel.status().ToString();
    SCOPED_TRACE("threads " + std::to_string(threads));
    ExpectSameEnsemble(*one, *parallel);
  }
}

TEST(IsolationForestTest, SeedAndTreeIndexChangeTheTrees) {
  const std::vector<float> x = BlobWithOutliers(2000, 0, 4, 6);
  StatusOr<Ensemble> a = TrainIsolationForest(x, 2000, 4, {.trees = 3, .seed = 1});
  StatusOr<Ensemble> b = TrainIsolationForest(x, 2000, 4, {.trees = 3, .seed = 2});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->trees[0].threshold, b->trees[0].threshold);
  EXPECT_NE(a->trees[0].threshold, a->trees[1].threshold);
  EXPECT_NE(a->trees[1].threshold, a->trees[2].threshold);
}

// ---------------------------------------------------------------------------------------------
// Scoring formula on a hand-built ensemble.

// x0 < 0.5 ? leaf 1 : (x1 < 2 ? leaf 3 : leaf 4); node 2 sends NaN right.
Tree HandTree(float leaf1, float leaf3, float leaf4) {
  Tree t;
  t.left = {1, -1, 3, -1, -1};
  t.right = {2, -1, 4, -1, -1};
  t.feature = {0, 0, 1, 0, 0};
  t.threshold = {0.5f, 0, 2.0f, 0, 0};
  t.default_left = {1, 1, 0, 1, 1};
  t.value = {0, leaf1, 0, leaf3, leaf4};
  t.cover = {4, 1, 3, 1, 2};
  return t;
}

TEST(IsolationScoreReferenceTest, OneTreeMatchesFormula) {
  Ensemble e;
  e.num_features = 2;
  e.link = Link::kIsolation;
  e.isolation_norm = IsolationAveragePathLength(256);
  e.trees = {HandTree(1.0f, 2.0f, 2.0f + 1.0f)};
  const double c = e.isolation_norm;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_DOUBLE_EQ(IsolationScoreReference(e, std::vector<float>{0.0f, 9.0f}), std::exp2(-1.0 / c));
  EXPECT_DOUBLE_EQ(IsolationScoreReference(e, std::vector<float>{0.5f, 1.0f}), std::exp2(-2.0 / c));
  EXPECT_DOUBLE_EQ(IsolationScoreReference(e, std::vector<float>{0.7f, 2.0f}), std::exp2(-3.0 / c));
  // NaN follows default_left: left at the root, right at node 2.
  EXPECT_DOUBLE_EQ(IsolationScoreReference(e, std::vector<float>{nan, 9.0f}), std::exp2(-1.0 / c));
  EXPECT_DOUBLE_EQ(IsolationScoreReference(e, std::vector<float>{1.0f, nan}), std::exp2(-3.0 / c));
  // A path as long as c(psi) scores exactly one half.
  e.trees = {HandTree(static_cast<float>(c), 0, 0)};
  EXPECT_NEAR(IsolationScoreReference(e, std::vector<float>{0.0f, 0.0f}), 0.5, 1e-7);
}

TEST(IsolationScoreReferenceTest, MeanOverTreesAndStandardisation) {
  Ensemble e;
  e.num_features = 2;
  e.link = Link::kIsolation;
  e.isolation_norm = 4.0;
  e.tree_scale = 0.5;
  e.trees = {HandTree(1.0f, 2.0f, 3.0f), HandTree(5.0f, 6.0f, 7.0f)};
  // Leaves 4 (value 3) and 4 (value 7): mean path 5.
  EXPECT_DOUBLE_EQ(IsolationScoreReference(e, std::vector<float>{1.0f, 3.0f}), std::exp2(-5.0 / 4));
  // (x - mean) / scale maps {10, 4} to {0, 1}: leaves 1 (value 1) and 1 (value 5): mean path 3.
  e.mean = {10.0, 2.0};
  e.scale = {2.0, 2.0};
  EXPECT_DOUBLE_EQ(IsolationScoreReference(e, std::vector<float>{10.0f, 4.0f}),
                   std::exp2(-3.0 / 4));
}

TEST(IsolationScoreReferenceTest, ScoringEngineAgrees) {
  // The compiled Forest scores the canonical ensemble as the plain walk does.
  constexpr size_t kCols = 4;
  const std::vector<float> x = BlobWithOutliers(2000, 20, kCols, 12);
  StatusOr<Ensemble> e = TrainIsolationForest(x, 2020, kCols, {.trees = 50, .seed = 5});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  StatusOr<std::unique_ptr<Forest>> forest = Forest::FromEnsemble(*e);
  ASSERT_TRUE(forest.ok()) << forest.status().ToString();
  const std::vector<float> probes = ProbeRows(x, kCols);
  const size_t n = probes.size() / kCols;
  std::vector<double> batch(n);
  (*forest)->PredictBatch(probes, batch);
  for (size_t r = 0; r < n; ++r) {
    const std::span<const float> row = std::span(probes).subspan(r * kCols, kCols);
    const double expected = IsolationScoreReference(*e, row);
    EXPECT_NEAR((*forest)->Predict(row), expected, 1e-6) << r;
    EXPECT_NEAR(batch[r], expected, 1e-6) << r;
  }
}

// ---------------------------------------------------------------------------------------------
// JSON.

TEST(IsolationForestJsonTest, SchemaAndExactFloats) {
  // Data on a third-of-a-unit grid so thresholds are not short decimals.
  std::vector<float> x = BlobWithOutliers(500, 5, 3, 9);
  for (float& v : x) v /= 3.0f;
  StatusOr<Ensemble> e = TrainIsolationForest(x, 505, 3, {.trees = 6, .sample_size = 64});
  ASSERT_TRUE(e.ok()) << e.status().ToString();

  const std::string text = IsolationForestToJson(*e);
  ASSERT_TRUE(nlohmann::json::accept(text));
  const nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_EQ(j.at("version"), nlohmann::json({1, 7, 4}));
  const nlohmann::json& learner = j.at("learner");
  EXPECT_EQ(learner.at("objective").at("name"), "vigil:isolation");
  const std::string norm = learner.at("objective").at("isolation_norm");
  EXPECT_EQ(std::strtod(norm.c_str(), nullptr), e->isolation_norm);
  EXPECT_EQ(learner.at("learner_model_param").at("num_feature"), "3");
  EXPECT_EQ(learner.at("learner_model_param").at("base_score"), "0");
  const nlohmann::json& gb = learner.at("gradient_booster");
  EXPECT_EQ(gb.at("name"), "gbtree");
  const nlohmann::json& model = gb.at("model");
  EXPECT_EQ(model.at("gbtree_model_param").at("num_trees"), "6");
  EXPECT_EQ(model.at("gbtree_model_param").at("num_parallel_tree"), "1");
  EXPECT_EQ(model.at("tree_info"), nlohmann::json(std::vector<int>(6, 0)));
  ASSERT_EQ(model.at("trees").size(), 6u);

  for (size_t t = 0; t < 6; ++t) {
    const Tree& tree = e->trees[t];
    const nlohmann::json& jt = model.at("trees").at(t);
    const size_t n = tree.size();
    EXPECT_EQ(jt.at("id"), t);
    EXPECT_EQ(jt.at("tree_param").at("num_nodes"), std::to_string(n));
    EXPECT_EQ(jt.at("tree_param").at("num_feature"), "3");
    for (const char* key :
         {"left_children", "right_children", "parents", "split_indices", "split_conditions",
          "default_left", "sum_hessian", "base_weights", "loss_changes", "split_type"}) {
      EXPECT_EQ(jt.at(key).size(), n) << key;
    }
    EXPECT_TRUE(jt.at("categories").empty());
    EXPECT_EQ(jt.at("parents")[0], 2147483647);
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(jt.at("left_children")[i], tree.left[i]);
      EXPECT_EQ(jt.at("right_children")[i], tree.right[i]);
      EXPECT_EQ(jt.at("default_left")[i], 1);
      EXPECT_EQ(jt.at("sum_hessian")[i].get<double>(), tree.cover[i]);
      const double condition = jt.at("split_conditions")[i].get<double>();
      if (tree.is_leaf(static_cast<int32_t>(i))) {
        EXPECT_EQ(condition, static_cast<double>(tree.value[i]));
        EXPECT_EQ(jt.at("base_weights")[i].get<double>(), static_cast<double>(tree.value[i]));
      } else {
        // Exact: the double printed is the float's value, not a neighbour of it.
        EXPECT_EQ(condition, static_cast<double>(tree.threshold[i]));
        EXPECT_EQ(jt.at("split_indices")[i], tree.feature[i]);
        EXPECT_EQ(jt.at("base_weights")[i].get<double>(), 0.0);
        EXPECT_EQ(jt.at("parents")[tree.left[i]], i);
        EXPECT_EQ(jt.at("parents")[tree.right[i]], i);
      }
    }
  }
}

TEST(IsolationForestJsonTest, ParseXGBoostJsonReadsBackTheSameForest) {
  constexpr size_t kCols = 5;
  std::vector<float> x = BlobWithOutliers(3000, 30, kCols, 11);
  for (float& v : x) v = v / 7.0f + 0.1f;
  StatusOr<Ensemble> e = TrainIsolationForest(x, 3030, kCols, {.trees = 25, .seed = 8});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_TRUE(ValidateEnsemble(*e).ok()) << ValidateEnsemble(*e).ToString();

  StatusOr<Ensemble> parsed = ParseXGBoostJson(IsolationForestToJson(*e), kCols);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->link, Link::kIsolation);
  EXPECT_EQ(parsed->isolation_norm, e->isolation_norm);
  EXPECT_EQ(parsed->tree_scale, e->tree_scale);
  EXPECT_EQ(parsed->base_margin, 0.0);
  ExpectSameEnsemble(*e, *parsed);

  const std::vector<float> probes = ProbeRows(x, kCols);
  for (size_t r = 0; r < probes.size() / kCols; ++r) {
    const std::span<const float> row = std::span(probes).subspan(r * kCols, kCols);
    EXPECT_EQ(IsolationScoreReference(*e, row), IsolationScoreReference(*parsed, row)) << r;
  }
}

TEST(IsolationForestJsonTest, AwkwardFloatsSurviveDumpAndParse) {
  // Hand-picked thresholds whose shortest decimal for the double differs from the float's.
  Ensemble e;
  e.num_features = 2;
  e.link = Link::kIsolation;
  e.isolation_norm = IsolationAveragePathLength(256);
  const std::vector<float> awkward = {
      0.1f, 1.0f / 3.0f, 16777215.0f, 1e-38f, std::nextafter(1.0f, 2.0f), -3.4028235e38f};
  for (float v : awkward) e.trees.push_back(HandTree(v, -v, v * 0.7f));
  for (Tree& tree : e.trees) tree.threshold[2] = tree.value[1];
  const nlohmann::json j = nlohmann::json::parse(IsolationForestToJson(e));
  const nlohmann::json& trees = j["learner"]["gradient_booster"]["model"]["trees"];
  ASSERT_EQ(trees.size(), e.trees.size());
  for (size_t t = 0; t < e.trees.size(); ++t) {
    const nlohmann::json& sc = trees[t]["split_conditions"];
    EXPECT_EQ(static_cast<double>(e.trees[t].value[1]), sc[1].get<double>()) << t;
    EXPECT_EQ(static_cast<double>(e.trees[t].threshold[2]), sc[2].get<double>()) << t;
    EXPECT_EQ(static_cast<double>(e.trees[t].value[4]), sc[4].get<double>()) << t;
    EXPECT_EQ(e.trees[t].value[3], static_cast<float>(sc[3].get<double>())) << t;
  }
  EXPECT_EQ(
      std::strtod(j["learner"]["objective"]["isolation_norm"].get<std::string>().c_str(), nullptr),
      e.isolation_norm);
}

// ---------------------------------------------------------------------------------------------
// Bad input.

void ExpectInvalid(const StatusOr<Ensemble>& result, const std::string& needle) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find(needle), std::string::npos)
      << "message: " << result.status().message() << "\nexpected to contain: " << needle;
}

TEST(IsolationForestTest, RejectsBadShapesAndOptions) {
  const std::vector<float> x(20, 1.0f);
  ExpectInvalid(TrainIsolationForest({}, 0, 2, {}), "at least 2 training rows, got 0");
  ExpectInvalid(TrainIsolationForest(std::span(x).first(2), 1, 2, {}),
                "at least 2 training rows, got 1");
  ExpectInvalid(TrainIsolationForest({}, 10, 0, {}), "at least 1 feature column");
  ExpectInvalid(TrainIsolationForest(x, 10, 3, {}), "data has 20 values, expected rows * cols");
  ExpectInvalid(TrainIsolationForest(x, 10, 2, {.trees = 0}), "trees must be >= 1, got 0");
  ExpectInvalid(TrainIsolationForest(x, 10, 2, {.sample_size = 1}),
                "sample_size must be >= 2, got 1");
  ExpectInvalid(TrainIsolationForest(x, 10, 2, {.threads = -2}), "threads must be >= 0");
}

TEST(IsolationForestTest, RejectsNonFiniteTrainingValuesNamingRowAndColumn) {
  std::vector<float> x(30, 1.0f);
  x[3 * 3 + 1] = std::numeric_limits<float>::quiet_NaN();
  ExpectInvalid(TrainIsolationForest(x, 10, 3, {}), "row 3, column 1 is NaN");
  x[3 * 3 + 1] = 0;
  x[9 * 3 + 2] = -std::numeric_limits<float>::infinity();
  ExpectInvalid(TrainIsolationForest(x, 10, 3, {}), "row 9, column 2 is infinite");
}

}  // namespace
}  // namespace vigil
