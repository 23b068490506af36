#include "engine/prediction_csv.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace vigil {
namespace {

void AppendDouble(std::string* out, double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, end);
}

}  // namespace

std::string_view PredictionCsvHeader(bool reasons) {
  return reasons ? "transaction_id,score,decision,anomaly_score,reasons\n"
                 : "transaction_id,score,decision,anomaly_score\n";
}

void AppendPredictionCsvRow(std::string* out, int64_t transaction_id, const Prediction& p,
                            bool reasons) {
  char id[24];
  auto [end, ec] = std::to_chars(id, id + sizeof id, transaction_id);
  out->append(id, end);
  out->push_back(',');
  AppendDouble(out, p.score);
  out->push_back(',');
  out->append(DecisionName(p.decision));
  out->push_back(',');
  if (!std::isnan(p.anomaly_score)) AppendDouble(out, p.anomaly_score);
  if (reasons) {
    out->append(",\"");
    for (size_t i = 0; i < p.reasons.size(); ++i) {
      const Reason& r = p.reasons[i];
      char contribution[32];
      std::snprintf(contribution, sizeof contribution, " (%+.3f): ", r.contribution);
      if (i > 0) out->append("; ");
      out->append(r.code);
      out->append(contribution);
      for (char c : r.text) {
        if (c == '"') out->push_back('"');
        out->push_back(c);
      }
    }
    out->push_back('"');
  }
  out->push_back('\n');
}

}  // namespace vigil
