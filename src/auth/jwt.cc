// The JWT adapter: the one place where OpenSSL's key and signature calls, and nlohmann::json's
// parsing of the token's header and claims, meet Vigil's Status.
//
// Verify works in the order RFC 8725 §3 asks for: size, shape, header, algorithm against the pinned
// set, signature with a key of the algorithm's type, and only then the claims, so that nothing in
// an unsigned payload is acted on.
#include "auth/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vigil::auth {
namespace {

using Json = nlohmann::json;

enum class Algorithm { kHs256, kRs256, kEs256 };
enum class KeyType { kRsa, kEc };

std::optional<Algorithm> ParseAlgorithm(std::string_view name) {
  if (name == "HS256") return Algorithm::kHs256;
  if (name == "RS256") return Algorithm::kRs256;
  if (name == "ES256") return Algorithm::kEs256;
  return std::nullopt;
}

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct OpenSslFree {  // what PEM_read_bio allocates
  void operator()(void* p) const { OPENSSL_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, EcdsaSigFree>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, ParamFree>;

// OpenSSL reports failures on a per-thread error queue. A refused token or key leaves entries
// there that would otherwise be read later as the cause of an unrelated failure on the same
// thread (SSL_get_error in the TLS server does exactly that), so each entry point removes what
// it added and nothing else.
class OpenSslErrorScope {
 public:
  OpenSslErrorScope() { ERR_set_mark(); }
  ~OpenSslErrorScope() { ERR_pop_to_mark(); }
  OpenSslErrorScope(const OpenSslErrorScope&) = delete;
  OpenSslErrorScope& operator=(const OpenSslErrorScope&) = delete;
};

// The value of a base64url character, or -1.
int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// RFC 7515 §2: base64url without padding. Refuses '=', characters outside the alphabet, a length
// no encoder produces (4k+1) and non-zero unused low bits, so that each value has exactly one
// encoding and a token cannot be altered without changing its bytes.
std::optional<std::string> DecodeBase64Url(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = Base64UrlValue(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
      acc &= (uint32_t{1} << bits) - 1;
    }
  }
  if (acc != 0) return std::nullopt;  // the bits left over must be zero
  return out;
}

// The member `key` of object `j`, or nullptr.
const Json* Find(const Json& j, const std::string& key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// ---------------------------------------------------------------------------------------------
// Keys

}  // namespace

struct JwtPublicKey {
  KeyType type;
  std::string kid;  // from the JWKS, or empty (PEM)
  PkeyPtr pkey;
};

namespace {

bool IsOnP256(EVP_PKEY* pkey) {
  char name[80];
  size_t name_len = 0;
  if (EVP_PKEY_get_group_name(pkey, name, sizeof(name), &name_len) != 1) return false;
  int nid = OBJ_sn2nid(name);
  if (nid == NID_undef) nid = EC_curve_nist2nid(name);
  return nid == NID_X9_62_prime256v1;
}

// A key of a type and strength ES256 or RS256 can use, or InvalidArgument saying what it lacks.
StatusOr<JwtPublicKey> UsableKey(PkeyPtr pkey, std::string kid, const std::string& where) {
  switch (EVP_PKEY_get_base_id(pkey.get())) {
    case EVP_PKEY_RSA: {
      // RFC 7518 §3.3 requires 2048 bits; shorter moduli are within reach of factoring.
      const int bits = EVP_PKEY_get_bits(pkey.get());
      if (bits < 2048) {
        return InvalidArgument(where + ": the RSA key has " + std::to_string(bits) +
                               " bits, fewer than 2048");
      }
      return JwtPublicKey{KeyType::kRsa, std::move(kid), std::move(pkey)};
    }
    case EVP_PKEY_EC: {
      if (!IsOnP256(pkey.get())) {
        return InvalidArgument(where + ": the EC key is not on curve P-256 (ES256 needs P-256)");
      }
      // A point off the curve would make verification meaningless (invalid-curve attacks).
      PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
      if (ctx == nullptr || EVP_PKEY_public_check(ctx.get()) != 1) {
        return InvalidArgument(where + ": the EC public key is not a valid P-256 point");
      }
      return JwtPublicKey{KeyType::kEc, std::move(kid), std::move(pkey)};
    }
    default: {
      const char* type = EVP_PKEY_get0_type_name(pkey.get());
      return InvalidArgument(where + ": a key of type '" + (type ? type : "unknown") +
                             "' is not supported (RSA or EC P-256)");
    }
  }
}

// The public keys of the "PUBLIC KEY" and "CERTIFICATE" blocks of a PEM file, in order.
StatusOr<std::vector<JwtPublicKey>> LoadPem(std::string_view text) {
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (bio == nullptr) return Internal("jwt: out of memory reading public_keys");
  std::vector<JwtPublicKey> keys;
  for (int block = 1;; ++block) {
    const std::string where = "jwt: public_keys: PEM block " + std::to_string(block);
    char* name_raw = nullptr;
    char* header_raw = nullptr;
    unsigned char* data_raw = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name_raw, &header_raw, &data_raw, &len) != 1) {
      const unsigned long err = ERR_peek_last_error();
      // No further "-----BEGIN" line: the end of the file, after at least one block.
      if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE &&
          block > 1) {
        break;
      }
      return InvalidArgument(where + " does not parse");
    }
    std::unique_ptr<char, OpenSslFree> name(name_raw);
    std::unique_ptr<char, OpenSslFree> header(header_raw);
    std::unique_ptr<unsigned char, OpenSslFree> data(data_raw);
    const std::string_view kind(name.get());
    const unsigned char* p = data.get();
    PkeyPtr pkey;
    if (kind == "PUBLIC KEY") {
      pkey.reset(d2i_PUBKEY(nullptr, &p, len));
    } else if (kind == "CERTIFICATE") {
      X509Ptr cert(d2i_X509(nullptr, &p, len));
      if (cert != nullptr) pkey.reset(X509_get_pubkey(cert.get()));
    } else {
      // A private key here is a mistake worth stopping for: it belongs to the issuer alone.
      return InvalidArgument(where + " is a '" + std::string(kind) +
                             "', not a PUBLIC KEY or CERTIFICATE");
    }
    if (pkey == nullptr || p != data.get() + len) {
      return InvalidArgument(where + " ('" + std::string(kind) + "') does not parse");
    }
    VIGIL_ASSIGN_OR_RETURN(JwtPublicKey key, UsableKey(std::move(pkey), "", where));
    keys.push_back(std::move(key));
  }
  return keys;
}

