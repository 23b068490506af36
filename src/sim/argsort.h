// NumPy's argsort, so that the simulator orders rows with equal timestamps as the book does.
#ifndef VIGIL_SIM_ARGSORT_H_
#define VIGIL_SIM_ARGSORT_H_

#include <cstdint>
#include <span>
#include <vector>

namespace vigil {

// The permutation np.argsort(keys, kind='quicksort') returns with NumPy 1.24 (aquicksort_:
// introsort with median-of-3 quicksort, insertion sort for partitions of at most 16 elements,
// and heapsort past a depth of 2 * floor(log2(n))). It is not stable: equal keys come out in the
// order this particular algorithm leaves them, which is what pandas' default sort_values gives.
// The result depends only on the outcomes of comparisons between keys, so any strictly
// increasing transform of the keys (a shift, a change of unit) gives the same permutation.
std::vector<int64_t> NumpyArgsort(std::span<const int64_t> keys);

}  // namespace vigil

#endif  // VIGIL_SIM_ARGSORT_H_
