// The one tree-walking algorithm behind every kernel, written once over an instruction set
// ("Ops"): the scalar, AVX2 and AVX-512 kernels are this template with different Ops, so they
// walk the same layout in the same order and return the same sums (forest_layout.h).
//
// Include this only after the kernel file's `#pragma GCC target`, and only define Ops types in
// an anonymous namespace: every instantiation then has internal linkage and the code of one
// instruction set can never be merged into another's.
//
// An Ops type provides:
//   kLanes              trees per vector (16 or 8; kGroupLanes / kLanes vectors per group)
//   kInFlight           vectors walked together so their memory accesses overlap
//   kOwnTop             true: Ops::Top<kNaN>(row, threshold, info) walks the top levels itself
//                       (per lane, for the portable kernel), instead of loads and blends
//   VI, VF, M           int32 and float vectors, a per-lane mask; Row, the row in registers
//   Row LoadRow(const float* x, size_t width); bool HasNaN(const Row&)
//   VF LoadF(const float*); VI LoadI(const uint32_t*)           (kLanes consecutive values)
//   VF BlendF(VF a, VF b, M m); VI BlendI(VI a, VI b, M m)      (m ? b : a, per lane)
//   M Left<kNaN>(const Row&, VF threshold, VI info)             (the lanes that go left)
//   VI Next(VI info, M left)                                    ((info >> 6) - left)
//   VI Step<kNaN>(VI node, const Row&, const uint64_t* nodes)   (one gathered level)
//   VF Gather(const float* leaf, VI node); VF NegZero(); VF Add(VF, VF); void Store(float*, VF)
//
// A SIMD kernel's Row must be a type completed inside the kernel's `#pragma GCC target` region
// (a struct at namespace scope, or a class template explicitly instantiated there), not a
// member of its Ops class template: g++ 12 miscompiles returning the latter. The kernel's
// Run<kRegs> is a function template, so it and the Ops class are instantiated at the end of the
// file, after `#pragma GCC pop_options`; a Row of one __m512 (__m256) laid out there, without
// AVX-512 (AVX), gets BLKmode. Returned by value it still comes back in zmm0 (ymm0), but as a
// PARALLEL, which the vzeroupper pass does not take for a live wide return value: it puts a
// vzeroupper before the `ret`, and the caller gets lanes 0-3 only. That shows wherever such a
// function is not inlined. In the -fsanitize=address,undefined build the load lambda of
// TreeSums was not, and the AVX-512 kernel read features 4-15 of every row as zero.
#ifndef VIGIL_MODEL_FOREST_WALK_H_
#define VIGIL_MODEL_FOREST_WALK_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "model/forest_layout.h"

namespace vigil {
namespace forest_walk {

// Walks R rows (1 or 2) through the same trees together: in a batch, two rows share the
// loads of the top levels, which are the same for every row.
template <class Ops>
struct Walker {
  using VI = typename Ops::VI;
  using VF = typename Ops::VF;
  using M = typename Ops::M;
  using Row = typename Ops::Row;
  static constexpr int kVecPerGroup = kGroupLanes / Ops::kLanes;

  // The top levels of vector v (lanes of group v / kVecPerGroup) for each row: plain loads and
  // blends, no gather. Sets each lane's node in the node array.
  template <int R, bool kNaN>
  static inline void Top(const ForestLayout& f, const Row* rows, size_t v, VI* node) {
    const size_t group = v / kVecPerGroup;
    const size_t base = group * kTopNodes * kGroupLanes + (v % kVecPerGroup) * Ops::kLanes;
    const float* thr = f.top_threshold.data() + base;
    const uint32_t* info = f.top_info.data() + base;
    if constexpr (Ops::kOwnTop) {
      for (int r = 0; r < R; ++r) node[r] = Ops::template Top<kNaN>(rows[r], thr, info);
      return;
    }
    M left[R][kTopLevels];
    VF t[R];
    VI in[R];
    for (int r = 0; r < R; ++r) {
      t[r] = Ops::LoadF(thr);
      in[r] = Ops::LoadI(info);
    }
#pragma GCC unroll 4
    for (int level = 0; level < kTopLevels; ++level) {
      if (level > 0) {
        // Candidates on the 2^level paths; pick each lane's by its decisions, last one first.
        const size_t first = (size_t{1} << level) - 1;
        constexpr int kMax = 1 << (kTopLevels - 1);
        VF ct[kMax];
        VI ci[kMax];
#pragma GCC unroll 8
        for (int p = 0; p < (1 << level); ++p) {
          ct[p] = Ops::LoadF(thr + (first + p) * kGroupLanes);
          ci[p] = Ops::LoadI(info + (first + p) * kGroupLanes);
        }
#pragma GCC unroll 2
        for (int r = 0; r < R; ++r) {
          VF rt[kMax];
          VI ri[kMax];
          int n = 1 << level;
#pragma GCC unroll 4
          for (int d = level - 1; d >= 0; --d) {
            n /= 2;
            const VF* from_t = d == level - 1 ? ct : rt;
            const VI* from_i = d == level - 1 ? ci : ri;
#pragma GCC unroll 8
            for (int q = 0; q < n; ++q) {
              // path bit 1 = right: the right candidate where the lane did not go left
              rt[q] = Ops::BlendF(from_t[2 * q + 1], from_t[2 * q], left[r][d]);
              ri[q] = Ops::BlendI(from_i[2 * q + 1], from_i[2 * q], left[r][d]);
            }
          }
          t[r] = rt[0];
          in[r] = ri[0];
        }
      }
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) left[r][level] = Ops::template Left<kNaN>(rows[r], t[r], in[r]);
    }
    for (int r = 0; r < R; ++r) node[r] = Ops::Next(in[r], left[r][kTopLevels - 1]);
  }

