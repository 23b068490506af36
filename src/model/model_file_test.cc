#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "vigil/model.h"

namespace vigil {
namespace {

ModelFile SmallModel() {
  std::vector<float> x;
  std::vector<uint8_t> y;
  for (int i = 0; i < 200; ++i) {
    x.push_back(static_cast<float>(i % 17));
    x.push_back(static_cast<float>(i % 5));
    y.push_back(i % 17 > 12 ? 1 : 0);
  }
  TrainOptions o;
  o.params = {{"n_estimators", "3"}};
  o.threads = 1;
  auto m = TrainModel(x, y, {"amount", "night"}, o);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return *m;
}

std::string Path(const std::string& name) { return ::testing::TempDir() + "/" + name; }

TEST(ModelFileTest, RoundTripsEveryField) {
  ModelFile m = SmallModel();
  m.feature_set = "book";
  m.label_delay_days = 5;
  m.training = {"2018-07-25", 7, 200, 35};
  m.data_fingerprint = "0123456789abcdef";
  m.code_version = "test";
  m.created_at = "2026-11-21T00:00:00Z";
  m.metrics = {{"test_auc", 0.875}};
  m.has_thresholds = true;
  m.thresholds.review = 0.25;
  m.thresholds.decline = 0.75;
  m.thresholds.targets.review_rate = 0.02;
  m.thresholds.validation = {{"rows", 100}};
  ASSERT_TRUE(SaveModel(m, Path("m.model")).ok());
  auto back = LoadModel(Path("m.model"));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->algo, m.algo);
  EXPECT_EQ(back->feature_names, m.feature_names);
  EXPECT_EQ(back->label_delay_days, 5);
  EXPECT_EQ(back->params, m.params);
  EXPECT_EQ(back->training.frauds, 35);
  EXPECT_EQ(back->metrics, m.metrics);
  EXPECT_TRUE(back->has_thresholds);
  EXPECT_EQ(back->thresholds.review, 0.25);
  EXPECT_EQ(back->thresholds.decline, 0.75);
  EXPECT_EQ(back->thresholds.targets.review_rate, 0.02);
  EXPECT_EQ(back->thresholds.validation, m.thresholds.validation);
  // XGBoost reads the embedded model back and predicts the same.
  std::vector<float> row = {14.0f, 1.0f};
  EXPECT_EQ(*PredictWithXGBoost(*back, row), *PredictWithXGBoost(m, row));
}

TEST(ModelFileTest, BadFilesAreClearErrors) {
  ASSERT_TRUE(SaveModel(SmallModel(), Path("good.model")).ok());
  std::ifstream in(Path("good.model"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto write = [](const std::string& name, const std::string& content) {
    std::ofstream(Path(name)) << content;
    return Path(name);
  };
  struct Case {
    std::string content, message;
  };
  std::string v2 = text;
  v2.replace(v2.find("\"format_version\": 1"), 19, "\"format_version\": 2");
  std::string no_features = text;
  no_features.replace(no_features.find("\"features\""), 10, "\"featurez\"");
  const Case cases[] = {
      {text.substr(0, text.size() / 2), "not valid JSON"},
      {"[1, 2]", "not a Vigil model"},
      {v2, "format version 2 is not supported"},
      {no_features, "missing or mistyped field"},
  };
  int i = 0;
  for (const Case& c : cases) {
    auto m = LoadModel(write("bad" + std::to_string(i++) + ".model", c.content));
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find(c.message), std::string::npos) << m.status().message();
    EXPECT_NE(m.status().message().find(".model"), std::string::npos) << "names the file";
  }
  EXPECT_EQ(LoadModel(Path("absent.model")).status().code(), StatusCode::kNotFound);
}

TEST(ModelFileTest, ParsesAlgorithmNames) {
  EXPECT_EQ(*ParseAlgorithm("iforest"), Algorithm::kIsolationForest);
  auto list = ParseAlgorithmList("rf,gbdt");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);
  EXPECT_FALSE(ParseAlgorithmList("rf,,gbdt").ok());
  EXPECT_FALSE(ParseAlgorithm("svm").ok());
}

}  // namespace
}  // namespace vigil
