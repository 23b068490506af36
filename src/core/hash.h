// FNV-1a, 64 bits (http://www.isthe.com/chongo/tech/comp/fnv/): the one non-cryptographic hash of
// bytes used for ids, keys, fingerprints and versions.
#ifndef VIGIL_CORE_HASH_H_
#define VIGIL_CORE_HASH_H_

#include <cstdint>
#include <string_view>

namespace vigil {

inline constexpr uint64_t kFnv1a64Offset = 14695981039346656037ULL;
inline constexpr uint64_t kFnv1a64Prime = 1099511628211ULL;

constexpr uint64_t Fnv1a64(std::string_view bytes, uint64_t h = kFnv1a64Offset) {
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= kFnv1a64Prime;
  }
  return h;
}

}  // namespace vigil

#endif  // VIGIL_CORE_HASH_H_
