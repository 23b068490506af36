// The AVX-512 kernel: the walk of forest_walk.h, a whole group of 16 trees per vector. A row of
// up to 16 features is one register (a feature lookup is one vpermps), up to 32 two registers
// (one vpermt2ps). The top levels of a group are vector loads and masked blends; below, node
// words are fetched with gathers, several groups walking together so that those overlap.
// Compiled for AVX-512 whatever the build flags; called only where the CPU has AVX-512F/BW/VL
// (forest.cc).
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "model/forest_layout.h"

#if defined(__clang__)  // clang has no `#pragma GCC target`
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")
// g++ 12 warns inside avx512fintrin.h about its own _mm512_undefined_* placeholders.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "model/forest_walk.h"

namespace vigil {
namespace {

// A row of kRegs registers. Explicitly instantiated here, inside the target region (see
// forest_walk.h).
template <int kRegs>
struct Avx512Row {
  __m512 r[kRegs];
};
template struct Avx512Row<1>;
template struct Avx512Row<2>;

template <int kRegs>
struct Avx512Ops {
  static constexpr int kLanes = 16;
  static constexpr bool kOwnTop = false;
  static constexpr int kInFlight = 5;
  using VI = __m512i;
  using VF = __m512;
  using M = __mmask16;  // set in the lanes that go left
  using Row = Avx512Row<kRegs>;

  static Row LoadRow(const float* x, size_t width) {
    Row row;
    for (int i = 0; i < kRegs; ++i) {
      const size_t begin = static_cast<size_t>(i) * 16;
      const size_t valid = width > begin ? std::min<size_t>(width - begin, 16) : 0;
      const __mmask16 mask = static_cast<__mmask16>((uint32_t{1} << valid) - 1);
      row.r[i] = _mm512_maskz_loadu_ps(mask, x + begin);
    }
    return row;
  }
  static bool HasNaN(const Row& row) {
    __mmask16 nan = _mm512_cmp_ps_mask(row.r[0], row.r[0], _CMP_UNORD_Q);
    for (int i = 1; i < kRegs; ++i) nan |= _mm512_cmp_ps_mask(row.r[i], row.r[i], _CMP_UNORD_Q);
    return nan != 0;
  }
  static VF LoadF(const float* p) { return _mm512_loadu_ps(p); }
  static VI LoadI(const uint32_t* p) { return _mm512_loadu_si512(p); }
  static VF BlendF(VF a, VF b, M m) { return _mm512_mask_blend_ps(m, a, b); }
  static VI BlendI(VI a, VI b, M m) { return _mm512_mask_blend_epi32(m, a, b); }
  static VF NegZero() { return _mm512_set1_ps(-0.0f); }
  static VF Add(VF a, VF b) { return _mm512_add_ps(a, b); }
  static void Store(float* p, VF a) { _mm512_storeu_ps(p, a); }

  static VF Lookup(const Row& row, VI in) {
    if constexpr (kRegs == 1) {
      // index bits 0-3. The masked form with every lane selected compiles to the same vpermps,
      // without _mm512_permutexvar_ps's _mm512_undefined_ps() pass-through, which g++ 12
      // reports as used uninitialised (-Wuninitialized) once -fsanitize=undefined is on.
      return _mm512_mask_permutexvar_ps(_mm512_setzero_ps(), static_cast<__mmask16>(0xFFFF), in,
                                        row.r[0]);
    } else {
      return _mm512_permutex2var_ps(row.r[0], in, row.r[1]);  // index bits 0-4
    }
  }

  template <bool kNaN>
  static M Left(const Row& row, VF t, VI in) {
    const __m512 x = Lookup(row, in);
    __mmask16 left = _mm512_cmp_ps_mask(x, t, _CMP_LT_OQ);
    if constexpr (kNaN) {
      const __mmask16 missing = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
      const __mmask16 dl =
          _mm512_test_epi32_mask(in, _mm512_set1_epi32(static_cast<int>(kInfoDefaultLeft)));
      left = static_cast<__mmask16>(left | (missing & dl));
    }
    return left;
  }
  // The right child, minus one (the left child) where the lane goes left.
  static VI Next(VI in, M left) {
    const __m512i right = _mm512_srli_epi32(in, kInfoChildShift);
    return _mm512_mask_sub_epi32(right, left, right, _mm512_set1_epi32(1));
  }
  template <bool kNaN>
  static VI Step(VI node, const Row& row, const uint64_t* nodes) {
    // Two gathers of eight 64-bit words (lanes 0-7 and 8-15), then one two-source permute per
    // field to split thresholds from infos in lane order.
    const __m512i a = _mm512_i32gather_epi64(_mm512_castsi512_si256(node), nodes, 8);
    const __m512i b = _mm512_i32gather_epi64(_mm512_extracti64x4_epi64(node, 1), nodes, 8);
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd =
        _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 t = _mm512_castsi512_ps(_mm512_permutex2var_epi32(a, even, b));
    const __m512i in = _mm512_permutex2var_epi32(a, odd, b);
    return Next(in, Left<kNaN>(row, t, in));
  }
  static VF Gather(const float* leaf, VI node) { return _mm512_i32gather_ps(node, leaf, 4); }
};

template <int kRegs>
void Run(const ForestLayout& layout, const float* rows, size_t n, float* sums) {
  forest_walk::Walker<Avx512Ops<kRegs>>::TreeSums(layout, rows, n, sums);
}

}  // namespace

void TreeSumsAvx512(const ForestLayout& layout, const float* rows, size_t n, float* sums) {
  if (layout.row_width <= 16) return Run<1>(layout, rows, n, sums);
  return Run<2>(layout, rows, n, sums);
}

}  // namespace vigil

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif
