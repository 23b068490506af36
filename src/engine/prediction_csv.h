// The CSV of offline scoring: what `vigil score` writes, and `vigil process --in/--out` in one
// process or over MPI ranks. One function writes a row, so every path writes the same bytes.
#ifndef VIGIL_ENGINE_PREDICTION_CSV_H_
#define VIGIL_ENGINE_PREDICTION_CSV_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "vigil/engine.h"

namespace vigil {

// "transaction_id,score,decision,anomaly_score" (and ",reasons" when `reasons`), with "\n".
std::string_view PredictionCsvHeader(bool reasons);

// Appends one row and its "\n": the id, the score and the anomaly score as the shortest text
// that reads back to the same double (empty for no anomaly forest), the decision's name, and
// with `reasons` the quoted cell "CODE (+0.840): text; CODE (+0.310): text".
void AppendPredictionCsvRow(std::string* out, int64_t transaction_id, const Prediction& p,
                            bool reasons);

}  // namespace vigil

#endif  // VIGIL_ENGINE_PREDICTION_CSV_H_
