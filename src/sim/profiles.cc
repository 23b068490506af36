#include "sim/profiles.h"

#include <algorithm>
#include <cmath>

#include "sim/random.h"

namespace vigil {

std::vector<CustomerProfile> GenerateCustomerProfiles(int n, uint32_t seed) {
  NumpyRandomState rs(seed);
  std::vector<CustomerProfile> out(n);
  for (CustomerProfile& c : out) {
    c.x = rs.Uniform(0, kGridSize);
    c.y = rs.Uniform(0, kGridSize);
    c.mean_amount = rs.Uniform(5, 100);
    c.std_amount = c.mean_amount / 2;
    c.mean_nb_tx_per_day = rs.Uniform(0, 4);
  }
  return out;
}

TerminalGrid::TerminalGrid(int n, uint32_t seed, double radius) : radius_(radius), x_(n), y_(n) {
  NumpyRandomState rs(seed);
  for (int i = 0; i < n; ++i) {
    x_[i] = rs.Uniform(0, kGridSize);
    y_[i] = rs.Uniform(0, kGridSize);
  }
  // At most 512 x 512 cells: past that, cells would mostly be empty.
  cells_ = static_cast<int>(std::clamp(std::floor(kGridSize / radius), 1.0, 512.0));
  cell_size_ = kGridSize / cells_;
  std::vector<int> count(static_cast<size_t>(cells_) * cells_ + 1, 0);
  std::vector<int> cell_of(n);
  for (int i = 0; i < n; ++i) {
    cell_of[i] = CellIndex(x_[i]) * cells_ + CellIndex(y_[i]);
    ++count[cell_of[i] + 1];
  }
  for (size_t c = 1; c < count.size(); ++c) count[c] += count[c - 1];
  start_ = count;
  ids_.resize(n);
  for (int i = 0; i < n; ++i) ids_[count[cell_of[i]]++] = i;
}

int TerminalGrid::CellIndex(double v) const {
  double c = std::floor(v / cell_size_);
  if (!(c >= 0)) return 0;
  if (c >= cells_ - 1) return cells_ - 1;
  return static_cast<int>(c);
}

void TerminalGrid::Within(double x, double y, std::vector<int32_t>* out) const {
  out->clear();
  int x_lo = CellIndex(x - radius_);
  int x_hi = CellIndex(x + radius_);
  int y_lo = CellIndex(y - radius_);
  int y_hi = CellIndex(y + radius_);
  for (int cx = x_lo; cx <= x_hi; ++cx) {
    for (int cy = y_lo; cy <= y_hi; ++cy) {
      int cell = cx * cells_ + cy;
      for (int k = start_[cell]; k < start_[cell + 1]; ++k) {
        int id = ids_[k];
        double dx = x - x_[id];
        double dy = y - y_[id];
        if (std::sqrt(dx * dx + dy * dy) < radius_) out->push_back(id);
      }
    }
  }
  std::sort(out->begin(), out->end());
}

}  // namespace vigil
