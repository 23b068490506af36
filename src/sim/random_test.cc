#include "sim/random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace vigil {
namespace {

// Expected values below were printed by /usr/bin/python3 (CPython 3.11.2, NumPy 1.24.2); each
// comment gives the call. Doubles are compared exactly: the ports are meant to be bit-exact.

TEST(NumpyRandomTest, RandomSampleMatchesNumpy) {
  // np.random.RandomState(0).random_sample() x3
  NumpyRandomState rs(0);
  EXPECT_EQ(rs.RandomSample(), 0.5488135039273248);
  EXPECT_EQ(rs.RandomSample(), 0.7151893663724195);
  EXPECT_EQ(rs.RandomSample(), 0.6027633760716439);
  // np.random.RandomState(2**32 - 1).random_sample()
  rs.Seed(0xffffffffu);
  EXPECT_EQ(rs.RandomSample(), 0.0976320289940138);
}

TEST(NumpyRandomTest, UniformMatchesNumpy) {
  // rs = np.random.RandomState(0); rs.uniform(5, 100) x2
  NumpyRandomState rs(0);
  EXPECT_EQ(rs.Uniform(5, 100), 57.13728287309585);
  EXPECT_EQ(rs.Uniform(5, 100), 72.94298980537985);
}

TEST(NumpyRandomTest, NormalMatchesNumpyIncludingCachedValue) {
  // rs = np.random.RandomState(0); rs.normal(0, 1) x3
  NumpyRandomState rs(0);
  EXPECT_EQ(rs.Normal(0, 1), 1.764052345967664);
  EXPECT_EQ(rs.Normal(0, 1), 0.4001572083672233);
  EXPECT_EQ(rs.Normal(0, 1), 0.9787379841057392);
  // rs = np.random.RandomState(123); rs.normal(10, 2), rs.uniform(0, 1), rs.normal(10, 2):
  // the uniform draw sits between the two halves of one Box-Muller pair.
  rs.Seed(123);
  EXPECT_EQ(rs.Normal(10, 2), 7.828738793398878);
  EXPECT_EQ(rs.Uniform(0, 1), 0.2268514535642031);
  EXPECT_EQ(rs.Normal(10, 2), 11.99469089316717);
}

TEST(NumpyRandomTest, SeedDropsCachedGaussian) {
  NumpyRandomState rs(0);
  rs.Normal(0, 1);  // leaves the pair's second value cached
  rs.Seed(0);
  EXPECT_EQ(rs.Normal(0, 1), 1.764052345967664);
}

TEST(NumpyRandomTest, PoissonMatchesNumpy) {
  // rs = np.random.RandomState(42); [rs.poisson(2.5) for _ in range(10)]  (multiplication)
  NumpyRandomState rs(42);
  std::vector<int64_t> small;
  small.reserve(10);
  for (int i = 0; i < 10; ++i) small.push_back(rs.Poisson(2.5));
  EXPECT_EQ(small, (std::vector<int64_t>{4, 1, 3, 3, 1, 2, 2, 3, 2, 2}));
  // rs = np.random.RandomState(42); [rs.poisson(37.5) for _ in range(10)]  (PTRS)
  rs.Seed(42);
  std::vector<int64_t> large;
  large.reserve(10);
  for (int i = 0; i < 10; ++i) large.push_back(rs.Poisson(37.5));
  EXPECT_EQ(large, (std::vector<int64_t>{35, 42, 30, 39, 44, 31, 34, 36, 39, 34}));
  // rs = np.random.RandomState(7); [rs.poisson(1e4) for _ in range(5)]
  rs.Seed(7);
  std::vector<int64_t> huge;
  huge.reserve(5);
  for (int i = 0; i < 5; ++i) huge.push_back(rs.Poisson(1e4));
  EXPECT_EQ(huge, (std::vector<int64_t>{9823, 9983, 10000, 9930, 10052}));
  EXPECT_EQ(rs.Poisson(0), 0);
}

TEST(NumpyRandomTest, PermutationMatchesNumpy) {
  // list(np.random.RandomState(0).permutation(10))
  NumpyRandomState rs(0);
  EXPECT_EQ(rs.Permutation(10), (std::vector<int64_t>{2, 8, 4, 9, 1, 6, 7, 3, 0, 5}));
  // list(np.random.RandomState(3).permutation(10000)[:5])
  rs.Seed(3);
  std::vector<int64_t> perm = rs.Permutation(10000);
  EXPECT_EQ(std::vector<int64_t>(perm.begin(), perm.begin() + 5),
            (std::vector<int64_t>{5876, 6555, 1448, 3351, 231}));
  std::sort(perm.begin(), perm.end());
  for (int64_t i = 0; i < 10000; ++i) ASSERT_EQ(perm[i], i);
  EXPECT_TRUE(rs.Permutation(0).empty());
  EXPECT_EQ(rs.Permutation(1), std::vector<int64_t>{0});
}

TEST(PyRandomTest, ChoiceMatchesCpython) {
  // random.seed(5); [random.choice(range(100)) for _ in range(5)]
  PyRandom py(5);
  std::vector<uint64_t> picks;
  picks.reserve(5);
  for (int i = 0; i < 5; ++i) picks.push_back(py.Choice(100));
  EXPECT_EQ(picks, (std::vector<uint64_t>{79, 32, 94, 45, 88}));
}

TEST(PyRandomTest, ChoiceOfOneStillDrawsLikeCpython) {
  // random.seed(1000003); [random.choice(range(1)) for _ in range(3)], random.getrandbits(32)
  PyRandom py(1000003);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(py.Choice(1), 0u);
  EXPECT_EQ(py.GetRandBits(32), 1981119115u);
}

TEST(PyRandomTest, GetRandBitsMatchesCpython) {
  // random.seed(5); random.getrandbits(32), random.getrandbits(7), random.getrandbits(64)
  PyRandom py(5);
  EXPECT_EQ(py.GetRandBits(32), 2675342405u);
  EXPECT_EQ(py.GetRandBits(7), 32u);
  EXPECT_EQ(py.GetRandBits(64), 6613812840851947673u);
}

TEST(PyRandomTest, SampleMatchesCpythonPoolAndSetMethods) {
  // random.seed(0); random.sample(range(10), 4)  (pool method)
  PyRandom py(0);
  EXPECT_EQ(py.Sample(10, 4), (std::vector<int64_t>{6, 9, 0, 2}));
  // random.seed(0); random.sample(range(1000), 8)  (set method)
  py.Seed(0);
  EXPECT_EQ(py.Sample(1000, 8), (std::vector<int64_t>{864, 394, 776, 911, 430, 41, 265, 988}));
  // random.seed(2**40 + 3); random.sample(range(100), 10)  (two-word seed, set method)
  py.Seed((uint64_t{1} << 40) + 3);
  EXPECT_EQ(py.Sample(100, 10), (std::vector<int64_t>{28, 7, 70, 12, 72, 38, 89, 99, 54, 29}));
  // random.seed(12); random.sample(range(25), 0), random.sample(range(25), 25)[:6]
  py.Seed(12);
  EXPECT_TRUE(py.Sample(25, 0).empty());
  std::vector<int64_t> all = py.Sample(25, 25);
  EXPECT_EQ(std::vector<int64_t>(all.begin(), all.begin() + 6),
            (std::vector<int64_t>{15, 8, 21, 16, 11, 4}));
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < 25; ++i) EXPECT_EQ(all[i], i);
}

}  // namespace
}  // namespace vigil