  // Walks vectors [v, v + K) of the layout for each row and adds their leaves into acc[row].
  template <int K, int R, bool kNaN>
  static inline void WalkBlock(const ForestLayout& f, const Row* rows, size_t v,
                               VF (*acc)[kVecPerGroup]) {
    const uint64_t* nodes = f.node.data();
    VI node[K][R];
    int depth = 0;
#pragma GCC unroll 16
    for (int k = 0; k < K; ++k) {
      Top<R, kNaN>(f, rows, v + k, node[k]);
      depth = std::max(depth, f.depth[(v + k) / kVecPerGroup]);
    }
    for (int d = 0; d < depth; ++d) {
#pragma GCC unroll 16
      for (int k = 0; k < K; ++k) {
#pragma GCC unroll 2
        for (int r = 0; r < R; ++r) {
          node[k][r] = Ops::template Step<kNaN>(node[k][r], rows[r], nodes);
        }
      }
    }
#pragma GCC unroll 16
    for (int k = 0; k < K; ++k) {
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) {
        VF& a = acc[r][(v + k) % kVecPerGroup];
        a = Ops::Add(a, Ops::Gather(f.leaf.data(), node[k][r]));
      }
    }
  }

  // WalkBlock<size> for a size known at run time (1 <= size <= K).
  template <int R, bool kNaN, int K>
  static inline void WalkSome(size_t size, const ForestLayout& f, const Row* rows, size_t v,
                              VF (*acc)[kVecPerGroup]) {
    if constexpr (K == 1) {
      WalkBlock<1, R, kNaN>(f, rows, v, acc);
    } else {
      if (size == K) return WalkBlock<K, R, kNaN>(f, rows, v, acc);
      WalkSome<R, kNaN, K - 1>(size, f, rows, v, acc);
    }
  }

  // The tree sums of R rows.
  template <int R, bool kNaN>
  static inline void TreeSum(const ForestLayout& f, const Row* rows, float* sums) {
    // Vectors walked together: about kInFlight in all, whatever the number of rows.
    constexpr int kBlock = Ops::kInFlight / R > 0 ? Ops::kInFlight / R : 1;
    VF acc[R][kVecPerGroup];
    for (int r = 0; r < R; ++r) {
      for (int h = 0; h < kVecPerGroup; ++h) acc[r][h] = Ops::NegZero();
    }
    // Vectors past the last tree hold only empty lanes, which add -0.0: skip them.
    const size_t num_vec = (f.num_trees + Ops::kLanes - 1) / Ops::kLanes;
    // Blocks of nearly equal size, in vector order so that each lane's sum keeps its order.
    const size_t blocks = (num_vec + kBlock - 1) / kBlock;
    size_t v = 0;
    for (size_t b = 0; b < blocks; ++b) {
      const size_t size = (num_vec - v) / (blocks - b);
      WalkSome<R, kNaN, kBlock>(size, f, rows, v, acc);
      v += size;
    }
    for (int r = 0; r < R; ++r) {
      alignas(64) float lanes[kGroupLanes];
      for (int h = 0; h < kVecPerGroup; ++h) Ops::Store(lanes + h * Ops::kLanes, acc[r][h]);
      sums[r] = ReduceLanes(lanes);
    }
  }

  static void TreeSums(const ForestLayout& f, const float* rows, size_t n, float* sums) {
    const size_t width = f.num_features;
    float compact[2][kMaxRegisterFeatures];
    auto load = [&](size_t i, int slot) {
      const float* x = rows + i * width;
      if (!f.compact_features.empty()) {
        for (size_t c = 0; c < f.compact_features.size(); ++c) {
          compact[slot][c] = x[f.compact_features[c]];
        }
        x = compact[slot];
      }
      return Ops::LoadRow(x, f.row_width);
    };
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
      const Row pair[2] = {load(i, 0), load(i + 1, 1)};
      // The NaN-aware step is exact for rows without NaN too.
      if (Ops::HasNaN(pair[0]) || Ops::HasNaN(pair[1])) {
        TreeSum<2, true>(f, pair, sums + i);
      } else {
        TreeSum<2, false>(f, pair, sums + i);
      }
    }
    if (i < n) {
      const Row row = load(i, 0);
      if (Ops::HasNaN(row)) {
        TreeSum<1, true>(f, &row, sums + i);
      } else {
        TreeSum<1, false>(f, &row, sums + i);
      }
    }
  }
};

}  // namespace forest_walk
}  // namespace vigil

#endif  // VIGIL_MODEL_FOREST_WALK_H_
