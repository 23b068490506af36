#include <nlohmann/json.hpp>

#include "core/file_util.h"
#include "vigil/model.h"

namespace vigil {
namespace {

constexpr const char* kFormatName = "vigil-model";

}  // namespace

StatusOr<Algorithm> ParseAlgorithm(std::string_view name) {
  if (name == "rf") return Algorithm::kRandomForest;
  if (name == "gbdt") return Algorithm::kGbdt;
  if (name == "logistic") return Algorithm::kLogistic;
  if (name == "iforest") return Algorithm::kIsolationForest;
  return InvalidArgument("unknown algorithm '" + std::string(name) +
                         "' (expected rf, gbdt, logistic or iforest)");
}

std::string_view AlgorithmName(Algorithm algo) {
  switch (algo) {
    case Algorithm::kRandomForest: return "rf";
    case Algorithm::kGbdt: return "gbdt";
    case Algorithm::kLogistic: return "logistic";
    case Algorithm::kIsolationForest: return "iforest";
  }
  return "unknown";
}

StatusOr<std::vector<Algorithm>> ParseAlgorithmList(std::string_view names) {
  std::vector<Algorithm> out;
  size_t start = 0;
  while (start <= names.size()) {
    size_t comma = names.find(',', start);
    std::string_view one =
        names.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    VIGIL_ASSIGN_OR_RETURN(Algorithm a, ParseAlgorithm(one));
    out.push_back(a);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

Status SaveModel(const ModelFile& m, const std::string& path) {
  nlohmann::ordered_json j;
  j["format"] = kFormatName;
  j["format_version"] = kModelFormatVersion;
  j["algorithm"] = AlgorithmName(m.algo);
  j["feature_set"] = m.feature_set;
  j["features"] = m.feature_names;
  j["label_delay_days"] = m.label_delay_days;
  j["params"] = m.params;
  if (!m.feature_mean.empty()) {
    j["standardize"] = {{"mean", m.feature_mean}, {"scale", m.feature_scale}};
  }
  j["training"] = {{"start", m.training.start},
                   {"days", m.training.days},
                   {"rows", m.training.rows},
                   {"frauds", m.training.frauds}};
  j["data_fingerprint"] = m.data_fingerprint;
  j["code_version"] = m.code_version;
  j["created_at"] = m.created_at;
  j["metrics"] = m.metrics;
  if (m.has_thresholds) {
    j["thresholds"] = {{"review", m.thresholds.review},
                       {"decline", m.thresholds.decline},
                       {"targets",
                        {{"review_rate", m.thresholds.targets.review_rate},
                         {"decline_precision", m.thresholds.targets.decline_precision}}},
                       {"validation", m.thresholds.validation}};
  }
  try {
    j["xgboost"] = nlohmann::ordered_json::parse(m.xgboost_json);
    if (!m.anomaly_json.empty()) j["anomaly"] = nlohmann::ordered_json::parse(m.anomaly_json);
  } catch (const nlohmann::json::exception& e) {
    return Internal(std::string("model JSON does not parse: ") + e.what());
  }
  return WriteFileAtomically(path, j.dump(1) + "\n");
}

StatusOr<ModelFile> LoadModel(const std::string& path, size_t max_bytes) {
  VIGIL_ASSIGN_OR_RETURN(std::string text, ReadFile(path, max_bytes));
  return ParseModel(text, path);
}

StatusOr<ModelFile> ParseModel(std::string_view text, const std::string& path) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("model file '" + path + "': " + why);
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return bad(std::string("not valid JSON (truncated or corrupt?): ") + e.what());
  }
  if (!j.is_object() || j.value("format", "") != kFormatName) {
    return bad("not a Vigil model (no \"format\": \"vigil-model\")");
  }
  ModelFile m;
  try {
    const int version = j.at("format_version").get<int>();
    if (version != kModelFormatVersion) {
      return bad("format version " + std::to_string(version) + " is not supported (this build reads " +
                 std::to_string(kModelFormatVersion) + ")");
    }
    VIGIL_ASSIGN_OR_RETURN(m.algo, ParseAlgorithm(j.at("algorithm").get<std::string>()));
    m.feature_set = j.at("feature_set").get<std::string>();
    m.feature_names = j.at("features").get<std::vector<std::string>>();
    m.label_delay_days = j.value("label_delay_days", 7);
    if (m.feature_names.empty()) return bad("the model has no features");
    m.params = j.at("params").get<std::map<std::string, std::string>>();
    if (j.contains("standardize")) {
      m.feature_mean = j["standardize"].at("mean").get<std::vector<double>>();
      m.feature_scale = j["standardize"].at("scale").get<std::vector<double>>();
      if (m.feature_mean.size() != m.feature_names.size() ||
          m.feature_scale.size() != m.feature_names.size()) {
        return bad("standardize has the wrong number of values");
      }
    }
    const auto& t = j.at("training");
    m.training = {t.at("start").get<std::string>(), t.at("days").get<int>(),
                  t.at("rows").get<int64_t>(), t.at("frauds").get<int64_t>()};
    m.data_fingerprint = j.at("data_fingerprint").get<std::string>();
    m.code_version = j.at("code_version").get<std::string>();
    m.created_at = j.at("created_at").get<std::string>();
    m.metrics = j.at("metrics").get<std::map<std::string, double>>();
    m.xgboost_json = j.at("xgboost").dump();
    if (j.contains("anomaly")) m.anomaly_json = j["anomaly"].dump();
    if (j.contains("thresholds")) {
      const auto& t = j["thresholds"];
      m.has_thresholds = true;
      m.thresholds.review = t.at("review").get<double>();
      m.thresholds.decline = t.at("decline").get<double>();
      m.thresholds.targets.review_rate = t.at("targets").at("review_rate").get<double>();
      m.thresholds.targets.decline_precision =
          t.at("targets").at("decline_precision").get<double>();
      m.thresholds.validation = t.at("validation").get<std::map<std::string, double>>();
    }
  } catch (const nlohmann::json::exception& e) {
    return bad(std::string("missing or mistyped field: ") + e.what());
  }
  return m;
}

}  // namespace vigil
