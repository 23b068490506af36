// The one 64-bit FNV-1a (Fowler, Noll, Vo) in Vigil: stable across builds, machines and releases,
// so its values may be stored (a model's data fingerprint) and compared later.
#ifndef VIGIL_CORE_HASH_H_
#define VIGIL_CORE_HASH_H_

#include <cstdint>
#include <string_view>

namespace vigil {

// The published parameters (http://www.isthe.com/chongo/tech/comp/fnv/). The offset basis has 20
// digits: a copy missing its last digit (1469598103934665603) is a different, unpublished hash.
inline constexpr uint64_t kFnv1a64OffsetBasis = 14695981039346656037ull;
inline constexpr uint64_t kFnv1a64Prime = 1099511628211ull;

// FNV-1a of `bytes`, or, given the state a previous call returned, its continuation: hashing in
// pieces equals hashing the concatenation, Fnv1a64(b, Fnv1a64(a)) == Fnv1a64(a + b).
constexpr uint64_t Fnv1a64(std::string_view bytes, uint64_t state = kFnv1a64OffsetBasis) {
  for (char c : bytes) {
    state ^= static_cast<unsigned char>(c);
    state *= kFnv1a64Prime;
  }
  return state;
}

}  // namespace vigil

#endif  // VIGIL_CORE_HASH_H_
