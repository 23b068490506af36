// Bit-exact ports of the two random generators the handbook's Python generator uses, so that the
// simulator reproduces the book's data set: NumPy's legacy `np.random.RandomState` and CPython's
// `random.Random`. Both sit on MT19937 but seed it and turn its words into values differently.
//
// References: NumPy 1.24 `mtrand.pyx`, `_mt19937.pyx`, `distributions.c`, `legacy-distributions.c`;
// CPython 3.11 `_randommodule.c` and `Lib/random.py`. Every draw below consumes exactly the words
// the original consumes, in the same order.
#ifndef VIGIL_SIM_RANDOM_H_
#define VIGIL_SIM_RANDOM_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vigil {

// The MT19937 generator of Matsumoto and Nishimura, with its two reference seedings.
// Not thread-safe.
class Mt19937 {
 public:
  Mt19937() { InitGenrand(5489u); }

  void InitGenrand(uint32_t seed);
  void InitByArray(const uint32_t* key, size_t key_length);

  uint32_t Next() {
    if (index_ >= kN) Twist();
    uint32_t y = state_[index_++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
  }

 private:
  static constexpr int kN = 624;
  void Twist();

  uint32_t state_[kN];
  int index_ = kN;
};

// NumPy's legacy `np.random.RandomState` (what `np.random.seed` and pandas' `random_state=`
// drive). Not thread-safe.
class NumpyRandomState {
 public:
  NumpyRandomState() { Seed(0); }
  explicit NumpyRandomState(uint32_t seed) { Seed(seed); }

  // `np.random.seed(seed)` with an int: MT19937 init_genrand, cached Gaussian dropped.
  void Seed(uint32_t seed);

  // `random_sample()`: a double in [0, 1) with 53 random bits, from two words.
  double RandomSample();
  // `uniform(low, high)` = low + (high - low) * random_sample().
  double Uniform(double low, double high);
  // `normal(loc, scale)`: the polar Box-Muller method, which keeps the second value for the next
  // call (legacy_gauss).
  double Normal(double loc, double scale);
  // `poisson(lam)`: multiplication method below 10, PTRS (Hoermann 1993) from 10 on.
  // REQUIRES: lam >= 0
  int64_t Poisson(double lam);
  // `permutation(n)`: arange(n) shuffled by Fisher-Yates from the end, each index drawn by masked
  // rejection (random_interval).
  std::vector<int64_t> Permutation(int64_t n);

 private:
  uint64_t Interval(uint64_t max);
  double LegacyGauss();
  int64_t PoissonMult(double lam);
  int64_t PoissonPtrs(double lam);

  Mt19937 mt_;
  bool has_gauss_ = false;
  double gauss_ = 0.0;
};

// CPython's `random.Random` (the module-level `random.seed`, `random.choice`, `random.sample`).
// Not thread-safe.
class PyRandom {
 public:
  PyRandom() { Seed(0); }
  explicit PyRandom(uint64_t seed) { Seed(seed); }

  // `random.seed(n)` for an int n >= 0: init_by_array over the 32-bit words of n, least
  // significant first ([0] for 0).
  void Seed(uint64_t seed);

  // `getrandbits(k)`. REQUIRES: 0 <= k <= 64
  uint64_t GetRandBits(int k);
  // `_randbelow(n)`: getrandbits(n.bit_length()) until the value is below n.
  // REQUIRES: n >= 1
  uint64_t RandBelow(uint64_t n);
  // The index `random.choice(seq)` picks in a sequence of `size` elements.
  // REQUIRES: size >= 1
  uint64_t Choice(uint64_t size) { return RandBelow(size); }
  // The indices `random.sample(range(n), k)` returns, in its order (Python 3.11: a partial
  // shuffle of a pool for small n, else rejection against a set of picks).
  // REQUIRES: 0 <= k <= n
  std::vector<int64_t> Sample(int64_t n, int64_t k);

 private:
  Mt19937 mt_;
};

}  // namespace vigil

#endif  // VIGIL_SIM_RANDOM_H_
