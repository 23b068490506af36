// For golden tests of Vigil's binary formats: bytes as lowercase hex, two digits a byte.
#ifndef VIGIL_CORE_HEX_FOR_TEST_H_
#define VIGIL_CORE_HEX_FOR_TEST_H_

#include <string>
#include <string_view>

namespace vigil {

inline std::string HexOf(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * bytes.size());
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    hex += kDigits[b >> 4];
    hex += kDigits[b & 15];
  }
  return hex;
}

}  // namespace vigil

#endif  // VIGIL_CORE_HEX_FOR_TEST_H_
