// For tests: a small GBDT model trained on simulated data, as the engine's and the processor's
// tests score with.
#ifndef VIGIL_ENGINE_MODEL_FOR_TEST_H_
#define VIGIL_ENGINE_MODEL_FOR_TEST_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vigil/features.h"
#include "vigil/model.h"
#include "vigil/simulator.h"
#include "vigil/training.h"

namespace vigil {

// Trains a model of `trees` trees on `customers` simulated customers over `days` days and saves
// it at `path` (failing the test when it cannot).
inline void TrainModelForTest(const std::string& path, int trees, int customers = 200, int days = 30) {
  SimulatorOptions so;
  so.customers = customers;
  so.terminals = 2 * customers;
  so.days = days;
  so.radius = 10;
  Dataset data = *Simulate(so);
  FeatureMatrix m = ComputeFeatures(data, FeatureSet::kAll, {});
  std::vector<uint8_t> y(data.fraud.begin(), data.fraud.end());
  TrainOptions o;
  o.algo = Algorithm::kGbdt;
  o.params = {{"n_estimators", std::to_string(trees)}};
  o.threads = 1;
  auto model = TrainModel(m.values, y, m.names, o);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ASSERT_TRUE(SaveModel(*model, path).ok()) << path;
}

}  // namespace vigil

#endif  // VIGIL_ENGINE_MODEL_FOR_TEST_H_
