#include "sim/random.h"

#include <cmath>
#include <unordered_set>
#include <utility>

namespace vigil {

// ---------------------------------------------------------------------------------------------
// Mt19937

void Mt19937::InitGenrand(uint32_t seed) {
  state_[0] = seed;
  for (int i = 1; i < kN; ++i) {
    state_[i] = 1812433253u * (state_[i - 1] ^ (state_[i - 1] >> 30)) + static_cast<uint32_t>(i);
  }
  index_ = kN;
}

void Mt19937::InitByArray(const uint32_t* key, size_t key_length) {
  InitGenrand(19650218u);
  size_t i = 1;
  size_t j = 0;
  for (size_t k = (kN > key_length ? kN : key_length); k > 0; --k) {
    state_[i] = (state_[i] ^ ((state_[i - 1] ^ (state_[i - 1] >> 30)) * 1664525u)) + key[j] +
                static_cast<uint32_t>(j);
    ++i;
    ++j;
    if (i >= kN) {
      state_[0] = state_[kN - 1];
      i = 1;
    }
    if (j >= key_length) j = 0;
  }
  for (size_t k = kN - 1; k > 0; --k) {
    state_[i] = (state_[i] ^ ((state_[i - 1] ^ (state_[i - 1] >> 30)) * 1566083941u)) -
                static_cast<uint32_t>(i);
    ++i;
    if (i >= kN) {
      state_[0] = state_[kN - 1];
      i = 1;
    }
  }
  state_[0] = 0x80000000u;  // MSB set: the state is never all zero.
  index_ = kN;
}

void Mt19937::Twist() {
  constexpr int kM = 397;
  constexpr uint32_t kMatrixA = 0x9908b0dfu;
  constexpr uint32_t kUpper = 0x80000000u;
  constexpr uint32_t kLower = 0x7fffffffu;
  auto mix = [](uint32_t y) { return (y >> 1) ^ ((y & 1u) ? kMatrixA : 0u); };
  int k = 0;
  for (; k < kN - kM; ++k) {
    state_[k] = state_[k + kM] ^ mix((state_[k] & kUpper) | (state_[k + 1] & kLower));
  }
  for (; k < kN - 1; ++k) {
    state_[k] = state_[k + (kM - kN)] ^ mix((state_[k] & kUpper) | (state_[k + 1] & kLower));
  }
  state_[kN - 1] = state_[kM - 1] ^ mix((state_[kN - 1] & kUpper) | (state_[0] & kLower));
  index_ = 0;
}

// ---------------------------------------------------------------------------------------------
// NumpyRandomState

void NumpyRandomState::Seed(uint32_t seed) {
  mt_.InitGenrand(seed);
  has_gauss_ = false;
  gauss_ = 0.0;
}

double NumpyRandomState::RandomSample() {
  int32_t a = static_cast<int32_t>(mt_.Next() >> 5);
  int32_t b = static_cast<int32_t>(mt_.Next() >> 6);
  return (a * 67108864.0 + b) / 9007199254740992.0;
}

double NumpyRandomState::Uniform(double low, double high) {
  double range = high - low;
  return low + range * RandomSample();
}

double NumpyRandomState::LegacyGauss() {
  if (has_gauss_) {
    double temp = gauss_;
    has_gauss_ = false;
    gauss_ = 0.0;
    return temp;
  }
  double x1, x2, r2;
  do {
    x1 = 2.0 * RandomSample() - 1.0;
    x2 = 2.0 * RandomSample() - 1.0;
    r2 = x1 * x1 + x2 * x2;
  } while (r2 >= 1.0 || r2 == 0.0);
  double f = std::sqrt(-2.0 * std::log(r2) / r2);
  gauss_ = f * x1;
  has_gauss_ = true;
  return f * x2;
}

double NumpyRandomState::Normal(double loc, double scale) { return loc + scale * LegacyGauss(); }

int64_t NumpyRandomState::PoissonMult(double lam) {
  double enlam = std::exp(-lam);
  int64_t x = 0;
  double prod = 1.0;
  while (true) {
    prod *= RandomSample();
    if (prod > enlam) {
      x += 1;
    } else {
      return x;
    }
  }
}

namespace {

// log(Gamma(x)) as NumPy's random_loggam computes it (Stirling series, shifted below 7).
double RandomLoggam(double x) {
  static constexpr double kA[10] = {
      8.333333333333333e-02, -2.777777777777778e-03, 7.936507936507937e-04, -5.952380952380952e-04,
      8.417508417508418e-04, -1.917526917526918e-03, 6.410256410256410e-03, -2.955065359477124e-02,
      1.796443723688307e-01, -1.39243221690590e+00};
  if (x == 1.0 || x == 2.0) return 0.0;
  int64_t n = x < 7.0 ? static_cast<int64_t>(7 - x) : 0;
  double x0 = x + n;
  double x2 = (1.0 / x0) * (1.0 / x0);
  constexpr double kLog2Pi = 1.8378770664093453e+00;
  double gl0 = kA[9];
  for (int k = 8; k >= 0; --k) {
    gl0 *= x2;
    gl0 += kA[k];
  }
  double gl = gl0 / x0 + 0.5 * kLog2Pi + (x0 - 0.5) * std::log(x0) - x0;
  if (x < 7.0) {
    for (int64_t k = 1; k <= n; ++k) {
      gl -= std::log(x0 - 1.0);
      x0 -= 1.0;
    }
  }
  return gl;
}

}  // namespace

int64_t NumpyRandomState::PoissonPtrs(double lam) {
  double slam = std::sqrt(lam);
  double loglam = std::log(lam);
  double b = 0.931 + 2.53 * slam;
  double a = -0.059 + 0.02483 * b;
  double invalpha = 1.1239 + 1.1328 / (b - 3.4);
  double vr = 0.9277 - 3.6224 / (b - 2);
  while (true) {
    double u = RandomSample() - 0.5;
    double v = RandomSample();
    double us = 0.5 - std::fabs(u);
    int64_t k = static_cast<int64_t>(std::floor((2 * a / us + b) * u + lam + 0.43));
    if (us >= 0.07 && v <= vr) return k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if ((std::log(v) + std::log(invalpha) - std::log(a / (us * us) + b)) <=
        (-lam + static_cast<double>(k) * loglam - RandomLoggam(static_cast<double>(k + 1)))) {
      return k;
    }
  }
}

int64_t NumpyRandomState::Poisson(double lam) {
  if (lam >= 10) return PoissonPtrs(lam);
  if (lam == 0) return 0;
  return PoissonMult(lam);
}

uint64_t NumpyRandomState::Interval(uint64_t max) {
  if (max == 0) return 0;
  uint64_t mask = max;
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  mask |= mask >> 16;
  mask |= mask >> 32;
  uint64_t value;
  if (max <= 0xffffffffu) {
    while ((value = (mt_.Next() & mask)) > max) {
    }
  } else {
    while (true) {
      // next_uint64: the first word is the high half.
      uint64_t hi = mt_.Next();
      uint64_t lo = mt_.Next();
      value = ((hi << 32) | lo) & mask;
      if (value <= max) break;
    }
  }
  return value;
}

std::vector<int64_t> NumpyRandomState::Permutation(int64_t n) {
  std::vector<int64_t> out(n > 0 ? static_cast<size_t>(n) : 0);
  for (int64_t i = 0; i < n; ++i) out[i] = i;
  for (int64_t i = n - 1; i >= 1; --i) {
    uint64_t j = Interval(static_cast<uint64_t>(i));
    std::swap(out[i], out[j]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// PyRandom

void PyRandom::Seed(uint64_t seed) {
  uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  mt_.InitByArray(key, key[1] != 0 ? 2 : 1);
}

uint64_t PyRandom::GetRandBits(int k) {
  if (k <= 0) return 0;
  if (k <= 32) return mt_.Next() >> (32 - k);
  // Words from least to most significant; the last one keeps its top bits.
  uint64_t low = mt_.Next();
  uint64_t high = mt_.Next() >> (64 - k);
  return (high << 32) | low;
}

uint64_t PyRandom::RandBelow(uint64_t n) {
  int k = 0;
  for (uint64_t m = n; m != 0; m >>= 1) ++k;  // n.bit_length()
  uint64_t r = GetRandBits(k);
  while (r >= n) r = GetRandBits(k);
  return r;
}

std::vector<int64_t> PyRandom::Sample(int64_t n, int64_t k) {
  std::vector<int64_t> result(k > 0 ? static_cast<size_t>(k) : 0);
  int64_t setsize = 21;  // size of a small set minus size of an empty list
  if (k > 5) {
    // 4 ** ceil(log(k * 3, 4)), with math.log's float arithmetic.
    double e = std::ceil(std::log(static_cast<double>(k * 3)) / std::log(4.0));
    setsize += int64_t{1} << (2 * static_cast<int>(e));
  }
  if (n <= setsize) {
    std::vector<int64_t> pool(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) pool[i] = i;
    for (int64_t i = 0; i < k; ++i) {
      int64_t j = static_cast<int64_t>(RandBelow(static_cast<uint64_t>(n - i)));
      result[i] = pool[j];
      pool[j] = pool[n - i - 1];
    }
  } else {
    std::unordered_set<int64_t> selected;
    selected.reserve(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) {
      int64_t j = static_cast<int64_t>(RandBelow(static_cast<uint64_t>(n)));
      while (selected.count(j) != 0) j = static_cast<int64_t>(RandBelow(static_cast<uint64_t>(n)));
      selected.insert(j);
      result[i] = j;
    }
  }
  return result;
}

}  // namespace vigil
