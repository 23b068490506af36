// The compiled form of a tree ensemble that the scoring kernels walk (private to src/model).
//
// Trees are taken 16 at a time ("groups", sorted by depth so that trees walked together need
// about as many steps). Every node, split or leaf, is described by two 32-bit words:
//   threshold  the split threshold; NaN at a leaf and at a pass-through node (below), so that
//              `x < threshold` is false there;
//   info       bits 0-4 split feature (after compaction, < 32), bit 5 default-left,
//              bits 6-31 the index of its right child in the node array (left = right - 1);
//              a leaf points to itself.
// One step of a walk is therefore, in every lane, branch-free:
//   node = (info >> 6) - (x[info & 31] < threshold || (isnan(x) && default_left))
// and a lane that reached its leaf stays there.
//
// The top kTopLevels levels of a group are stored apart, complete and position-major: the node
// at level k, path p (0 <= p < 2^k, one bit per decision, the first the most significant),
// lane j sits at top[(g * kTopNodes + 2^k - 1 + p) * 16 + j]. A kernel reads a level's
// candidates with plain vector loads and picks each lane's with blends on the decisions taken,
// so the top of a walk needs no gather. A tree that ends above the last top level is padded
// with pass-through nodes (threshold NaN: always right). The children of the last top level are
// in the node array, in breadth-first order over the group's 16 trees, the two children of a
// split side by side; there a step gathers each lane's node as one 64-bit word
// (threshold | info << 32). A group is walked for its deepest tree's depth.
//
// Summation order: lane j of group g holds tree order[16 g + j]. Every kernel accumulates the
// leaves into 16 float lanes, group after group, and reduces the lanes in one fixed pairwise
// order (ReduceLanes). Lanes start at -0.0 and the empty lanes of the last group hold leaves of
// -0.0, the identity of float addition, so a kernel may skip a vector of empty lanes. So all
// kernels return bit-identical sums; they differ from XGBoost's tree-order float sum only by
// rounding (a few 1e-7 of the margin).
#ifndef VIGIL_MODEL_FOREST_LAYOUT_H_
#define VIGIL_MODEL_FOREST_LAYOUT_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vigil {

inline constexpr int kGroupLanes = 16;           // trees per group, the canonical lane count
inline constexpr int kMaxRegisterFeatures = 32;  // features a kernel keeps in registers
inline constexpr int kInfoChildShift = 6;
inline constexpr uint32_t kInfoFeatureMask = 31;
inline constexpr uint32_t kInfoDefaultLeft = 1u << 5;
inline constexpr size_t kMaxLayoutNodes = size_t{1} << (32 - kInfoChildShift);
inline constexpr int kTopLevels = 3;
inline constexpr int kTopNodes = (1 << kTopLevels) - 1;  // per lane of a group

struct ForestLayout {
  size_t num_features = 0;  // row width
  // Rows wider than kMaxRegisterFeatures: the features the trees use are copied, in this order,
  // into a compact row first (at most kMaxRegisterFeatures of them). Empty: no copy.
  std::vector<int32_t> compact_features;
  size_t row_width = 0;  // width of the (compacted) row the kernels load
  size_t num_trees = 0;
  size_t num_groups = 0;
  std::vector<int32_t> depth;        // per group: levels to walk below the top levels
  std::vector<float> top_threshold;  // num_groups * kTopNodes * kGroupLanes
  std::vector<uint32_t> top_info;    // same shape
  std::vector<uint64_t> node;        // threshold bits | info << 32
  std::vector<float> leaf;           // per node: the leaf value (0 at split nodes)
};

// The canonical reduction of the 16 lane sums: halves added pairwise (j + 8, then j + 4, ...).
inline float ReduceLanes(const float* s) {
  float r8[8], r4[4];
  for (int j = 0; j < 8; ++j) r8[j] = s[j] + s[j + 8];
  for (int j = 0; j < 4; ++j) r4[j] = r8[j] + r8[j + 4];
  const float a = r4[0] + r4[2];
  const float b = r4[1] + r4[3];
  return a + b;
}

// Kernels: the float tree sum (before base margin and scale) of `n` rows of layout.num_features
// floats each, row-major. REQUIRES: the CPU supports the kernel's instructions.
void TreeSumsScalar(const ForestLayout& layout, const float* rows, size_t n, float* sums);
void TreeSumsAvx2(const ForestLayout& layout, const float* rows, size_t n, float* sums);
void TreeSumsAvx512(const ForestLayout& layout, const float* rows, size_t n, float* sums);

}  // namespace vigil

#endif  // VIGIL_MODEL_FOREST_LAYOUT_H_
