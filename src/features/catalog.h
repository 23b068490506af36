// The feature catalog: the one table that says everything Vigil knows about each feature.
//
// One entry per feature, in model order: its name, description, reason code and the function
// that writes its reason sentence, the state it reads and the length of its window. The public
// FeatureInfo lists (Features(set)) are built from it, DescribeFeature reads its reasons from it,
// and the compute code writes each feature at the index of its entry (FeatureId), reading window
// lengths from it. Adding a feature is adding an entry and the code that computes it.
#ifndef VIGIL_FEATURES_CATALOG_H_
#define VIGIL_FEATURES_CATALOG_H_

#include <cstddef>
#include <iterator>
#include <string>
#include <string_view>

#include "vigil/features.h"

namespace vigil {

// A feature's position in a row: the index of its catalog entry. The book set is a prefix of
// the "all" set, so an index is the same in both.
enum class FeatureId : int {
  kAmount,
  kWeekend,
  kNight,
  kCustomerNbTx1d,
  kCustomerAvgAmount1d,
  kCustomerNbTx7d,
  kCustomerAvgAmount7d,
  kCustomerNbTx30d,
  kCustomerAvgAmount30d,
  kTerminalNbTx1d,
  kTerminalRisk1d,
  kTerminalNbTx7d,
  kTerminalRisk7d,
  kTerminalNbTx30d,
  kTerminalRisk30d,
  kCustomerAmountRatio30d,
  kCustomerAmountZscore30d,
  kCustomerAmountMedianRatio30d,
  kCustomerSecondsSincePrev,
  kNumFeatures,  // not a feature
};

constexpr size_t Index(FeatureId id) { return static_cast<size_t>(id); }
inline constexpr size_t kNumAllFeatures = Index(FeatureId::kNumFeatures);

struct CatalogEntry {
  FeatureId id;
  bool in_book;  // one of the handbook's 15 (every feature is in the "all" set)
  FeatureSource source;
  int window_days;  // 0 without a window
  const char* name;
  const char* description;
  const char* reason_code;
  FeatureInfo::ReasonFormatter reason_text;
};

// Reason sentences (catalog.cc). Each gets the feature's value, its window and the label delay.
std::string AmountReason(double value, int window_days, int label_delay_days);
std::string WeekendReason(double value, int window_days, int label_delay_days);
std::string NightReason(double value, int window_days, int label_delay_days);
std::string CustomerCountReason(double value, int window_days, int label_delay_days);
std::string CustomerAverageReason(double value, int window_days, int label_delay_days);
std::string TerminalCountReason(double value, int window_days, int label_delay_days);
std::string TerminalRiskReason(double value, int window_days, int label_delay_days);
std::string AmountRatioReason(double value, int window_days, int label_delay_days);
std::string AmountZscoreReason(double value, int window_days, int label_delay_days);
std::string AmountMedianRatioReason(double value, int window_days, int label_delay_days);
std::string SecondsSincePrevReason(double value, int window_days, int label_delay_days);

// The reason codes and sentences are an interface: clients and tests match them, so change one
// only with them. The descriptions are what `vigil features --list` prints.
inline constexpr CatalogEntry kFeatureCatalog[] = {
    {FeatureId::kAmount, true, FeatureSource::kTransaction, 0, "amount", "transaction amount",
     "AMOUNT", &AmountReason},
    {FeatureId::kWeekend, true, FeatureSource::kTransaction, 0, "weekend",
     "1 if the transaction is on a Saturday or Sunday (UTC), else 0", "WEEKEND", &WeekendReason},
    {FeatureId::kNight, true, FeatureSource::kTransaction, 0, "night",
     "1 if the transaction is between 00:00 and 06:59 (UTC), else 0", "NIGHT", &NightReason},

    {FeatureId::kCustomerNbTx1d, true, FeatureSource::kCustomer, 1, "customer_nb_tx_1d",
     "customer's transactions in the last 1 day(s), this one included", "CUSTOMER_VELOCITY_1D",
     &CustomerCountReason},
    {FeatureId::kCustomerAvgAmount1d, true, FeatureSource::kCustomer, 1, "customer_avg_amount_1d",
     "customer's average amount over the last 1 day(s), this one included",
     "CUSTOMER_AVERAGE_AMOUNT_1D", &CustomerAverageReason},
    {FeatureId::kCustomerNbTx7d, true, FeatureSource::kCustomer, 7, "customer_nb_tx_7d",
     "customer's transactions in the last 7 day(s), this one included", "CUSTOMER_VELOCITY_7D",
     &CustomerCountReason},
    {FeatureId::kCustomerAvgAmount7d, true, FeatureSource::kCustomer, 7, "customer_avg_amount_7d",
     "customer's average amount over the last 7 day(s), this one included",
     "CUSTOMER_AVERAGE_AMOUNT_7D", &CustomerAverageReason},
    {FeatureId::kCustomerNbTx30d, true, FeatureSource::kCustomer, 30, "customer_nb_tx_30d",
     "customer's transactions in the last 30 day(s), this one included", "CUSTOMER_VELOCITY_30D",
     &CustomerCountReason},
    {FeatureId::kCustomerAvgAmount30d, true, FeatureSource::kCustomer, 30,
     "customer_avg_amount_30d",
     "customer's average amount over the last 30 day(s), this one included",
     "CUSTOMER_AVERAGE_AMOUNT_30D", &CustomerAverageReason},

    // The description says "(7)": the handbook's delay, not the engine's option.
    {FeatureId::kTerminalNbTx1d, true, FeatureSource::kTerminal, 1, "terminal_nb_tx_1d",
     "terminal's transactions in the 1-day window that ends label_delay days (7) before this one",
     "TERMINAL_VOLUME_1D", &TerminalCountReason},
    {FeatureId::kTerminalRisk1d, true, FeatureSource::kTerminal, 1, "terminal_risk_1d",
     "fraud rate on the terminal over that same delayed 1-day window (0 when it is empty)",
     "TERMINAL_FRAUD_RATE_1D", &TerminalRiskReason},
    {FeatureId::kTerminalNbTx7d, true, FeatureSource::kTerminal, 7, "terminal_nb_tx_7d",
     "terminal's transactions in the 7-day window that ends label_delay days (7) before this one",
     "TERMINAL_VOLUME_7D", &TerminalCountReason},
    {FeatureId::kTerminalRisk7d, true, FeatureSource::kTerminal, 7, "terminal_risk_7d",
     "fraud rate on the terminal over that same delayed 7-day window (0 when it is empty)",
     "TERMINAL_FRAUD_RATE_7D", &TerminalRiskReason},
    {FeatureId::kTerminalNbTx30d, true, FeatureSource::kTerminal, 30, "terminal_nb_tx_30d",
     "terminal's transactions in the 30-day window that ends label_delay days (7) before this "
     "one",
     "TERMINAL_VOLUME_30D", &TerminalCountReason},
    {FeatureId::kTerminalRisk30d, true, FeatureSource::kTerminal, 30, "terminal_risk_30d",
     "fraud rate on the terminal over that same delayed 30-day window (0 when it is empty)",
     "TERMINAL_FRAUD_RATE_30D", &TerminalRiskReason},

    {FeatureId::kCustomerAmountRatio30d, false, FeatureSource::kCustomer, 30,
     "customer_amount_ratio_30d",
     "amount / customer's average amount over the previous 30 days (1 if none)",
     "AMOUNT_VS_CUSTOMER_AVERAGE", &AmountRatioReason},
    {FeatureId::kCustomerAmountZscore30d, false, FeatureSource::kCustomer, 30,
     "customer_amount_zscore_30d",
     "(amount - mean) / std of the customer's previous 30 days of amounts (0 if fewer than 2; "
     "std floored at 5% of the mean)",
     "AMOUNT_UNUSUAL_FOR_CUSTOMER", &AmountZscoreReason},
    {FeatureId::kCustomerAmountMedianRatio30d, false, FeatureSource::kCustomer, 30,
     "customer_amount_median_ratio_30d",
     "amount / median of the customer's previous 30 days of amounts (1 if none)",
     "AMOUNT_VS_CUSTOMER_MEDIAN", &AmountMedianRatioReason},
    // The cap is a window of its own: no previous transaction within 30 days reads as 30 days.
    {FeatureId::kCustomerSecondsSincePrev, false, FeatureSource::kCustomer, 30,
     "customer_seconds_since_prev",
     "seconds since the customer's previous transaction (capped at 30 days)",
     "CUSTOMER_TIME_SINCE_PREVIOUS", &SecondsSincePrevReason},
};

constexpr const CatalogEntry& Entry(FeatureId id) { return kFeatureCatalog[Index(id)]; }
constexpr int WindowDays(FeatureId id) { return Entry(id).window_days; }

// The longest window over the features that read `source`: what its state must keep.
constexpr int MaxWindowDays(FeatureSource source) {
  int days = 0;
  for (const CatalogEntry& e : kFeatureCatalog) {
    if (e.source == source && e.window_days > days) days = e.window_days;
  }
  return days;
}

// (Not `reason_text != nullptr`: g++ 12 with -fsanitize=null, part of the sanitizer build,
// cannot fold a function's address compared with null in a constant expression. features_test
// checks that every feature has a reason formatter.)
constexpr bool CatalogIsWellFormed() {
  size_t book = 0;
  for (size_t i = 0; i < std::size(kFeatureCatalog); ++i) {
    const CatalogEntry& e = kFeatureCatalog[i];
    if (Index(e.id) != i) return false;
    if (e.in_book) {
      if (book != i) return false;  // the book set must be a prefix of "all"
      ++book;
    }
  }
  return std::size(kFeatureCatalog) == kNumAllFeatures;
}
static_assert(CatalogIsWellFormed(),
              "catalog entries out of FeatureId order, or book not a prefix");

constexpr size_t NumFeatures(FeatureSet set) {
  size_t n = 0;
  for (const CatalogEntry& e : kFeatureCatalog) n += set == FeatureSet::kAll || e.in_book;
  return n;
}

}  // namespace vigil

#endif  // VIGIL_FEATURES_CATALOG_H_
