#include "monitor/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace vigil {
namespace {

std::string EscapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string RenderLabels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string s = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) s += ',';
    s += labels[i].first + "=\"" + EscapeLabel(labels[i].second) + "\"";
  }
  return s + "}";
}

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

// Adds one label to a rendered label set ("{a=\"1\"}" + le -> "{a=\"1\",le=\"0.5\"}").
std::string WithLabel(const std::string& rendered, const std::string& extra) {
  if (rendered.empty()) return "{" + extra + "}";
  return rendered.substr(0, rendered.size() - 1) + "," + extra + "}";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::Observe(double v) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<int64_t>(v * 1e6), std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::Cumulative() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

double Histogram::sum() const {
  return static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6;
}

Counter& MetricsRegistry::GetCounter(const std::string& name, const std::string& help,
                                     const Labels& labels) {
  MutexLock lock(&mu_);
  Family& f = families_[name];
  f.type = Type::kCounter;
  f.help = help;
  auto& c = f.counters[RenderLabels(labels)];
  if (!c) c = std::make_unique<Counter>();
  return *c;
}

Histogram& MetricsRegistry::GetHistogram(const std::string& name, const std::string& help,
                                         const std::vector<double>& bounds, const Labels& labels) {
  MutexLock lock(&mu_);
  Family& f = families_[name];
  f.type = Type::kHistogram;
  f.help = help;
  auto& h = f.histograms[RenderLabels(labels)];
  if (!h) h = std::make_unique<Histogram>(bounds);
  return *h;
}

void MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                               std::function<double()> read) {
  MutexLock lock(&mu_);
  Family& f = families_[name];
  f.type = Type::kGauge;
  f.help = help;
  f.gauge = std::move(read);
}

void MetricsRegistry::AddSeries(const std::string& name, const std::string& help, bool counter,
                                SeriesReader read) {
  MutexLock lock(&mu_);
  Family& f = families_[name];
  f.type = counter ? Type::kCounter : Type::kGauge;
  f.help = help;
  f.series = std::move(read);
}

std::string MetricsRegistry::Render() const {
  MutexLock lock(&mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    const char* type = f.type == Type::kCounter ? "counter"
                       : f.type == Type::kGauge ? "gauge"
                                                : "histogram";
    out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + type + "\n";
    if (f.series) {
      for (const auto& [labels, v] : f.series()) out += name + RenderLabels(labels) + " " + Number(v) + "\n";
    } else if (f.type == Type::kCounter) {
      for (const auto& [labels, c] : f.counters) {
        out += name + labels + " " + Number(c->value()) + "\n";
      }
    } else if (f.type == Type::kGauge) {
      out += name + " " + Number(f.gauge ? f.gauge() : 0) + "\n";
    } else {
      for (const auto& [labels, h] : f.histograms) {
        const auto cumulative = h->Cumulative();
        for (size_t i = 0; i < h->bounds().size(); ++i) {
          out += name + "_bucket" + WithLabel(labels, "le=\"" + Number(h->bounds()[i]) + "\"") +
                 " " + std::to_string(cumulative[i]) + "\n";
        }
        out += name + "_bucket" + WithLabel(labels, "le=\"+Inf\"") + " " +
               std::to_string(cumulative.back()) + "\n";
        out += name + "_sum" + labels + " " + Number(h->sum()) + "\n";
        out += name + "_count" + labels + " " + std::to_string(cumulative.back()) + "\n";
      }
    }
  }
  return out;
}

}  // namespace vigil