PkeyPtr PublicKeyFromParams(const char* type, OSSL_PARAM_BLD* bld) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (params == nullptr || ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return nullptr;
  }
  return PkeyPtr(pkey);
}

// The bytes of the base64url string member `name` of a JWK, or InvalidArgument.
StatusOr<std::string> JwkBytes(const Json& jwk, const char* name, const std::string& where) {
  const Json* v = Find(jwk, name);
  if (v == nullptr || !v->is_string()) {
    return InvalidArgument(where + ": '" + name + "' is missing or not a string");
  }
  std::optional<std::string> bytes = DecodeBase64Url(v->get_ref<const std::string&>());
  if (!bytes || bytes->empty()) {
    return InvalidArgument(where + ": '" + name + "' is not base64url");
  }
  return *std::move(bytes);
}

StatusOr<PkeyPtr> RsaFromJwk(const Json& jwk, const std::string& where) {
  VIGIL_ASSIGN_OR_RETURN(std::string n_bytes, JwkBytes(jwk, "n", where));
  VIGIL_ASSIGN_OR_RETURN(std::string e_bytes, JwkBytes(jwk, "e", where));
  BnPtr n(BN_bin2bn(Bytes(n_bytes), static_cast<int>(n_bytes.size()), nullptr));
  BnPtr e(BN_bin2bn(Bytes(e_bytes), static_cast<int>(e_bytes.size()), nullptr));
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (n == nullptr || e == nullptr || bld == nullptr ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return Internal(where + ": out of memory");
  }
  PkeyPtr pkey = PublicKeyFromParams("RSA", bld.get());
  if (pkey == nullptr) return InvalidArgument(where + ": not a valid RSA public key");
  return pkey;
}

