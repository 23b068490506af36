// For tests and benchmarks: an issuer of JSON Web Tokens in a few lines, to feed JwtVerifier
// (auth/jwt.h) the tokens an identity provider would send. Keys (RSA, EC), their public PEM,
// base64url, and signatures for HS256, RS256 and ES256.
//
// The header and payload are signed as given, and `alg` says only how to sign: a test can send a
// token whose header claims another algorithm than the one it was signed with. Failures return
// empty strings or null keys; callers assert on them. No gtest here, so that benchmarks can use it.
#ifndef VIGIL_AUTH_JWT_SIGNER_FOR_TEST_H_
#define VIGIL_AUTH_JWT_SIGNER_FOR_TEST_H_

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace vigil::auth {

struct TestKeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
// A key pair made for a test (the private half signs; PublicKeyPem gives the verifier's half).
using TestKeyPtr = std::unique_ptr<EVP_PKEY, TestKeyFree>;

// RFC 4648 §5, the alphabet JWS uses.
inline constexpr std::string_view kBase64UrlAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// `bytes` in base64url without padding, as JWS writes every segment.
inline std::string EncodeBase64Url(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : bytes) {
    acc = (acc << 8) | static_cast<unsigned char>(c);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kBase64UrlAlphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kBase64UrlAlphabet[(acc << (6 - bits)) & 63];
  return out;
}

// A new RSA key of `bits` bits (slow: about 0.1 s for 2048 bits), or null.
inline TestKeyPtr GenerateRsaKey(size_t bits) {
  return TestKeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
}

// A new EC key on `curve` ("P-256", "P-384", ...), or null.
inline TestKeyPtr GenerateEcKey(const char* curve) {
  return TestKeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
}

// The public half of `key` as a PEM "PUBLIC KEY" block (JwtOptions::public_keys takes it), or "".
inline std::string PublicKeyPem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (bio == nullptr || key == nullptr || PEM_write_bio_PUBKEY(bio.get(), key) != 1) return "";
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

// How an ES256 signature is written: JWS's R || S (32 bytes each), or the DER that OpenSSL
// makes (a signer's common mistake, which verifiers must refuse).
enum class EcdsaEncoding { kJose, kDer };

// The signature over `signing_input` (the token's "header.payload"), raw bytes, or "" when it
// cannot be made. `alg` is how to sign: "HS256" with `hs256_secret` (`key` unused), "RS256" with
// an RSA `key`, "ES256" with a P-256 `key` (`ecdsa` says how it is written).
inline std::string JwtSignature(std::string_view alg, std::string_view signing_input, EVP_PKEY* key,
                                std::string_view hs256_secret,
                                EcdsaEncoding ecdsa = EcdsaEncoding::kJose) {
  const auto* in = reinterpret_cast<const unsigned char*>(signing_input.data());
  if (alg == "HS256") {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), hs256_secret.data(), static_cast<int>(hs256_secret.size()), in,
             signing_input.size(), mac, &len) == nullptr) {
      return "";
    }
    return std::string(reinterpret_cast<const char*>(mac), len);
  }
  const int want = alg == "RS256" ? EVP_PKEY_RSA : alg == "ES256" ? EVP_PKEY_EC : EVP_PKEY_NONE;
  if (want == EVP_PKEY_NONE || key == nullptr || EVP_PKEY_get_base_id(key) != want) return "";
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  size_t len = 0;
  if (ctx == nullptr || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, in, signing_input.size()) != 1) {
    return "";
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                     signing_input.size()) != 1) {
    return "";
  }
  sig.resize(len);
  if (want != EVP_PKEY_EC || ecdsa == EcdsaEncoding::kDer) return sig;
  const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> der(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size())), &ECDSA_SIG_free);
  if (der == nullptr) return "";
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(der.get(), &r, &s);
  std::string raw(64, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(r, out, 32) != 32 || BN_bn2binpad(s, out + 32, 32) != 32) return "";
  return raw;
}

// What a token's signature covers: the encoded header and payload, joined by '.'.
inline std::string JwtSigningInput(std::string_view header_json, std::string_view payload_json) {
  return EncodeBase64Url(header_json) + "." + EncodeBase64Url(payload_json);
}

// A token in compact serialization, "header.payload.signature", with the header and payload
// texts as given and signed as JwtSignature does; "" when the signature cannot be made.
inline std::string SignJwt(std::string_view alg, std::string_view header_json,
                           std::string_view payload_json, EVP_PKEY* key_or_null,
                           std::string_view hs256_secret,
                           EcdsaEncoding ecdsa = EcdsaEncoding::kJose) {
  const std::string input = JwtSigningInput(header_json, payload_json);
  const std::string sig = JwtSignature(alg, input, key_or_null, hs256_secret, ecdsa);
  if (sig.empty()) return "";
  return input + "." + EncodeBase64Url(sig);
}

}  // namespace vigil::auth

#endif  // VIGIL_AUTH_JWT_SIGNER_FOR_TEST_H_
