// Metrics: counters, gauges and histograms, rendered in the Prometheus text format (0.0.4).
//
// Series are created up front or on first use; updating one is a relaxed atomic add, so the
// scoring path pays a few nanoseconds. Thread-safe.
#ifndef VIGIL_MONITOR_METRICS_H_
#define VIGIL_MONITOR_METRICS_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mutex.h"

namespace vigil {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Add(double v = 1) { value_.fetch_add(static_cast<int64_t>(v * kScale), std::memory_order_relaxed); }
  double value() const { return static_cast<double>(value_.load(std::memory_order_relaxed)) / kScale; }

 private:
  static constexpr int64_t kScale = 1000;  // three decimals; counters count events or seconds
  std::atomic<int64_t> value_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts per bound, then +Inf; sum.
  std::vector<uint64_t> Cumulative() const;
  double sum() const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<uint64_t> count_{0};
  std::atomic<int64_t> sum_micros_{0};
};

// A registry of metric families. Get* returns a series that lives as long as the registry.
class MetricsRegistry {
 public:
  Counter& GetCounter(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& GetHistogram(const std::string& name, const std::string& help,
                          const std::vector<double>& bounds, const Labels& labels = {});
  // A gauge read at render time.
  void AddGauge(const std::string& name, const std::string& help, std::function<double()> read);

  // A family whose series are read at render time: one per label set `read` returns (a queue's
  // depth per queue, say). `counter`: the values only grow (TYPE counter), else a gauge.
  using SeriesReader = std::function<std::vector<std::pair<Labels, double>>()>;
  void AddSeries(const std::string& name, const std::string& help, bool counter, SeriesReader read);

  // The Prometheus text exposition of every family, families sorted by name.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Family {
    Type type;
    std::string help;
    std::map<std::string, std::unique_ptr<Counter>> counters;      // by rendered labels
    std::map<std::string, std::unique_ptr<Histogram>> histograms;  // by rendered labels
    std::function<double()> gauge;
    SeriesReader series;  // kCounter or kGauge families added by AddSeries
  };
  mutable Mutex mu_;
  std::map<std::string, Family> families_ GUARDED_BY(mu_);
};

}  // namespace vigil

#endif  // VIGIL_MONITOR_METRICS_H_