StatusOr<PkeyPtr> P256FromJwk(const Json& jwk, const std::string& where) {
  VIGIL_ASSIGN_OR_RETURN(std::string x, JwkBytes(jwk, "x", where));
  VIGIL_ASSIGN_OR_RETURN(std::string y, JwkBytes(jwk, "y", where));
  // RFC 7518 §6.2.1.2: each coordinate is the full 32 bytes, leading zeros included.
  if (x.size() != 32 || y.size() != 32) {
    return InvalidArgument(where + ": 'x' and 'y' must be 32 bytes each for P-256");
  }
  const std::string point = '\x04' + x + y;  // SEC 1 uncompressed point
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (bld == nullptr ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1,
                                      0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return Internal(where + ": out of memory");
  }
  PkeyPtr pkey = PublicKeyFromParams("EC", bld.get());
  if (pkey == nullptr) return InvalidArgument(where + ": not a valid P-256 public key");
  return pkey;
}

// The optional string member `name` of a JWK: "" when absent, InvalidArgument when not a string.
StatusOr<std::string> JwkString(const Json& jwk, const char* name, const std::string& where) {
  const Json* v = Find(jwk, name);
  if (v == nullptr) return std::string();
  if (!v->is_string()) return InvalidArgument(where + ": '" + name + "' is not a string");
  return v->get<std::string>();
}

// The signing keys of a JWKS document (RFC 7517 §5) that RS256 or ES256 can use. Keys for other
// purposes or algorithms are skipped: an identity provider's JWKS often lists them side by side.
StatusOr<std::vector<JwtPublicKey>> LoadJwks(std::string_view text) {
  const Json doc = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return InvalidArgument("jwt: public_keys is neither PEM nor a JWKS JSON object");
  }
  const Json* list = Find(doc, "keys");
  if (list == nullptr || !list->is_array()) {
    return InvalidArgument("jwt: public_keys: the JWKS has no 'keys' array");
  }
  std::vector<JwtPublicKey> keys;
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& jwk = (*list)[i];
    std::string where = "jwt: public_keys: JWKS key " + std::to_string(i);
    if (!jwk.is_object()) return InvalidArgument(where + " is not an object");
    VIGIL_ASSIGN_OR_RETURN(std::string kid, JwkString(jwk, "kid", where));
    if (!kid.empty()) where += " ('" + kid + "')";
    VIGIL_ASSIGN_OR_RETURN(std::string kty, JwkString(jwk, "kty", where));
    VIGIL_ASSIGN_OR_RETURN(std::string use, JwkString(jwk, "use", where));
    VIGIL_ASSIGN_OR_RETURN(std::string alg, JwkString(jwk, "alg", where));
    if (!use.empty() && use != "sig") continue;  // an encryption key
    if (const Json* ops = Find(jwk, "key_ops"); ops != nullptr) {
      if (!ops->is_array()) return InvalidArgument(where + ": 'key_ops' is not an array");
      if (std::find(ops->begin(), ops->end(), Json("verify")) == ops->end()) continue;
    }
    PkeyPtr pkey;
    if (kty == "RSA") {
      if (!alg.empty() && alg != "RS256") continue;  // RS384, PS256, ...: not for us
      VIGIL_ASSIGN_OR_RETURN(pkey, RsaFromJwk(jwk, where));
    } else if (kty == "EC") {
      if (!alg.empty() && alg != "ES256") continue;
      VIGIL_ASSIGN_OR_RETURN(std::string crv, JwkString(jwk, "crv", where));
      if (crv != "P-256") continue;  // P-384, P-521: for ES384, ES512
      VIGIL_ASSIGN_OR_RETURN(pkey, P256FromJwk(jwk, where));
    } else {
      continue;  // "oct" (never published), "OKP" (EdDSA), or newer kinds
    }
    VIGIL_ASSIGN_OR_RETURN(JwtPublicKey key, UsableKey(std::move(pkey), std::move(kid), where));
    keys.push_back(std::move(key));
  }
  if (keys.empty()) {
    return InvalidArgument("jwt: public_keys: the JWKS has no RS256 or ES256 signing key");
  }
  return keys;
}

