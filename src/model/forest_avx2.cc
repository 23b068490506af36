// The AVX2 kernel: the walk of forest_walk.h, 8 trees per vector. The row stays in registers
// (up to four of 8 features); a feature lookup is a permute per register and blends, not a
// load. The top levels of a group are vector loads and blends; below, each lane's node word is
// loaded on its own; several vectors walk together so those loads overlap.
// Compiled for AVX2 whatever the build flags; called only where the CPU has AVX2 (forest.cc).
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "model/forest_layout.h"

#if defined(__clang__)  // clang has no `#pragma GCC target`
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif

#include "model/forest_walk.h"

namespace vigil {
namespace {

// A row of kRegs registers. Explicitly instantiated here, inside the target region (see
// forest_walk.h).
template <int kRegs>
struct Avx2Row {
  __m256 r[kRegs];
};
template struct Avx2Row<1>;
template struct Avx2Row<2>;
template struct Avx2Row<3>;
template struct Avx2Row<4>;

template <int kRegs>
struct Avx2Ops {
  static constexpr int kLanes = 8;
  static constexpr bool kOwnTop = false;
  static constexpr int kInFlight = 6;
  using VI = __m256i;
  using VF = __m256;
  using M = __m256;  // all ones in the lanes that go left
  using Row = Avx2Row<kRegs>;

  static Row LoadRow(const float* x, size_t width) {
    Row row;
    for (int i = 0; i < kRegs; ++i) {
      const size_t begin = static_cast<size_t>(i) * 8;
      if (begin + 8 <= width) {
        row.r[i] = _mm256_loadu_ps(x + begin);
      } else {
        const int valid = static_cast<int>(width - begin);  // 1..7
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), lane);
        row.r[i] = _mm256_maskload_ps(x + begin, mask);
      }
    }
    return row;
  }
  static bool HasNaN(const Row& row) {
    __m256 nan = _mm256_cmp_ps(row.r[0], row.r[0], _CMP_UNORD_Q);
    for (int i = 1; i < kRegs; ++i) {
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(row.r[i], row.r[i], _CMP_UNORD_Q));
    }
    return _mm256_movemask_ps(nan) != 0;
  }
  static VF LoadF(const float* p) { return _mm256_loadu_ps(p); }
  static VI LoadI(const uint32_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static VF BlendF(VF a, VF b, M m) { return _mm256_blendv_ps(a, b, m); }
  static VI BlendI(VI a, VI b, M m) {
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), m));
  }
  static VF NegZero() { return _mm256_set1_ps(-0.0f); }
  static VF Add(VF a, VF b) { return _mm256_add_ps(a, b); }
  static void Store(float* p, VF a) { _mm256_storeu_ps(p, a); }

  // x[info & 31] for each lane: a permute within each register of 8, then blends on bit 3
  // (which register of a pair) and bit 4 (which pair).
  static VF Lookup(const Row& row, VI in) {
    if constexpr (kRegs == 1) {
      return _mm256_permutevar8x32_ps(row.r[0], in);
    } else {
      const __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(in, 28));
      const __m256 lo = _mm256_blendv_ps(_mm256_permutevar8x32_ps(row.r[0], in),
                                         _mm256_permutevar8x32_ps(row.r[1], in), bit3);
      if constexpr (kRegs == 2) {
        return lo;
      } else {
        __m256 hi = _mm256_permutevar8x32_ps(row.r[2], in);
        if constexpr (kRegs == 4) {
          hi = _mm256_blendv_ps(hi, _mm256_permutevar8x32_ps(row.r[3], in), bit3);
        }
        const __m256 bit4 = _mm256_castsi256_ps(_mm256_slli_epi32(in, 27));
        return _mm256_blendv_ps(lo, hi, bit4);
      }
    }
  }

  template <bool kNaN>
  static M Left(const Row& row, VF t, VI in) {
    const __m256 x = Lookup(row, in);
    __m256 left = _mm256_cmp_ps(x, t, _CMP_LT_OQ);
    if constexpr (kNaN) {
      const __m256 missing = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
      const __m256 dl = _mm256_castsi256_ps(_mm256_srai_epi32(_mm256_slli_epi32(in, 26), 31));
      left = _mm256_or_ps(left, _mm256_and_ps(missing, dl));
    }
    return left;
  }
  // The right child, minus one (the left child) where the lane goes left: `left` is all ones.
  static VI Next(VI in, M left) {
    return _mm256_add_epi32(_mm256_srli_epi32(in, kInfoChildShift), _mm256_castps_si256(left));
  }
  template <bool kNaN>
  static VI Step(VI node, const Row& row, const uint64_t* nodes) {
    // Each lane's 64-bit node word, lanes {0,1,4,5} in one register and {2,3,6,7} in the other,
    // so that one shuffle per field puts the thresholds and the infos back in lane order. Plain
    // loads rather than vpgatherdq: on AMD Zen 3 (this machine) a gather is microcoded and no
    // faster than eight loads, and Intel's GDS mitigation slows gathers too.
    alignas(32) uint32_t idx[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(idx), node);
    auto pair = [&](int i, int j) {
      return _mm_insert_epi64(_mm_cvtsi64_si128(static_cast<long long>(nodes[idx[i]])),
                              static_cast<long long>(nodes[idx[j]]), 1);
    };
    const __m256 a = _mm256_castsi256_ps(_mm256_setr_m128i(pair(0, 1), pair(4, 5)));
    const __m256 b = _mm256_castsi256_ps(_mm256_setr_m128i(pair(2, 3), pair(6, 7)));
    const __m256 t = _mm256_shuffle_ps(a, b, 0x88);
    const __m256i in = _mm256_castps_si256(_mm256_shuffle_ps(a, b, 0xDD));
    return Next(in, Left<kNaN>(row, t, in));
  }
  static VF Gather(const float* leaf, VI node) { return _mm256_i32gather_ps(leaf, node, 4); }
};

template <int kRegs>
void Run(const ForestLayout& layout, const float* rows, size_t n, float* sums) {
  forest_walk::Walker<Avx2Ops<kRegs>>::TreeSums(layout, rows, n, sums);
}

}  // namespace

void TreeSumsAvx2(const ForestLayout& layout, const float* rows, size_t n, float* sums) {
  switch ((layout.row_width + 7) / 8) {
    case 0:
    case 1:
      return Run<1>(layout, rows, n, sums);
    case 2:
      return Run<2>(layout, rows, n, sums);
    case 3:
      return Run<3>(layout, rows, n, sums);
    default:
      return Run<4>(layout, rows, n, sums);
  }
}

}  // namespace vigil

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
