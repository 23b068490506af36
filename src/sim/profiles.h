// The simulator's customers and terminals: where they are on the 100x100 grid, how customers
// spend, and which terminals each customer uses (generate_customer_profiles_table,
// generate_terminal_profiles_table and get_list_terminals_within_radius in the book).
#ifndef VIGIL_SIM_PROFILES_H_
#define VIGIL_SIM_PROFILES_H_

#include <cstdint>
#include <vector>

namespace vigil {

inline constexpr double kGridSize = 100.0;

struct CustomerProfile {
  double x = 0;
  double y = 0;
  double mean_amount = 0;
  double std_amount = 0;  // mean_amount / 2
  double mean_nb_tx_per_day = 0;
};

// Customers 0..n-1, drawn in order from np.random.seed(seed): x, y, mean_amount,
// mean_nb_tx_per_day.
std::vector<CustomerProfile> GenerateCustomerProfiles(int n, uint32_t seed);

// Terminals 0..n-1 (x, y drawn in order from np.random.seed(seed)), bucketed on a square grid whose
// cells are at least `radius` wide, so that the terminals near a point are found by scanning the
// few cells around it. Immutable once built: safe to share between threads.
class TerminalGrid {
 public:
  // REQUIRES: n >= 0, radius > 0
  TerminalGrid(int n, uint32_t seed, double radius);

  int size() const { return static_cast<int>(x_.size()); }
  double x(int id) const { return x_[id]; }
  double y(int id) const { return y_[id]; }

  // Replaces `out` with the terminals strictly closer than the radius to (x, y), in increasing id
  // order. The distance is sqrt(dx^2 + dy^2) in float64, the book's NumPy expression, so that
  // borderline terminals agree with it.
  void Within(double x, double y, std::vector<int32_t>* out) const;

 private:
  // floor(v / cell_size_) clamped to the grid. Monotonic in v, so every terminal within
  // [x - r, x + r] falls in a scanned cell.
  int CellIndex(double v) const;

  double radius_;
  std::vector<double> x_;
  std::vector<double> y_;
  int cells_ = 1;  // per side
  double cell_size_ = kGridSize;
  std::vector<int> start_;  // ids_[start_[c], start_[c + 1]) are the terminals of cell c
  std::vector<int> ids_;
};

}  // namespace vigil

#endif  // VIGIL_SIM_PROFILES_H_
