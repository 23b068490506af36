#include "model/explain.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/tree.h"
#include "vigil/forest.h"
#include "vigil/model.h"

namespace vigil {
namespace {

struct Data {
  std::vector<float> x;
  std::vector<uint8_t> y;
  std::vector<std::string> names;
};

// Labels depend on a few features with interactions; about 5% of values are missing.
Data MakeData(size_t rows, size_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0, 1);
  Data d;
  for (size_t c = 0; c < cols; ++c) d.names.push_back("f" + std::to_string(c));
  for (size_t r = 0; r < rows; ++r) {
    float row[32];
    for (size_t c = 0; c < cols; ++c) row[c] = g(rng);
    const float z = 1.5f * row[0] - row[1] * row[2] + (row[3] > 0.5f ? 1.0f : -0.5f);
    d.y.push_back(z + 0.5f * g(rng) > 1.0f ? 1 : 0);
    for (size_t c = 0; c < cols; ++c) {
      d.x.push_back(rng() % 20 == 0 ? std::nanf("") : row[c]);
    }
  }
  return d;
}

class ExplainVsXGBoostTest : public ::testing::TestWithParam<Algorithm> {};

TEST_P(ExplainVsXGBoostTest, ContributionsMatchXGBoostAndSumToTheMargin) {
  const size_t cols = 16;
  Data d = MakeData(3000, cols, 42);
  TrainOptions o;
  o.algo = GetParam();
  o.params = {{"n_estimators", GetParam() == Algorithm::kRandomForest ? "20" : "30"}};
  if (GetParam() == Algorithm::kRandomForest) o.params["max_depth"] = "8";
  o.threads = 1;
  auto model = TrainModel(d.x, d.y, d.names, o);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto forest = Forest::FromModel(*model);
  ASSERT_TRUE(forest.ok()) << forest.status().ToString();
  Explainer explainer((*forest)->ensemble());

  const size_t rows = 200;
  std::span<const float> x(d.x.data(), rows * cols);
  auto want = ContributionsWithXGBoost(*model, x);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  ASSERT_EQ(want->size(), rows * (cols + 1));
  std::vector<double> phi(cols + 1);
  for (size_t r = 0; r < rows; ++r) {
    std::span<const float> row(d.x.data() + r * cols, cols);
    explainer.Contributions(row, phi);
    double sum = 0;
    for (size_t j = 0; j <= cols; ++j) {
      // XGBoost accumulates in float; Vigil in double.
      EXPECT_NEAR(phi[j], (*want)[r * (cols + 1) + j], 2e-4) << "row " << r << " feature " << j;
      sum += phi[j];
    }
    EXPECT_NEAR(sum, (*forest)->PredictMargin(row), 1e-4) << "row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Algorithms, ExplainVsXGBoostTest,
                         ::testing::Values(Algorithm::kGbdt, Algorithm::kRandomForest,
                                           Algorithm::kLogistic),
                         [](const auto& info) { return std::string(AlgorithmName(info.param)); });

TEST(ExplainTest, HandBuiltStumpGivesTheWholeDifferenceToItsFeature) {
  // One stump on feature 1 at 0.5: left leaf -1 (cover 3), right leaf +2 (cover 1).
  Ensemble e;
  e.num_features = 2;
  Tree t;
  t.left = {1, -1, -1};
  t.right = {2, -1, -1};
  t.feature = {1, 0, 0};
  t.threshold = {0.5f, 0, 0};
  t.default_left = {1, 0, 0};
  t.value = {0, -1, 2};
  t.cover = {4, 3, 1};
  e.trees.push_back(t);
  e.base_margin = 0.25;
  Explainer explainer(e);
  std::vector<double> phi(3);
  const float right[] = {9.0f, 0.7f};
  explainer.Contributions(right, phi);
  // Expected value: (3 * -1 + 1 * 2) / 4 = -0.25; the row lands on +2.
  EXPECT_DOUBLE_EQ(phi[0], 0.0);
  EXPECT_DOUBLE_EQ(phi[1], 2.25);
  EXPECT_DOUBLE_EQ(phi[2], 0.25 - 0.25);
  const float missing[] = {9.0f, std::nanf("")};
  explainer.Contributions(missing, phi);
  EXPECT_DOUBLE_EQ(phi[1], -0.75) << "missing goes left by default";
}

// The precomputed tables (Fast TreeSHAP v2) and the recursive algorithm are the same sum: they
// agree to rounding on every feature, with missing values, repeated split features on a path, and
// a budget that tabulates only some trees.
TEST(ExplainTest, TablesAgreeWithTheRecursiveAlgorithm) {
  const size_t cols = 16;
  Data d = MakeData(3000, cols, 7);
  struct Case {
    Algorithm algo;
    const char* trees;
    const char* depth;
  };
  for (const Case& c : {Case{Algorithm::kGbdt, "40", "3"}, Case{Algorithm::kGbdt, "20", "6"},
                        Case{Algorithm::kRandomForest, "10", "8"}}) {
    SCOPED_TRACE(std::string(AlgorithmName(c.algo)) + " depth " + c.depth);
    TrainOptions o;
    o.algo = c.algo;
    o.params = {{"n_estimators", c.trees}, {"max_depth", c.depth}};
    o.threads = 1;
    auto model = TrainModel(d.x, d.y, d.names, o);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    auto forest = Forest::FromModel(*model);
    ASSERT_TRUE(forest.ok()) << forest.status().ToString();
    const Ensemble& e = (*forest)->ensemble();
    const Explainer tables(e);
    const Explainer recursive(e, /*table_budget_bytes=*/0);
    const Explainer some(e, tables.table_bytes() / 2);
    EXPECT_EQ(tables.tabulated_trees(), e.trees.size());
    EXPECT_EQ(recursive.tabulated_trees(), 0u);
    EXPECT_GT(some.tabulated_trees(), 0u);
    EXPECT_LT(some.tabulated_trees(), e.trees.size());
    std::vector<double> a(cols + 1), b(cols + 1), m(cols + 1);
    for (size_t r = 0; r < 300; ++r) {
      std::span<const float> row(d.x.data() + r * cols, cols);
      tables.Contributions(row, a);
      recursive.Contributions(row, b);
      some.Contributions(row, m);
      for (size_t j = 0; j <= cols; ++j) {
        EXPECT_NEAR(a[j], b[j], 1e-9) << "row " << r << " feature " << j;
        EXPECT_NEAR(m[j], b[j], 1e-9) << "row " << r << " feature " << j;
      }
    }
  }
}

// Method::kFast explains the trees it cannot tabulate by path attributions, as XGBoost's
// approx_contribs does; with no table budget, every tree.
TEST(ExplainTest, FastMethodMatchesXGBoostPathAttributions) {
  const size_t cols = 16;
  Data d = MakeData(3000, cols, 11);
  for (Algorithm algo : {Algorithm::kGbdt, Algorithm::kRandomForest}) {
    SCOPED_TRACE(std::string(AlgorithmName(algo)));
    TrainOptions o;
    o.algo = algo;
    o.params = {{"n_estimators", "20"}, {"max_depth", "10"}};
    o.threads = 1;
    auto model = TrainModel(d.x, d.y, d.names, o);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    auto forest = Forest::FromModel(*model);
    ASSERT_TRUE(forest.ok()) << forest.status().ToString();
    const Explainer fast((*forest)->ensemble(), /*table_budget_bytes=*/0, Explainer::Method::kFast);
    EXPECT_EQ(fast.approximated_trees(), (*forest)->ensemble().trees.size());
    EXPECT_EQ(fast.tabulated_trees(), 0u);
    const size_t rows = 200;
    auto want = ContributionsWithXGBoost(*model, std::span<const float>(d.x.data(), rows * cols),
                                         /*approximate=*/true);
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    std::vector<double> phi(cols + 1);
    for (size_t r = 0; r < rows; ++r) {
      std::span<const float> row(d.x.data() + r * cols, cols);
      fast.Contributions(row, phi);
      double sum = 0;
      for (size_t j = 0; j <= cols; ++j) {
        EXPECT_NEAR(phi[j], (*want)[r * (cols + 1) + j], 2e-4) << "row " << r << " feature " << j;
        sum += phi[j];
      }
      EXPECT_NEAR(sum, (*forest)->PredictMargin(row), 1e-4) << "row " << r;
    }
    // With the default budget the shallow-enough trees stay exact: fewer approximated.
    const Explainer mixed((*forest)->ensemble(), Explainer::kDefaultTableBudget,
                          Explainer::Method::kFast);
    EXPECT_EQ(mixed.tabulated_trees() + mixed.approximated_trees(),
              (*forest)->ensemble().trees.size());
  }
}

// A leaf on whose path a feature splits twice: the table keeps one slot for it, met only when the
// row meets both conditions.
TEST(ExplainTest, RepeatedFeatureOnAPathIsOneSlot) {
  // Root splits f0 < 0.5; its left child splits f0 < 0.2 again; leaves -1 (f0 < 0.2), 1, 3.
  Ensemble e;
  e.num_features = 1;
  Tree t;
  t.left = {1, 3, -1, -1, -1};
  t.right = {2, 4, -1, -1, -1};
  t.feature = {0, 0, 0, 0, 0};
  t.threshold = {0.5f, 0.2f, 0, 0, 0};
  t.default_left = {1, 1, 0, 0, 0};
  t.value = {0, 0, 3, -1, 1};
  t.cover = {10, 6, 4, 2, 4};
  e.trees.push_back(t);
  const Explainer tables(e);
  const Explainer recursive(e, 0);
  ASSERT_EQ(tables.tabulated_trees(), 1u);
  // Expected value: (2 * -1 + 4 * 1 + 4 * 3) / 10 = 1.4; one feature takes the whole difference.
  for (float x : {0.1f, 0.3f, 0.9f, std::nanf("")}) {
    std::vector<double> a(2), b(2);
    tables.Contributions(std::span<const float>(&x, 1), a);
    recursive.Contributions(std::span<const float>(&x, 1), b);
    const double leaf = std::isnan(x) || x < 0.2f ? -1 : x < 0.5f ? 1 : 3;
    EXPECT_NEAR(a[1], 1.4, 1e-12) << x;
    EXPECT_NEAR(a[0], leaf - 1.4, 1e-12) << x;
    EXPECT_NEAR(a[0], b[0], 1e-12) << x;
  }
}

}  // namespace
}  // namespace vigil
