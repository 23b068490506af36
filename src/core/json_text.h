// Writing JSON text by hand on the serving path, where building a DOM would cost more than the
// rest of the reply.
#ifndef VIGIL_CORE_JSON_TEXT_H_
#define VIGIL_CORE_JSON_TEXT_H_

#include <string>
#include <string_view>

namespace vigil {

// Appends `s` as a JSON string: quoted, with ", \ and control characters escaped. Other bytes
// (UTF-8 included) are copied as they are.
void AppendJsonString(std::string* out, std::string_view s);

// Appends the shortest number that reads back as `v`, or null when `v` is not finite.
void AppendJsonNumber(std::string* out, double v);
// The shortest number that reads back as the float `v` (0.1f is "0.1", not 0.10000000149...).
void AppendJsonNumber(std::string* out, float v);

}  // namespace vigil

#endif  // VIGIL_CORE_JSON_TEXT_H_