StatusOr<std::vector<JwtPublicKey>> LoadPublicKeys(std::string_view text) {
  const size_t start = text.find_first_not_of(" \t\r\n");
  if (start != std::string_view::npos && text[start] == '{') return LoadJwks(text);
  if (text.find("-----BEGIN ") != std::string_view::npos) return LoadPem(text);
  return InvalidArgument("jwt: public_keys is neither PEM nor a JWKS JSON object");
}

// ---------------------------------------------------------------------------------------------
// Signatures

bool VerifyHs256(std::string_view secret, std::string_view input, std::string_view signature) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), Bytes(input), input.size(),
           mac, &mac_len) == nullptr) {
    return false;
  }
  // Constant time: a comparison that stops at the first differing byte tells an attacker, one
  // byte at a time, how much of a forged MAC is right.
  return mac_len == signature.size() && CRYPTO_memcmp(mac, signature.data(), mac_len) == 0;
}

// A fresh EVP_MD_CTX per call: contexts are not shareable between threads, keys are.
bool VerifyWithKey(const JwtPublicKey& key, std::string_view input, std::string_view signature) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (ctx == nullptr ||
      EVP_DigestVerifyInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key.pkey.get()) != 1) {
    return false;
  }
  // RS256 is PKCS#1 v1.5 (RFC 7518 §3.3); OpenSSL's default, but said rather than assumed.
  if (key.type == KeyType::kRsa && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), Bytes(signature), signature.size(), Bytes(input),
                          input.size()) == 1;
}

// JWS carries an ES256 signature as R || S, 32 bytes each (RFC 7518 §3.4); OpenSSL verifies the
// DER ECDSA-Sig-Value. REQUIRES: raw.size() == 64
std::optional<std::string> Es256SignatureToDer(std::string_view raw) {
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BnPtr r(BN_bin2bn(Bytes(raw), 32, nullptr));
  BnPtr s(BN_bin2bn(Bytes(raw) + 32, 32, nullptr));
  if (sig == nullptr || r == nullptr || s == nullptr) return std::nullopt;
  ECDSA_SIG_set0(sig.get(), r.release(), s.release());  // takes both; fails only on a null
  const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return std::nullopt;
  std::string der(static_cast<size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &p) != len) return std::nullopt;
  return der;
}

// ---------------------------------------------------------------------------------------------
// Claims

Status Malformed(std::string_view why) {
  return Unauthenticated("the token is malformed: " + std::string(why));
}

// The names of the JWA signature algorithms, which a message may quote; any other `alg` is text
// the token's author chose, which the logs must not repeat.
std::string DescribeAlgorithm(std::string_view alg) {
  static constexpr std::string_view kKnown[] = {
      "none",  "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",  "ES256",
      "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA", "ES256K",
  };
  for (std::string_view known : kKnown) {
    if (alg == known) return "'" + std::string(known) + "' ";
  }
  return "";
}

StatusOr<Json> DecodeJsonObject(std::string_view segment, const char* what) {
  std::optional<std::string> text = DecodeBase64Url(segment);
  if (!text) return Malformed(std::string("the ") + what + " is not base64url");
  Json j = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Malformed(std::string("the ") + what + " is not a JSON object");
  }
  return j;
}

