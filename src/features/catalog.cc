#include "features/catalog.h"

#include <cstdio>

namespace vigil {
namespace {

std::string Format(const char* fmt, double v) {
  char buf[96];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

std::string Duration(double seconds) {
  if (seconds < 120) return Format("%.0f s", seconds);
  if (seconds < 7200) return Format("%.0f min", seconds / 60);
  if (seconds < 2 * 86400) return Format("%.1f h", seconds / 3600);
  return Format("%.1f days", seconds / 86400);
}

// "day" or "7 days".
std::string Window(int days) { return days == 1 ? "day" : std::to_string(days) + " days"; }

std::string DaysAgo(int days) { return std::to_string(days) + " days ago"; }

std::vector<FeatureInfo> MakeFeatures(FeatureSet set) {
  std::vector<FeatureInfo> features;
  for (const CatalogEntry& e : kFeatureCatalog) {
    if (set == FeatureSet::kBook && !e.in_book) continue;
    features.push_back(
        {e.name, e.description, e.reason_code, e.source, e.window_days, e.reason_text});
  }
  return features;
}

}  // namespace

std::string AmountReason(double v, int, int) { return Format("amount is %.2f", v); }

std::string WeekendReason(double v, int, int) {
  return v > 0.5 ? "made on a weekend" : "made on a weekday";
}

std::string NightReason(double v, int, int) {
  return v > 0.5 ? "made at night (00:00-06:59 UTC)" : "made during the day";
}

std::string CustomerCountReason(double v, int days, int) {
  return Format("%.0f", v) + " transaction(s) by this customer in the last " + Window(days);
}

std::string CustomerAverageReason(double v, int days, int) {
  return "this customer's average amount over the last " + Window(days) + " is " +
         Format("%.2f", v);
}

std::string TerminalCountReason(double v, int days, int delay) {
  return Format("%.0f", v) + " transaction(s) at this terminal in the " + Window(days) +
         " ending " + DaysAgo(delay);
}

std::string TerminalRiskReason(double v, int days, int delay) {
  return Format("%.0f%%", 100 * v) + " of this terminal's transactions in the " + Window(days) +
         " ending " + DaysAgo(delay) + " were fraud";
}

std::string AmountRatioReason(double v, int, int) {
  return Format("amount is %.1fx this customer's 30-day average", v);
}

std::string AmountZscoreReason(double v, int, int) {
  return Format("amount is %.1f standard deviations from this customer's 30-day mean", v);
}

std::string AmountMedianRatioReason(double v, int, int) {
  return Format("amount is %.1fx this customer's 30-day median", v);
}

std::string SecondsSincePrevReason(double v, int, int) {
  return Duration(v) + " since this customer's previous transaction";
}

StatusOr<FeatureSet> ParseFeatureSet(std::string_view name) {
  if (name == "book") return FeatureSet::kBook;
  if (name == "all") return FeatureSet::kAll;
  return InvalidArgument("unknown feature set '" + std::string(name) +
                         "' (expected 'book' or 'all')");
}

std::string_view FeatureSetName(FeatureSet set) {
  return set == FeatureSet::kBook ? "book" : "all";
}

const std::vector<FeatureInfo>& Features(FeatureSet set) {
  static const std::vector<FeatureInfo> book = MakeFeatures(FeatureSet::kBook);
  static const std::vector<FeatureInfo> all = MakeFeatures(FeatureSet::kAll);
  return set == FeatureSet::kBook ? book : all;
}

std::vector<std::string> FeatureNames(FeatureSet set) {
  std::vector<std::string> names;
  for (const auto& f : Features(set)) names.push_back(f.name);
  return names;
}

const FeatureInfo* FindFeature(std::string_view name) {
  for (const FeatureInfo& f : Features(FeatureSet::kAll)) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

}  // namespace vigil
