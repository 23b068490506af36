// The portable kernel: the walk of forest_walk.h over plain arrays of 16 lanes. Branch-free, so
// a data-dependent split costs no misprediction, and the 16 independent walks of a group keep
// the core busy; the compiler vectorises what SSE2 allows.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "model/forest_layout.h"
#include "model/forest_walk.h"

namespace vigil {
namespace {

struct ScalarOps {
  static constexpr int kLanes = 16;
  static constexpr int kInFlight = 2;
  static constexpr bool kOwnTop = true;
  struct VI {
    int32_t v[kLanes];
  };
  struct VF {
    float v[kLanes];
  };
  struct Row {
    const float* x;
  };

  struct M {
    int32_t v[kLanes];  // 1: left
  };

  static Row LoadRow(const float* x, size_t) { return Row{x}; }
  static bool HasNaN(const Row&) { return true; }  // the NaN-aware step costs nothing extra here
  static VF LoadF(const float* p) {
    VF r;
    for (int l = 0; l < kLanes; ++l) r.v[l] = p[l];
    return r;
  }
  static VI LoadI(const uint32_t* p) {
    VI r;
    for (int l = 0; l < kLanes; ++l) r.v[l] = static_cast<int32_t>(p[l]);
    return r;
  }
  static VF BlendF(const VF& a, const VF& b, const M& m) {
    VF r;
    for (int l = 0; l < kLanes; ++l) r.v[l] = m.v[l] ? b.v[l] : a.v[l];
    return r;
  }
  static VI BlendI(const VI& a, const VI& b, const M& m) {
    VI r;
    for (int l = 0; l < kLanes; ++l) r.v[l] = m.v[l] ? b.v[l] : a.v[l];
    return r;
  }
  static int32_t LeftOne(const Row& row, float t, uint32_t in) {
    const float x = row.x[in & kInfoFeatureMask];
    // left when x < t, or when x is missing and the node's default is left
    return (x < t) | ((x != x) & ((in & kInfoDefaultLeft) != 0));
  }
  template <bool kNaN>
  static M Left(const Row& row, const VF& t, const VI& in) {
    M m;
    for (int l = 0; l < kLanes; ++l) m.v[l] = LeftOne(row, t.v[l], static_cast<uint32_t>(in.v[l]));
    return m;
  }
  // The top levels lane by lane: each lane reads only the node on its own path.
  template <bool kNaN>
  static VI Top(const Row& row, const float* thr, const uint32_t* info) {
    VI r;
    for (int l = 0; l < kLanes; ++l) {
      size_t path = 0;
      int32_t left = 0;
      uint32_t in = 0;
      for (int level = 0; level < kTopLevels; ++level) {
        const size_t at = ((size_t{1} << level) - 1 + path) * kGroupLanes + l;
        in = info[at];
        left = LeftOne(row, thr[at], in);
        path = 2 * path + 1 - left;
      }
      r.v[l] = static_cast<int32_t>(in >> kInfoChildShift) - left;
    }
    return r;
  }
  static VI Next(const VI& in, const M& left) {
    VI r;
    for (int l = 0; l < kLanes; ++l) {
      r.v[l] = static_cast<int32_t>(static_cast<uint32_t>(in.v[l]) >> kInfoChildShift) - left.v[l];
    }
    return r;
  }
  template <bool kNaN>
  static VI Step(VI node, const Row& row, const uint64_t* nodes) {
    for (int l = 0; l < kLanes; ++l) {
      const uint64_t word = nodes[node.v[l]];
      const uint32_t bits = static_cast<uint32_t>(word);
      float t;
      std::memcpy(&t, &bits, sizeof t);
      const uint32_t in = static_cast<uint32_t>(word >> 32);
      node.v[l] = static_cast<int32_t>(in >> kInfoChildShift) - LeftOne(row, t, in);
    }
    return node;
  }
  static VF NegZero() {
    VF r;
    for (int l = 0; l < kLanes; ++l) r.v[l] = -0.0f;
    return r;
  }
  static VF Add(VF a, const VF& b) {
    for (int l = 0; l < kLanes; ++l) a.v[l] += b.v[l];
    return a;
  }
  static void Store(float* p, const VF& a) {
    for (int l = 0; l < kLanes; ++l) p[l] = a.v[l];
  }
  static VF Gather(const float* leaf, const VI& node) {
    VF r;
    for (int l = 0; l < kLanes; ++l) r.v[l] = leaf[node.v[l]];
    return r;
  }
};

}  // namespace

void TreeSumsScalar(const ForestLayout& layout, const float* rows, size_t n, float* sums) {
  forest_walk::Walker<ScalarOps>::TreeSums(layout, rows, n, sums);
}

}  // namespace vigil
