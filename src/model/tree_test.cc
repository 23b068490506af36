#include "model/tree.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "vigil/forest.h"
#include "vigil/model.h"

namespace vigil {
namespace {

// A two-tree model in XGBoost 1.7's JSON schema, with pieces replaceable by the tests:
// tree 0 splits on feature 1 (< 0.5, missing goes left), tree 1 is a single leaf.
std::string ModelJson(const std::string& objective = R"({"name": "binary:logistic"})",
                      const std::string& base_score = "5E-1",
                      const std::string& split_feature = "1",
                      const std::string& tree_info = "[0, 0]",
                      const std::string& booster = "gbtree") {
  const std::string trees = R"({"tree_info": )" + tree_info + R"(, "trees": [
      {"left_children": [1, -1, -1], "right_children": [2, -1, -1],
       "split_indices": [)" +
                            split_feature + R"(, 0, 0], "split_conditions": [0.5, -0.25, 0.75],
       "default_left": [1, 0, 0], "sum_hessian": [10, 6, 4], "split_type": [0, 0, 0],
       "tree_param": {"num_nodes": "3", "size_leaf_vector": "0"}},
      {"left_children": [-1], "right_children": [-1], "split_indices": [0],
       "split_conditions": [0.125], "default_left": [0], "sum_hessian": [10]}]})";
  std::string gb;
  if (booster == "dart") {
    gb = R"({"name": "dart", "weight_drop": [0.5, 2.0], "gbtree": {"name": "gbtree", "model": )" +
         trees + "}}";
  } else {
    gb = R"({"name": "gbtree", "model": )" + trees + "}";
  }
  return R"({"learner": {"learner_model_param": {"base_score": ")" + base_score +
         R"(", "num_class": "0", "num_feature": "3", "num_target": "1"},
      "objective": )" +
         objective + R"(, "gradient_booster": )" + gb + R"(}, "version": [1, 7, 4]})";
}

TEST(XGBoostJsonTest, ParsesTreesLeavesAndDefaults) {
  auto e = ParseXGBoostJson(ModelJson(), 3);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->num_features, 3u);
  ASSERT_EQ(e->trees.size(), 2u);
  const Tree& t = e->trees[0];
  EXPECT_EQ(t.left, (std::vector<int32_t>{1, -1, -1}));
  EXPECT_EQ(t.feature[0], 1);
  EXPECT_EQ(t.threshold[0], 0.5f);
  EXPECT_EQ(t.default_left[0], 1);
  EXPECT_EQ(t.value[1], -0.25f);
  EXPECT_EQ(t.value[2], 0.75f);
  EXPECT_EQ(t.cover, (std::vector<float>{10, 6, 4}));
  EXPECT_EQ(e->trees[1].value[0], 0.125f);
  EXPECT_EQ(e->link, Link::kSigmoid);
  EXPECT_EQ(e->base_margin, 0.0);  // logit(0.5)
  EXPECT_EQ(e->tree_scale, 1.0);

  auto forest = Forest::FromEnsemble(std::move(e).value());
  ASSERT_TRUE(forest.ok());
  const float left[] = {9, 0.25f, 9}, right[] = {9, 0.5f, 9},
              missing[] = {0, std::numeric_limits<float>::quiet_NaN(), 0};
  EXPECT_FLOAT_EQ((*forest)->PredictMargin(left), -0.125f);
  EXPECT_FLOAT_EQ((*forest)->PredictMargin(right), 0.875f);
  EXPECT_FLOAT_EQ((*forest)->PredictMargin(missing), -0.125f);  // default left
  EXPECT_FLOAT_EQ((*forest)->Predict(right), 1.0f / (1.0f + std::exp(-0.875f)));
}

