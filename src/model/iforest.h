// Isolation forest (Liu, Ting and Zhou, 2008; as scikit-learn's IsolationForest), trained in C++
// and expressed in Vigil's canonical tree form (model/tree.h), so the scoring engine that scores
// XGBoost models scores it too: each leaf holds the path length of the rows that reach it, the
// margin is the mean path length over the trees and Link::kIsolation turns it into the anomaly
// score 2^(-margin / isolation_norm).
#ifndef VIGIL_MODEL_IFOREST_H_
#define VIGIL_MODEL_IFOREST_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "model/tree.h"
#include "vigil/status.h"

namespace vigil {

struct IsolationForestOptions {
  int trees = 100;        // number of isolation trees; >= 1
  int sample_size = 256;  // rows drawn per tree without replacement, capped at rows; >= 2
  uint64_t seed = 0;      // tree t draws from an mt19937_64 seeded from (seed, t)
  int threads = 0;        // 0: one per hardware thread; 1: the calling thread only
};

// The average path length of an unsuccessful search in a binary search tree of n points, which
// normalises path lengths: c(n) = 2 H(n-1) - 2 (n-1) / n with H(i) ~ ln(i) + Euler's gamma,
// c(1) = 0 (and c(0) = 0), c(2) = 1.
double IsolationAveragePathLength(size_t n);

// Trains an isolation forest on the rows of `x` (row-major, rows * cols, every value finite).
//
// With psi = min(sample_size, rows), every tree draws psi distinct rows and splits them down to
// depth ceil(log2(psi)): each node picks a feature uniformly among those not constant on its rows
// and a threshold uniformly in [min, max) of that feature (nudged, as a float, so that
// `x < threshold` sends at least one row each way). A node with one row or with only constant
// features becomes a leaf, whose value is depth + c(rows reaching it). The result has
// link = Link::kIsolation, tree_scale = 1 / trees, base_margin = 0 and isolation_norm = c(psi);
// cover is the number of training rows reaching each node. default_left is 1 everywhere: a
// missing (NaN) value at scoring time goes left, since training never saw one.
//
// Results depend only on the data and the options other than `threads`: trees train in parallel
// on std::threads when threads != 1 and the ensemble is identical whatever the thread count.
// Errors: InvalidArgument for rows < 2, cols == 0, x.size() != rows * cols, trees < 1,
// sample_size < 2, threads < 0, or a NaN or infinite value (naming its row and column).
StatusOr<Ensemble> TrainIsolationForest(std::span<const float> x, size_t rows, size_t cols,
                                        const IsolationForestOptions& options);

// The ensemble as an XGBoost 1.7 JSON model (gbtree, objective "vigil:isolation" carrying
// isolation_norm), so it can live in a Vigil model file and be read back by ParseXGBoostJson.
// Floats round-trip exactly.
// REQUIRES: e.link == Link::kIsolation, !e.linear
std::string IsolationForestToJson(const Ensemble& e);

// The anomaly score 2^(-margin / isolation_norm) computed by a plain tree walk, margin being
// base_margin + tree_scale * (sum of the leaves reached); the reference the scoring kernels are
// tested against. Applies e.mean / e.scale when present; NaN follows default_left.
// REQUIRES: e.link == Link::kIsolation, row.size() == e.num_features
double IsolationScoreReference(const Ensemble& e, std::span<const float> row);

}  // namespace vigil

#endif  // VIGIL_MODEL_IFOREST_H_
