#include "core/error_json.h"

#include "core/json_text.h"

namespace vigil {

std::string ErrorJson(std::string_view code, std::string_view message,
                      const std::vector<FieldProblem>& details) {
  std::string b = "{\"error\":{\"code\":";
  AppendJsonString(&b, code);
  b += ",\"message\":";
  AppendJsonString(&b, message);
  b += ",\"details\":[";
  for (size_t i = 0; i < details.size(); ++i) {
    if (i > 0) b += ',';
    b += "{\"field\":";
    AppendJsonString(&b, details[i].field);
    b += ",\"problem\":";
    AppendJsonString(&b, details[i].problem);
    b += '}';
  }
  return b + "]}}";
}

std::string ErrorJson(const Status& status, const std::vector<FieldProblem>& details) {
  return ErrorJson(StatusCodeName(status.code()), status.message(), details);
}

}  // namespace vigil
