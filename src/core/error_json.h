// The one builder of error bodies (DESIGN.md §3), for every front end:
//   {"error": {"code": "invalid_argument", "message": "...", "details": [{"field", "problem"}]}}
// A Status becomes one through its code's name (StatusCodeName); the HTTP status for it is
// HttpStatusFor (vigil/status.h), in one place.
#ifndef VIGIL_CORE_ERROR_JSON_H_
#define VIGIL_CORE_ERROR_JSON_H_

#include <string>
#include <string_view>
#include <vector>

#include "core/transaction_json.h"
#include "vigil/status.h"

namespace vigil {

std::string ErrorJson(std::string_view code, std::string_view message,
                      const std::vector<FieldProblem>& details = {});

// REQUIRES: !status.ok()
std::string ErrorJson(const Status& status, const std::vector<FieldProblem>& details = {});

}  // namespace vigil

#endif  // VIGIL_CORE_ERROR_JSON_H_