// A string claim or header member, or "" when absent.
StatusOr<std::string> ReadString(const Json& object, const char* name) {
  const Json* v = Find(object, name);
  if (v == nullptr) return std::string();
  if (!v->is_string()) return Malformed(std::string("'") + name + "' is not a string");
  return v->get<std::string>();
}

// I-JSON's exact integers (RFC 7493 §2.2): ample for dates, and far enough from int64's limits
// that adding a leeway cannot overflow.
constexpr int64_t kMaxNumericDate = int64_t{1} << 53;

enum class Round { kDown, kUp };

// A NumericDate claim (RFC 7519 §2: seconds, possibly fractional), or nullopt when absent. A
// fraction is rounded toward refusal (`exp` down, `nbf` and `iat` up), so it never buys validity.
StatusOr<std::optional<int64_t>> ReadNumericDate(const Json& claims, const char* name,
                                                 Round round) {
  const Json* v = Find(claims, name);
  if (v == nullptr) return std::optional<int64_t>();
  const auto out_of_range = [name] {
    return Malformed(std::string("'") + name + "' is out of range");
  };
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(kMaxNumericDate)) return out_of_range();
    return std::optional<int64_t>(static_cast<int64_t>(u));
  }
  if (v->is_number_integer()) {
    const int64_t i = v->get<int64_t>();
    if (i < -kMaxNumericDate || i > kMaxNumericDate) return out_of_range();
    return std::optional<int64_t>(i);
  }
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (!std::isfinite(d) || std::fabs(d) > static_cast<double>(kMaxNumericDate)) {
      return out_of_range();
    }
    return std::optional<int64_t>(
        static_cast<int64_t>(round == Round::kDown ? std::floor(d) : std::ceil(d)));
  }
  return Malformed(std::string("'") + name + "' is not a number");
}