TEST(XGBoostJsonTest, BaseScoreAndLinkPerObjective) {
  struct Expect {
    std::string objective;
    Link link;
    double base_margin;
  };
  const Expect cases[] = {
      {R"({"name": "binary:logistic"})", Link::kSigmoid, -std::log(1.0f / 0.2f - 1.0f)},
      {R"({"name": "reg:logistic"})", Link::kSigmoid, -std::log(1.0f / 0.2f - 1.0f)},
      // XGBoost 1.7 uses base_score as the raw margin for logitraw.
      {R"({"name": "binary:logitraw"})", Link::kIdentity, 0.2f},
      {R"({"name": "reg:squarederror"})", Link::kIdentity, 0.2f},
  };
  for (const Expect& c : cases) {
    SCOPED_TRACE(c.objective);
    auto e = ParseXGBoostJson(ModelJson(c.objective, "2E-1"), 3);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    EXPECT_EQ(e->link, c.link);
    EXPECT_EQ(e->base_margin, c.base_margin);
  }
  auto bad = ParseXGBoostJson(ModelJson(R"({"name": "binary:logistic"})", "1.5"), 3);
  EXPECT_FALSE(bad.ok());
  auto unknown = ParseXGBoostJson(ModelJson(R"({"name": "rank:pairwise"})"), 3);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("rank:pairwise"), std::string::npos);
}

TEST(XGBoostJsonTest, DartWeightsScaleTheLeaves) {
  auto e =
      ParseXGBoostJson(ModelJson(R"({"name": "binary:logitraw"})", "0", "1", "[0, 0]", "dart"), 3);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->trees[0].value[2], 0.375f);  // 0.75 * 0.5
  EXPECT_EQ(e->trees[1].value[0], 0.25f);   // 0.125 * 2
}

TEST(XGBoostJsonTest, ParsesGblinear) {
  const std::string json = R"({"learner": {
      "learner_model_param": {"base_score": "5E-1", "num_class": "0", "num_feature": "3"},
      "objective": {"name": "binary:logistic"},
      "gradient_booster": {"name": "gblinear", "model": {"weights": [0.5, -1.0, 2.0, 0.25]}}}})";
  auto e = ParseXGBoostJson(json, 3);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_TRUE(e->linear);
  EXPECT_EQ(e->linear_weights, (std::vector<float>{0.5f, -1.0f, 2.0f}));
  EXPECT_EQ(e->linear_bias, 0.25f);
  auto forest = Forest::FromEnsemble(std::move(e).value());
  ASSERT_TRUE(forest.ok());
  const float row[] = {1.0f, std::numeric_limits<float>::quiet_NaN(), 0.5f};
  EXPECT_FLOAT_EQ((*forest)->PredictMargin(row), 0.25f + 0.5f + 1.0f);  // the NaN term is skipped
  EXPECT_FALSE(ParseXGBoostJson(json, 4).ok());  // weights for 3 features, rows of 4
}

// `json` with the first `from` replaced by `to`.
std::string Replace(std::string json, const std::string& from, const std::string& to) {
  const size_t at = json.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) json.replace(at, from.size(), to);
  return json;
}

void ExpectInvalid(const StatusOr<Ensemble>& e, const std::string& fragment) {
  ASSERT_FALSE(e.ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find(fragment), std::string::npos) << e.status().message();
}

TEST(XGBoostJsonTest, RejectsWhatIsNotAModel) {
  ExpectInvalid(ParseXGBoostJson("", 3), "not valid JSON");
  ExpectInvalid(ParseXGBoostJson("hello", 3), "not valid JSON");
  ExpectInvalid(ParseXGBoostJson("[1, 2, 3]", 3), "not an XGBoost model");
  ExpectInvalid(ParseXGBoostJson(R"({"format": "vigil-model", "version": 1})", 3),
                "not an XGBoost model");
  ExpectInvalid(ParseXGBoostJson(R"({"learner": {"objective": 3}})", 3), "not an XGBoost model");
  const std::string good = ModelJson();
  ExpectInvalid(ParseXGBoostJson(good.substr(0, good.size() / 2), 3), "not valid JSON");
}

