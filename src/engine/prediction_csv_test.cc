#include "engine/prediction_csv.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace vigil {
namespace {

TEST(PredictionCsvTest, HeaderNamesTheColumns) {
  EXPECT_EQ(PredictionCsvHeader(false), "transaction_id,score,decision,anomaly_score\n");
  EXPECT_EQ(PredictionCsvHeader(true), "transaction_id,score,decision,anomaly_score,reasons\n");
}

TEST(PredictionCsvTest, RowsRoundTripTheirNumbersAndQuoteTheReasons) {
  Prediction p;
  p.score = 0.1;
  p.decision = Decision::kReview;
  p.anomaly_score = 0.5625;
  p.reasons = {{"AMOUNT", "amount is \"high\"", "amount", 900, 0.8412},
               {"NIGHT", "at night", "night", 1, -0.0004}};
  std::string row;
  AppendPredictionCsvRow(&row, 42, p, true);
  EXPECT_EQ(row,
            "42,0.1,review,0.5625,\"AMOUNT (+0.841): amount is \"\"high\"\"; NIGHT (-0.000): at "
            "night\"\n");
  row.clear();
  AppendPredictionCsvRow(&row, -7, p, false);
  EXPECT_EQ(row, "-7,0.1,review,0.5625\n");
}

TEST(PredictionCsvTest, NoAnomalyForestLeavesItsCellEmpty) {
  Prediction p;
  p.score = 1.0 / 3;
  p.decision = Decision::kDecline;
  p.anomaly_score = std::numeric_limits<double>::quiet_NaN();
  std::string row;
  AppendPredictionCsvRow(&row, 1, p, true);
  EXPECT_EQ(row, "1,0.3333333333333333,decline,,\"\"\n");
}

}  // namespace
}  // namespace vigil
