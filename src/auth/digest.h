// A SHA-256 as a hash-map key: a secret's or a token's, without an allocation. Its first 8
// bytes, uniformly random, are its hash.
#ifndef VIGIL_AUTH_DIGEST_H_
#define VIGIL_AUTH_DIGEST_H_

#include <sodium.h>

#include <array>
#include <cstring>
#include <string_view>

namespace vigil::auth {

using Digest = std::array<unsigned char, crypto_hash_sha256_BYTES>;

struct DigestHash {
  size_t operator()(const Digest& d) const {
    size_t h = 0;
    std::memcpy(&h, d.data(), sizeof h);
    return h;
  }
};

inline Digest DigestOf(std::string_view bytes) {
  Digest d;
  crypto_hash_sha256(d.data(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return d;
}

}  // namespace vigil::auth

#endif  // VIGIL_AUTH_DIGEST_H_
