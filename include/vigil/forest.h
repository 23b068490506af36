// A Forest is a model compiled for scoring: Vigil's own tree-ensemble inference.
//
// Trees are flat struct-of-arrays walked without allocation, locks or virtual calls; the kernel
// (AVX-512, AVX2 or portable scalar) is chosen once at load time, by timing the kernels the CPU
// has on the model itself, and every kernel returns the same answers. Probabilities equal XGBoost's
// own predictions within 1e-6, missing values (NaN) following XGBoost's default directions.
// Thread-safe: a const Forest may be shared by any number of scoring threads.
#ifndef VIGIL_FOREST_H_
#define VIGIL_FOREST_H_

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "vigil/model.h"
#include "vigil/status.h"

namespace vigil {

struct Ensemble;

enum class Kernel {
  kAuto,  // the fastest kernel on this CPU for this model, measured at load (Forest::FromEnsemble)
  kScalar,
  kAvx2,
  kAvx512,
};
std::string_view KernelName(Kernel k);
// The kernel a name ("auto", "scalar", "avx2", "avx512") names, for options such as
// `--kernel` / VIGIL_KERNEL. Any other name is InvalidArgument naming it and the allowed ones.
StatusOr<Kernel> ParseKernel(std::string_view name);

class Forest {
 public:
  ~Forest();
  Forest(const Forest&) = delete;
  Forest& operator=(const Forest&) = delete;

  // Compiles a model file's XGBoost model (and standardisation). `kernel` forces a kernel; a
  // kernel the CPU lacks is an error naming the ones it has. Kernel::kAuto times every kernel
  // the CPU has on this model, single rows as serving scores them (about a millisecond for a
  // small model, a few for hundreds of trees; the timed part is held to about 20 ms), keeps the
  // fastest, the narrower of two within 3%, and logs one line ("forest kernel chosen") with the
  // timings. The choice never changes a result.
  static StatusOr<std::unique_ptr<Forest>> FromModel(const ModelFile& model,
                                                     Kernel kernel = Kernel::kAuto);
  // Compiles a canonical ensemble (an isolation forest, an imported model); `kernel` as above.
  static StatusOr<std::unique_ptr<Forest>> FromEnsemble(Ensemble ensemble,
                                                        Kernel kernel = Kernel::kAuto);

  size_t num_features() const;
  size_t num_trees() const;
  // The kernel that scores: the one forced, or the one Kernel::kAuto chose (never kAuto).
  Kernel kernel() const;
  // The canonical model this forest was compiled from (for explanations).
  const Ensemble& ensemble() const;

  // Raw margin and output (probability, or anomaly score) of one row; NaN marks a missing value.
  // REQUIRES: row.size() == num_features()
  double PredictMargin(std::span<const float> row) const;
  double Predict(std::span<const float> row) const;

  // Outputs of many rows, row-major; `threads` > 1 splits large batches across threads.
  // Results do not depend on `threads`.
  // REQUIRES: rows.size() == out.size() * num_features()
  void PredictBatch(std::span<const float> rows, std::span<double> out, int threads = 1) const;

 private:
  struct Impl;
  explicit Forest(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil

#endif  // VIGIL_FOREST_H_