// `aud`: a string or an array of strings (RFC 7519 §4.1.3).
StatusOr<std::vector<std::string>> ReadAudiences(const Json& claims) {
  const Json* v = Find(claims, "aud");
  std::vector<std::string> out;
  if (v == nullptr) return out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
    return out;
  }
  if (v->is_array()) {
    for (const Json& e : *v) {
      if (!e.is_string()) return Malformed("'aud' is not a string or an array of strings");
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  return Malformed("'aud' is not a string or an array of strings");
}

StatusOr<std::vector<std::string>> ReadRoles(const Json& claims, const std::string& path) {
  const Json* v = Find(claims, path);
  if (v == nullptr && path.find('.') != std::string::npos) {
    v = &claims;
    size_t begin = 0;
    while (v != nullptr) {
      const size_t end = std::min(path.find('.', begin), path.size());
      v = Find(*v, path.substr(begin, end - begin));
      if (end == path.size()) break;
      begin = end + 1;
    }
  }
  std::vector<std::string> roles;
  if (v == nullptr) return roles;
  if (v->is_string()) {
    roles.push_back(v->get<std::string>());
    return roles;
  }
  if (v->is_array()) {
    for (const Json& e : *v) {
      if (!e.is_string()) return Malformed("the role claim is not a string or an array of strings");
      roles.push_back(e.get<std::string>());
    }
    return roles;
  }
  return Malformed("the role claim is not a string or an array of strings");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// JwtVerifier

JwtVerifier::JwtVerifier(JwtOptions options, std::vector<JwtPublicKey> keys)
    : options_(std::move(options)), keys_(std::move(keys)) {}

JwtVerifier::~JwtVerifier() = default;

StatusOr<std::unique_ptr<JwtVerifier>> JwtVerifier::Create(JwtOptions options) {
  OpenSslErrorScope errors;
  if (options.algorithms.empty()) {
    return InvalidArgument("jwt: no algorithm is pinned (one or more of HS256, RS256, ES256)");
  }
  bool hs256 = false, rs256 = false, es256 = false;
  for (const std::string& name : options.algorithms) {
    const std::optional<Algorithm> alg = ParseAlgorithm(name);
    if (!alg) {
      return InvalidArgument("jwt: algorithm '" + name +
                             "' is not supported (one of HS256, RS256, ES256)");
    }
    hs256 |= *alg == Algorithm::kHs256;
    rs256 |= *alg == Algorithm::kRs256;
    es256 |= *alg == Algorithm::kEs256;
  }
  if (hs256 && options.hs256_secret.size() < 32) {
    return InvalidArgument("jwt: the HS256 secret has " +
                           std::to_string(options.hs256_secret.size()) + " bytes, fewer than 32");
  }
  if (options.leeway_seconds < 0 || options.leeway_seconds > 86400) {
    return InvalidArgument("jwt: leeway_seconds must be between 0 and 86400");
  }
  if (options.max_token_bytes == 0) return InvalidArgument("jwt: max_token_bytes must be > 0");
  if (options.role_claim.empty()) return InvalidArgument("jwt: role_claim is empty");

  std::vector<JwtPublicKey> keys;
  if (!options.public_keys.empty()) {
    // Parsed even when only HS256 is pinned: a broken file is a mistake to report now, not on
    // the day RS256 is pinned.
    VIGIL_ASSIGN_OR_RETURN(keys, LoadPublicKeys(options.public_keys));
  }
  const auto has = [&keys](KeyType type) {
    return std::any_of(keys.begin(), keys.end(),
                       [type](const JwtPublicKey& k) { return k.type == type; });
  };
  if (rs256 && !has(KeyType::kRsa)) {
    return InvalidArgument("jwt: RS256 is pinned but public_keys has no RSA key");
  }
  if (es256 && !has(KeyType::kEc)) {
    return InvalidArgument("jwt: ES256 is pinned but public_keys has no P-256 EC key");
  }
  return std::unique_ptr<JwtVerifier>(new JwtVerifier(std::move(options), std::move(keys)));
}

StatusOr<JwtClaims> JwtVerifier::Verify(std::string_view token, int64_t now_unix_seconds) const {
  // Before anything else, so that a huge token costs no decoding or parsing.
  if (token.size() > options_.max_token_bytes) {
    return Unauthenticated("the token is too large (" + std::to_string(token.size()) +
                           " bytes, more than " + std::to_string(options_.max_token_bytes) + ")");
  }
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Malformed("it does not have three segments");
  }
  const std::string_view signing_input = token.substr(0, dot2);
  const std::string_view header_segment = token.substr(0, dot1);
  const std::string_view payload_segment = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_segment = token.substr(dot2 + 1);

  OpenSslErrorScope errors;
  try {
    // The header: which algorithm, which key.
    VIGIL_ASSIGN_OR_RETURN(const Json header, DecodeJsonObject(header_segment, "header"));
    const Json* alg_member = Find(header, "alg");
    if (alg_member == nullptr || !alg_member->is_string()) {
      return Malformed("the header has no 'alg' string");
    }
    const std::string& alg_name = alg_member->get_ref<const std::string&>();
    const std::optional<Algorithm> alg = ParseAlgorithm(alg_name);
    // `none` never parses, so it is refused whatever the configuration says.
    if (!alg || std::find(options_.algorithms.begin(), options_.algorithms.end(), alg_name) ==
                    options_.algorithms.end()) {
      return Unauthenticated("the token's algorithm " + DescribeAlgorithm(alg_name) +
                             "is not accepted");
    }
    if (header.contains("crit")) {
      return Unauthenticated("the token has a 'crit' header, which is not supported");
    }
    VIGIL_ASSIGN_OR_RETURN(std::string kid, ReadString(header, "kid"));

    // The signature, with keys of the algorithm's type only.
    std::optional<std::string> signature = DecodeBase64Url(signature_segment);
    if (!signature) return Malformed("the signature is not base64url");
    bool verified = false;
    if (*alg == Algorithm::kHs256) {
      verified = VerifyHs256(options_.hs256_secret, signing_input, *signature);
    } else {
      const KeyType type = *alg == Algorithm::kRs256 ? KeyType::kRsa : KeyType::kEc;
      if (*alg == Algorithm::kEs256) {
        // Also refuses a DER signature, which some signers emit by mistake.
        if (signature->size() != 64) {
          return Unauthenticated("the token's ES256 signature is not 64 bytes (R || S)");
        }
        std::optional<std::string> der = Es256SignatureToDer(*signature);
        if (!der) return Unauthenticated("the token's signature does not verify");  // no memory
        signature = std::move(der);
      }
      // With a `kid`, the keys that carry it; failing those, the keys without one (from PEM).
      // Without, every key of the type: one of them signed it, or none did.
      const bool kid_known =
          !kid.empty() && std::any_of(keys_.begin(), keys_.end(), [&](const JwtPublicKey& k) {
            return k.type == type && k.kid == kid;
          });
      bool tried = false;
      for (const JwtPublicKey& key : keys_) {
        if (key.type != type) continue;
        if (!kid.empty() && key.kid != (kid_known ? kid : std::string())) continue;
        tried = true;
        if (VerifyWithKey(key, signing_input, *signature)) {
          verified = true;
          break;
        }
      }
      if (!tried) return Unauthenticated("the token's key id matches no key");
    }
    if (!verified) return Unauthenticated("the token's signature does not verify");

    // The claims, now that they are known to come from the issuer.
    VIGIL_ASSIGN_OR_RETURN(const Json payload, DecodeJsonObject(payload_segment, "payload"));
    JwtClaims claims;
    claims.algorithm = alg_name;
    claims.key_id = std::move(kid);
    const int64_t leeway = options_.leeway_seconds;
    VIGIL_ASSIGN_OR_RETURN(std::optional<int64_t> exp,
                           ReadNumericDate(payload, "exp", Round::kDown));
    VIGIL_ASSIGN_OR_RETURN(std::optional<int64_t> nbf, ReadNumericDate(payload, "nbf", Round::kUp));
    VIGIL_ASSIGN_OR_RETURN(std::optional<int64_t> iat, ReadNumericDate(payload, "iat", Round::kUp));
    // A token without an expiry is a credential forever; we do not accept those.
    if (!exp) return Unauthenticated("the token has no expiry time ('exp')");
    // Dates are bounded by kMaxNumericDate and the leeway by a day, so these sums cannot overflow.
    if (*exp + leeway < now_unix_seconds) return Unauthenticated("the token has expired");
    if (nbf && *nbf - leeway > now_unix_seconds) {
      return Unauthenticated("the token is not yet valid");
    }
    if (iat && *iat - leeway > now_unix_seconds) {
      return Unauthenticated("the token's issue time is in the future");
    }
    claims.expires_at = *exp;
    claims.not_before = nbf.value_or(0);
    claims.issued_at = iat.value_or(0);

    VIGIL_ASSIGN_OR_RETURN(claims.issuer, ReadString(payload, "iss"));
    if (!options_.issuer.empty() && claims.issuer != options_.issuer) {
      return Unauthenticated("the token's issuer is not accepted");
    }
    VIGIL_ASSIGN_OR_RETURN(std::vector<std::string> audiences, ReadAudiences(payload));
    if (!options_.audiences.empty() &&
        std::none_of(audiences.begin(), audiences.end(), [this](const std::string& aud) {
          return std::find(options_.audiences.begin(), options_.audiences.end(), aud) !=
                 options_.audiences.end();
        })) {
      return Unauthenticated("the token's audience is not accepted");
    }
    VIGIL_ASSIGN_OR_RETURN(claims.subject, ReadString(payload, "sub"));
    VIGIL_ASSIGN_OR_RETURN(claims.id, ReadString(payload, "jti"));
    VIGIL_ASSIGN_OR_RETURN(claims.roles, ReadRoles(payload, options_.role_claim));
    return claims;
  } catch (const Json::exception&) {
    // Not expected (every access above checks the type first); kept so that none escapes.
    return Malformed("the JSON cannot be read");
  }
}

}  // namespace vigil::auth
