#include "sim/profiles.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace vigil {
namespace {

TEST(SimProfilesTest, CustomerZeroIsTheBooks) {
  // The notebook's check value (model_quality.md 1a); the digits are those of
  // np.random.seed(0); [np.random.uniform(0, 100), np.random.uniform(0, 100),
  //                     np.random.uniform(5, 100), np.random.uniform(0, 4)]
  std::vector<CustomerProfile> customers = GenerateCustomerProfiles(3, 0);
  ASSERT_EQ(customers.size(), 3u);
  EXPECT_EQ(customers[0].x, 54.88135039273247);
  EXPECT_EQ(customers[0].y, 71.51893663724195);
  EXPECT_EQ(customers[0].mean_amount, 62.262520726806166);
  EXPECT_EQ(customers[0].std_amount, 62.262520726806166 / 2);
  EXPECT_EQ(customers[0].mean_nb_tx_per_day, 2.1795327319875875);
  EXPECT_NEAR(customers[0].std_amount, 31.131260, 1e-6);
}

TEST(SimProfilesTest, TerminalsComeFromTheirOwnStream) {
  // np.random.seed(0); np.random.uniform(0, 100) x2: terminals seeded like customer profiles
  // draw the same first coordinates.
  TerminalGrid grid(2, 0, 5.0);
  EXPECT_EQ(grid.x(0), 54.88135039273247);
  EXPECT_EQ(grid.y(0), 71.51893663724195);
}

// The grid finds exactly what a scan over all terminals finds, for radii below, at and above the
// cell size, including points near the grid's edges.
TEST(SimProfilesTest, WithinMatchesBruteForce) {
  for (double radius : {0.3, 5.0, 12.5, 33.0, 100.0, 250.0}) {
    TerminalGrid grid(3000, 1, radius);
    std::vector<CustomerProfile> points = GenerateCustomerProfiles(200, 7);
    points.push_back({0.0, 0.0});
    points.push_back({99.999, 0.001});
    std::vector<int32_t> got;
    for (const CustomerProfile& p : points) {
      grid.Within(p.x, p.y, &got);
      std::vector<int32_t> want;
      for (int id = 0; id < grid.size(); ++id) {
        double dx = p.x - grid.x(id);
        double dy = p.y - grid.y(id);
        if (std::sqrt(dx * dx + dy * dy) < radius) want.push_back(id);
      }
      ASSERT_EQ(got, want) << "radius " << radius << " at (" << p.x << ", " << p.y << ")";
    }
  }
}

TEST(SimProfilesTest, WithinIsStrict) {
  TerminalGrid grid(1, 1, 5.0);
  std::vector<int32_t> got;
  grid.Within(grid.x(0) + 5.0, grid.y(0), &got);
  // 5.0 away (up to rounding of x + 5 - x) is not "closer than 5".
  double d = std::fabs((grid.x(0) + 5.0) - grid.x(0));
  EXPECT_EQ(got.empty(), !(d < 5.0));
  grid.Within(grid.x(0), grid.y(0), &got);
  EXPECT_EQ(got, std::vector<int32_t>{0});
}

}  // namespace
}  // namespace vigil