TEST(XGBoostJsonTest, RejectsASplitBeyondTheRow) {
  ExpectInvalid(ParseXGBoostJson(ModelJson(R"({"name": "binary:logistic"})", "5E-1", "17"), 15),
                "tree 0: split on feature 17 but rows have 15 features");
  ExpectInvalid(ParseXGBoostJson(ModelJson(R"({"name": "binary:logistic"})", "5E-1", "-2"), 15),
                "split on feature -2");
}

TEST(XGBoostJsonTest, RejectsMultiClass) {
  ExpectInvalid(
      ParseXGBoostJson(ModelJson(R"({"name": "multi:softprob"})", "5E-1", "1", "[0, 1]"), 3),
      "multi-class");
  ExpectInvalid(
      ParseXGBoostJson(Replace(ModelJson(), R"("num_class": "0")", R"("num_class": "3")"), 3),
      "multi-output");
}

TEST(XGBoostJsonTest, RejectsBrokenTrees) {
  const std::string json = ModelJson();
  // A cycle: node 2's left child is the root.
  ExpectInvalid(
      ParseXGBoostJson(
          Replace(Replace(json, "[1, -1, -1]", "[1, -1, 0]"), "[2, -1, -1]", "[2, -1, 1]"), 3),
      "tree 0");
  ExpectInvalid(ParseXGBoostJson(Replace(json, "[10, 6, 4]", "[10, 6]"), 3), "differ in length");
  ExpectInvalid(
      ParseXGBoostJson(Replace(json, R"("split_indices": [1,)", R"("split_indices": ["a",)"), 3),
      "split_indices");
  ExpectInvalid(ParseXGBoostJson(
                    Replace(json, R"("split_type": [0, 0, 0])", R"("split_type": [1, 0, 0])"), 3),
                "categorical");
  std::string gblinear_iso =
      R"({"learner": {"objective": {"name": "vigil:isolation", "isolation_norm": "2"},
      "gradient_booster": {"name": "gblinear", "model": {"weights": [1, 2]}}}})";
  ExpectInvalid(ParseXGBoostJson(gblinear_iso, 1), "gblinear");
}

// Every prefix of a real model, and random byte flips, give an error or a model, never a crash.
TEST(XGBoostJsonTest, SurvivesTruncationAndCorruption) {
  std::mt19937 rng(1);
  std::vector<float> x(400 * 15);
  std::vector<uint8_t> y(400);
  std::normal_distribution<float> normal;
  for (size_t r = 0; r < y.size(); ++r) {
    for (size_t c = 0; c < 15; ++c) x[r * 15 + c] = normal(rng);
    y[r] = x[r * 15] + 0.5f * normal(rng) > 0.3f;
  }
  std::vector<std::string> names;
  names.reserve(15);
  for (int c = 0; c < 15; ++c) names.push_back("f" + std::to_string(c));
  TrainOptions options;
  options.params = {{"n_estimators", "5"}};
  auto model = TrainModel(x, y, names, options);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const std::string& json = model->xgboost_json;
  ASSERT_TRUE(ParseXGBoostJson(json, 15).ok());
  for (size_t cut = 0; cut < json.size(); cut += 1 + json.size() / 60) {
    EXPECT_FALSE(ParseXGBoostJson(json.substr(0, cut), 15).ok()) << "prefix of " << cut;
  }
  std::uniform_int_distribution<size_t> pos(0, json.size() - 1);
  const char junk[] = "-9e{}[]\",:x1";
  for (int i = 0; i < 200; ++i) {
    std::string bad = json;
    for (int k = 0; k < 3; ++k) bad[pos(rng)] = junk[rng() % (sizeof(junk) - 1)];
    auto e = ParseXGBoostJson(bad, 15);
    if (e.ok()) {
      auto forest = Forest::FromEnsemble(std::move(e).value());
      ASSERT_TRUE(forest.ok()) << forest.status().ToString();
      std::vector<float> row(15, 0.5f);
      (void)(*forest)->Predict(row);
    }
  }
}

}  // namespace
}  // namespace vigil
