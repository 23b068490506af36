#include "auth/digest.h"

#include <openssl/evp.h>
#include <sodium.h>

namespace vigil::auth {
namespace {

// Each thread's digest context, set up once: fetching the algorithm costs more than hashing a
// key.
struct Sha256Context {
  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Sha256Context() {
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
  }
};

}  // namespace

Digest DigestOf(std::string_view bytes) {
  static_assert(sizeof(Digest) == crypto_hash_sha256_BYTES);
  thread_local Sha256Context c;
  Digest d;
  unsigned int len = 0;
  if (c.md != nullptr && c.ctx != nullptr && EVP_DigestInit_ex2(c.ctx, c.md, nullptr) == 1 &&
      EVP_DigestUpdate(c.ctx, bytes.data(), bytes.size()) == 1 &&
      EVP_DigestFinal_ex(c.ctx, d.data(), &len) == 1 && len == d.size()) {
    return d;
  }
  crypto_hash_sha256(d.data(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return d;
}

}  // namespace vigil::auth
