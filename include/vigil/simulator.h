// The transaction simulator: a re-implementation of the fraud-detection handbook's generator
// (Le Borgne et al., "Reproducible Machine Learning for Credit Card Fraud Detection", ch. 3).
//
// Customers and terminals live on a 100x100 grid; each customer uses the terminals within
// `radius`. Each day a customer makes Poisson(mean_nb_tx_per_day) transactions around noon with
// normally distributed amounts. Three fraud scenarios are then applied in order:
//   1. every amount above 220 is fraud;
//   2. each day, 2 random terminals are compromised for 28 days: all their transactions are fraud;
//   3. each day, 3 random customers are compromised for 14 days: a third of their transactions
//      have their amount multiplied by 5 and are fraud.
// With seed 0 the random streams are those of the book (NumPy's legacy RandomState and Python's
// `random`, both MT19937), so the book's configuration reproduces its data set.
#ifndef VIGIL_SIMULATOR_H_
#define VIGIL_SIMULATOR_H_

#include <cstdint>
#include <functional>
#include <string>

#include "vigil/dataset.h"
#include "vigil/status.h"

namespace vigil {

struct SimulatorOptions {
  int customers = 5000;
  int terminals = 10000;
  int days = 183;
  std::string start_date = "2018-04-01";  // YYYY-MM-DD, UTC
  // Seed 0 is the book's: customer profiles use `seed`, terminal profiles `seed + 1`, customer c's
  // transactions `seed * 1000003 + c`, and day d's fraud draws `seed * 1000003 + d` (mod 2^32).
  uint32_t seed = 0;
  double radius = 5.0;  // customers use terminals strictly closer than this
  // Worker threads for the per-customer generation; 0 means one per core. The output does not
  // depend on it.
  int threads = 0;
  // Called now and then with the fraction of the work done (0..1), from the calling thread.
  std::function<void(double)> progress;
};

struct SimulationSummary {
  int64_t transactions = 0;
  int64_t frauds = 0;
  int64_t scenario_frauds[4] = {0, 0, 0, 0};  // index 1..3: final labels by scenario
  double fraud_rate() const {
    return transactions == 0 ? 0.0 : static_cast<double>(frauds) / transactions;
  }
};

// Checks the options ("--days must be at least 1", ...) without running anything.
Status ValidateSimulatorOptions(const SimulatorOptions& options);

// Generates the data set: rows sorted by time, ties ordered as the book's NumPy sort (pandas'
// default, unstable sort_values) orders them, so seed 0 gives the book's transaction IDs;
// transaction_id = row index, amounts rounded to cents, labels set (has_labels = true).
StatusOr<Dataset> Simulate(const SimulatorOptions& options);

SimulationSummary Summarize(const Dataset& data);

}  // namespace vigil

#endif  // VIGIL_SIMULATOR_H_
