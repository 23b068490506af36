#include "sim/argsort.h"

#include <utility>

namespace vigil {
namespace {

// NumPy sorts an array of indices `tosort` and compares v[tosort[i]]. Here each index travels
// with its key, which performs the same comparisons and the same moves (hence gives the same
// permutation) without an indirect load per comparison.
struct Entry {
  int64_t key;
  int64_t index;
};

// numpy/core/src/npysort/npysort_heapsort.h, aheapsort_, on entries [0, n). NumPy indexes the
// heap from 1 (a = tosort - 1); a(i) below is that a[i].
void HeapSort(Entry* base, int64_t n) {
  auto a = [base](int64_t i) -> Entry& { return base[i - 1]; };
  int64_t i, j, l;
  Entry tmp;
  for (l = n >> 1; l > 0; --l) {
    tmp = a(l);
    for (i = l, j = l << 1; j <= n;) {
      if (j < n && a(j).key < a(j + 1).key) j += 1;
      if (tmp.key < a(j).key) {
        a(i) = a(j);
        i = j;
        j += j;
      } else {
        break;
      }
    }
    a(i) = tmp;
  }
  for (; n > 1;) {
    tmp = a(n);
    a(n) = a(1);
    n -= 1;
    for (i = 1, j = 2; j <= n;) {
      if (j < n && a(j).key < a(j + 1).key) j++;
      if (tmp.key < a(j).key) {
        a(i) = a(j);
        i = j;
        j += j;
      } else {
        break;
      }
    }
    a(i) = tmp;
  }
}

// numpy/core/src/npysort/quicksort.cpp, aquicksort_, on entries [0, num).
constexpr int64_t kSmallQuicksort = 15;  // SMALL_QUICKSORT: partitions of > 16 entries split
constexpr int kStackSize = 128;          // PYA_QS_STACK = NPY_BITSOF_INTP * 2

// npy_get_msb: floor(log2(n)), 0 for n <= 1.
int MostSignificantBit(uint64_t n) {
  int depth = 0;
  while (n >>= 1) depth++;
  return depth;
}

void QuickSort(Entry* start, int64_t num) {
  int64_t vp;
  Entry* pl = start;
  Entry* pr = start + num - 1;
  Entry* stack[kStackSize];
  Entry** sptr = stack;
  Entry *pm, *pi, *pj, *pk;
  int depth[kStackSize];
  int* psdepth = depth;
  int cdepth = MostSignificantBit(static_cast<uint64_t>(num)) * 2;

  for (;;) {
    if (cdepth < 0) {
      HeapSort(pl, pr - pl + 1);
      goto stack_pop;
    }
    while ((pr - pl) > kSmallQuicksort) {
      // Median of 3, then partition.
      pm = pl + ((pr - pl) >> 1);
      if (pm->key < pl->key) std::swap(*pm, *pl);
      if (pr->key < pm->key) std::swap(*pr, *pm);
      if (pm->key < pl->key) std::swap(*pm, *pl);
      vp = pm->key;
      pi = pl;
      pj = pr - 1;
      std::swap(*pm, *pj);
      for (;;) {
        do {
          ++pi;
        } while (pi->key < vp);
        do {
          --pj;
        } while (vp < pj->key);
        if (pi >= pj) break;
        std::swap(*pi, *pj);
      }
      pk = pr - 1;
      std::swap(*pi, *pk);
      // Push the larger partition, go on with the smaller one.
      if (pi - pl < pr - pi) {
        *sptr++ = pi + 1;
        *sptr++ = pr;
        pr = pi - 1;
      } else {
        *sptr++ = pl;
        *sptr++ = pi - 1;
        pl = pi + 1;
      }
      *psdepth++ = --cdepth;
    }

    // Insertion sort.
    for (pi = pl + 1; pi <= pr; ++pi) {
      Entry vi = *pi;
      vp = vi.key;
      pj = pi;
      pk = pi - 1;
      while (pj > pl && vp < pk->key) *pj-- = *pk--;
      *pj = vi;
    }
  stack_pop:
    if (sptr == stack) break;
    pr = *(--sptr);
    pl = *(--sptr);
    cdepth = *(--psdepth);
  }
}

}  // namespace

std::vector<int64_t> NumpyArgsort(std::span<const int64_t> keys) {
  int64_t n = static_cast<int64_t>(keys.size());
  std::vector<Entry> entries(keys.size());
  for (int64_t i = 0; i < n; ++i) entries[i] = {keys[i], i};
  if (n > 1) QuickSort(entries.data(), n);
  std::vector<int64_t> perm(keys.size());
  for (int64_t i = 0; i < n; ++i) perm[i] = entries[i].index;
  return perm;
}

}  // namespace vigil
