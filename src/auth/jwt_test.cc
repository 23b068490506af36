#include "auth/jwt.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "auth/jwt_signer_for_test.h"

namespace vigil::auth {
namespace {

using Json = nlohmann::json;

constexpr int64_t kNow = 1'700'000'000;
constexpr char kSecret[] = "0123456789abcdef0123456789abcdef";  // 32 bytes
constexpr char kIssuer[] = "https://issuer.example";

struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

// ---------------------------------------------------------------------------------------------
// An issuer (auth/jwt_signer_for_test.h), with what only these tests need: private-key and
// certificate PEM, JWKS forms, and tokens signed by any function, a wrong one included.

std::string B64(std::string_view bytes) { return EncodeBase64Url(bytes); }

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string PublicPem(EVP_PKEY* key) {
  std::string pem = PublicKeyPem(key);
  EXPECT_FALSE(pem.empty());
  return pem;
}

std::string PrivatePem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr), 1);
  return BioText(bio.get());
}

// A self-signed certificate for `key`, as an identity provider publishes its signing key.
std::string CertificatePem(EVP_PKEY* key) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("vigil test"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  EXPECT_GT(X509_sign(cert.get(), key, EVP_sha256()), 0);
  BioPtr bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_X509(bio.get(), cert.get()), 1);
  return BioText(bio.get());
}

// A big-number parameter of `key`, big-endian, left-padded to `width` bytes when width > 0.
std::string BnParam(EVP_PKEY* key, const char* param, int width = 0) {
  BIGNUM* bn = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(key, param, &bn), 1) << param;
  std::string out(width > 0 ? width : BN_num_bytes(bn), '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  if (width > 0) {
    BN_bn2binpad(bn, p, width);
  } else {
    BN_bn2bin(bn, p);
  }
  BN_free(bn);
  return out;
}

Json RsaJwk(EVP_PKEY* key, const std::string& kid = "") {
  Json jwk = {{"kty", "RSA"},
              {"n", B64(BnParam(key, OSSL_PKEY_PARAM_RSA_N))},
              {"e", B64(BnParam(key, OSSL_PKEY_PARAM_RSA_E))}};
  if (!kid.empty()) jwk["kid"] = kid;
  return jwk;
}

Json EcJwk(EVP_PKEY* key, const std::string& kid = "") {
  Json jwk = {{"kty", "EC"},
              {"crv", "P-256"},
              {"x", B64(BnParam(key, OSSL_PKEY_PARAM_EC_PUB_X, 32))},
              {"y", B64(BnParam(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32))}};
  if (!kid.empty()) jwk["kid"] = kid;
  return jwk;
}

std::string Jwks(const std::vector<Json>& keys) { return Json{{"keys", keys}}.dump(); }

// The signature over a token's signing input.
using Signer = std::function<std::string(std::string_view input)>;

Signer Hs256Signer(std::string secret) {
  return [secret = std::move(secret)](std::string_view input) {
    std::string mac = JwtSignature("HS256", input, nullptr, secret);
    EXPECT_FALSE(mac.empty());
    return mac;
  };
}

// RS256 or ES256, by the key's type. ES256 signatures are converted from OpenSSL's DER to the
// R || S that JWS uses, unless `der` (a signer's common mistake, which verifiers must refuse).
Signer KeySigner(EVP_PKEY* key, bool der = false) {
  return [key, der](std::string_view input) {
    const char* alg = EVP_PKEY_get_base_id(key) == EVP_PKEY_EC ? "ES256" : "RS256";
    std::string sig =
        JwtSignature(alg, input, key, "", der ? EcdsaEncoding::kDer : EcdsaEncoding::kJose);
    EXPECT_FALSE(sig.empty());
    return sig;
  };
}

// A token from the header and payload texts, as given.
std::string TokenOf(const std::string& header, const std::string& payload, const Signer& sign) {
  const std::string input = JwtSigningInput(header, payload);
  return input + "." + B64(sign(input));
}

std::string Token(const Json& header, const Json& payload, const Signer& sign) {
  return TokenOf(header.dump(), payload.dump(), sign);
}

// Claims valid at kNow.
Json GoodClaims() {
  return {{"sub", "user-1"},  {"iss", kIssuer},   {"aud", "vigil"},      {"exp", kNow + 300},
          {"nbf", kNow - 10}, {"iat", kNow - 10}, {"jti", "token-id-1"}, {"role", "scorer"}};
}

Json Without(Json j, const std::string& key) {
  j.erase(key);
  return j;
}

Json With(Json j, const std::string& key, Json value) {
  j[key] = std::move(value);
  return j;
}

std::string Hs256Token(const Json& claims) {
  return Token({{"alg", "HS256"}, {"typ", "JWT"}}, claims, Hs256Signer(kSecret));
}

std::vector<std::string> Split(const std::string& token) {
  std::vector<std::string> parts(1);
  for (char c : token) {
    if (c == '.') {
      parts.emplace_back();
    } else {
      parts.back() += c;
    }
  }
  return parts;
}

// Keys are generated once: RSA key generation takes a while.
struct TestKeys {
  TestKeyPtr rsa = GenerateRsaKey(2048);
  TestKeyPtr rsa2 = GenerateRsaKey(2048);
  TestKeyPtr ec = GenerateEcKey("P-256");
  TestKeyPtr ec2 = GenerateEcKey("P-256");
};
const TestKeys& Keys() {
  static const TestKeys keys;
  return keys;
}

JwtOptions Hs256Options() {
  JwtOptions options;
  options.algorithms = {"HS256"};
  options.hs256_secret = kSecret;
  return options;
}

JwtOptions KeyOptions(std::vector<std::string> algorithms, std::string public_keys) {
  JwtOptions options;
  options.algorithms = std::move(algorithms);
  options.public_keys = std::move(public_keys);
  return options;
}

std::unique_ptr<JwtVerifier> Make(JwtOptions options) {
  StatusOr<std::unique_ptr<JwtVerifier>> verifier = JwtVerifier::Create(std::move(options));
  if (!verifier.ok()) {
    ADD_FAILURE() << verifier.status().ToString();
    return nullptr;
  }
  return std::move(verifier).value();
}

// Create's refusal, with a message that contains `why`.
void ExpectCreateFails(JwtOptions options, std::string_view why) {
  StatusOr<std::unique_ptr<JwtVerifier>> verifier = JwtVerifier::Create(std::move(options));
  ASSERT_FALSE(verifier.ok()) << "expected a failure naming: " << why;
  EXPECT_EQ(verifier.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(verifier.status().message().find(why), std::string::npos)
      << verifier.status().message() << "\n  does not say: " << why;
}

// Whether `message` quotes any 12 consecutive characters of `token` (or all of a shorter one).
bool QuotesToken(const std::string& message, const std::string& token) {
  constexpr size_t kWindow = 12;
  if (token.size() < kWindow) return !token.empty() && message.find(token) != std::string::npos;
  for (size_t i = 0; i + kWindow <= token.size(); ++i) {
    if (message.find(token.substr(i, kWindow)) != std::string::npos) return true;
  }
  return false;
}

StatusOr<JwtClaims> Accept(const JwtVerifier* verifier, const std::string& token,
                           int64_t now = kNow) {
  if (verifier == nullptr) return Internal("no verifier");
  StatusOr<JwtClaims> claims = verifier->Verify(token, now);
  EXPECT_TRUE(claims.ok()) << claims.status().ToString();
  return claims;
}

// What every refusal must be: Unauthenticated, naming `why`, quoting no part of the token.
void ExpectRejected(const JwtVerifier* verifier, const std::string& token, std::string_view why,
                    int64_t now = kNow) {
  ASSERT_NE(verifier, nullptr);
  StatusOr<JwtClaims> claims = verifier->Verify(token, now);
  ASSERT_FALSE(claims.ok()) << "accepted; expected a refusal naming: " << why;
  EXPECT_EQ(claims.status().code(), StatusCode::kUnauthenticated) << claims.status().ToString();
  EXPECT_NE(claims.status().message().find(why), std::string::npos)
      << claims.status().message() << "\n  does not say: " << why;
  EXPECT_FALSE(QuotesToken(claims.status().message(), token)) << claims.status().message();
}

// ---------------------------------------------------------------------------------------------
// Create

TEST(JwtCreateTest, RefusesNoOrUnknownAlgorithms) {
  JwtOptions options = Hs256Options();
  options.algorithms = {};
  ExpectCreateFails(options, "no algorithm is pinned");
  options.algorithms = {"HS256", "HS512"};
  ExpectCreateFails(options, "'HS512' is not supported");
  options.algorithms = {"none"};
  ExpectCreateFails(options, "'none' is not supported");
  options.algorithms = {"hs256"};  // names are case-sensitive (RFC 7518 §3.1)
  ExpectCreateFails(options, "'hs256' is not supported");
}

TEST(JwtCreateTest, RefusesAnHs256SecretShorterThan32Bytes) {
  JwtOptions options = Hs256Options();
  options.hs256_secret = std::string(31, 'k');
  ExpectCreateFails(options, "31 bytes, fewer than 32");
  options.hs256_secret = "";
  ExpectCreateFails(options, "0 bytes, fewer than 32");
  options.hs256_secret = std::string(32, 'k');
  EXPECT_NE(Make(options), nullptr);
}

TEST(JwtCreateTest, RefusesAPinnedAlgorithmWithoutAKeyOfItsType) {
  ExpectCreateFails(KeyOptions({"RS256"}, ""), "RS256 is pinned but public_keys has no RSA key");
  ExpectCreateFails(KeyOptions({"RS256"}, PublicPem(Keys().ec.get())), "no RSA key");
  ExpectCreateFails(KeyOptions({"ES256"}, PublicPem(Keys().rsa.get())), "no P-256 EC key");
  ExpectCreateFails(KeyOptions({"ES256"}, Jwks({RsaJwk(Keys().rsa.get(), "r")})),
                    "no P-256 EC key");
  EXPECT_NE(Make(KeyOptions({"RS256", "ES256"},
                            PublicPem(Keys().rsa.get()) + PublicPem(Keys().ec.get()))),
            nullptr);
}

TEST(JwtCreateTest, RefusesKeyFilesThatDoNotParse) {
  ExpectCreateFails(KeyOptions({"RS256"}, "not a key at all"), "neither PEM nor a JWKS");
  ExpectCreateFails(KeyOptions({"RS256"}, "{\"keys\": [ "), "neither PEM nor a JWKS");
  ExpectCreateFails(KeyOptions({"RS256"}, "{\"kty\": \"RSA\"}"), "no 'keys' array");
  ExpectCreateFails(
      KeyOptions({"RS256"}, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
      "PEM block 1 ('PUBLIC KEY') does not parse");
  ExpectCreateFails(
      KeyOptions({"RS256"}, PublicPem(Keys().rsa.get()) + "-----BEGIN PUBLIC KEY-----\nMIIB\n"),
      "PEM block 2 does not parse");
  // The issuer's private key pasted in by mistake is refused, not used.
  ExpectCreateFails(KeyOptions({"RS256"}, PrivatePem(Keys().rsa.get())),
                    "is a 'PRIVATE KEY', not a PUBLIC KEY or CERTIFICATE");

  Json no_n = RsaJwk(Keys().rsa.get(), "r");
  no_n.erase("n");
  ExpectCreateFails(KeyOptions({"RS256"}, Jwks({no_n})), "JWKS key 0 ('r'): 'n' is missing");
  Json padded = RsaJwk(Keys().rsa.get());
  padded["e"] = "AQAB==";
  ExpectCreateFails(KeyOptions({"RS256"}, Jwks({padded})), "'e' is not base64url");
  Json short_x = EcJwk(Keys().ec.get());
  short_x["x"] = B64(std::string(31, '\x01'));
  ExpectCreateFails(KeyOptions({"ES256"}, Jwks({short_x})), "32 bytes each");
  Json off_curve = EcJwk(Keys().ec.get());
  off_curve["y"] = B64(std::string(32, '\x01'));
  ExpectCreateFails(KeyOptions({"ES256"}, Jwks({off_curve})), "not a valid P-256");
}

TEST(JwtCreateTest, RefusesRsaKeysShorterThan2048Bits) {
  TestKeyPtr weak = GenerateRsaKey(1024);
  ASSERT_NE(weak, nullptr);
  ExpectCreateFails(KeyOptions({"RS256"}, PublicPem(weak.get())),
                    "the RSA key has 1024 bits, fewer than 2048");
  ExpectCreateFails(KeyOptions({"RS256"}, Jwks({RsaJwk(weak.get(), "weak")})),
                    "the RSA key has 1024 bits");
  // Among good keys too: a weak key is a configuration error, not a key to skip quietly.
  ExpectCreateFails(KeyOptions({"RS256"}, PublicPem(Keys().rsa.get()) + PublicPem(weak.get())),
                    "PEM block 2: the RSA key has 1024 bits");
}

TEST(JwtCreateTest, RefusesEcKeysOffP256) {
  TestKeyPtr p384 = GenerateEcKey("P-384");
  ASSERT_NE(p384, nullptr);
  ExpectCreateFails(KeyOptions({"ES256"}, PublicPem(p384.get())), "not on curve P-256");
  // In a JWKS a P-384 key is some other algorithm's, and skipped.
  Json jwk = {{"kty", "EC"},
              {"crv", "P-384"},
              {"x", B64(BnParam(p384.get(), OSSL_PKEY_PARAM_EC_PUB_X, 48))},
              {"y", B64(BnParam(p384.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 48))}};
  ExpectCreateFails(KeyOptions({"ES256"}, Jwks({jwk})), "no RS256 or ES256 signing key");
}

TEST(JwtCreateTest, RefusesOutOfRangeOptions) {
  JwtOptions options = Hs256Options();
  options.leeway_seconds = -1;
  ExpectCreateFails(options, "leeway_seconds");
  options = Hs256Options();
  options.max_token_bytes = 0;
  ExpectCreateFails(options, "max_token_bytes");
  options = Hs256Options();
  options.role_claim = "";
  ExpectCreateFails(options, "role_claim is empty");
}

TEST(JwtCreateTest, JwksSkipsKeysThatAreNotForRs256OrEs256Signatures) {
  const TestKeys& keys = Keys();
  Json enc = RsaJwk(keys.rsa.get(), "enc");
  enc["use"] = "enc";
  Json rs384 = RsaJwk(keys.rsa.get(), "rs384");
  rs384["alg"] = "RS384";
  Json wrap_only = RsaJwk(keys.rsa.get(), "wrap");
  wrap_only["key_ops"] = {"wrapKey"};
  const Json okp = {
      {"kty", "OKP"}, {"crv", "Ed25519"}, {"x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}};
  ExpectCreateFails(KeyOptions({"RS256"}, Jwks({enc, rs384, wrap_only, okp})),
                    "no RS256 or ES256 signing key");

  Json sig = RsaJwk(keys.rsa2.get(), "sig");
  sig["use"] = "sig";
  sig["alg"] = "RS256";
  auto verifier = Make(KeyOptions({"RS256"}, Jwks({enc, rs384, wrap_only, okp, sig})));
  EXPECT_TRUE(Accept(verifier.get(), Token({{"alg", "RS256"}, {"kid", "sig"}}, GoodClaims(),
                                           KeySigner(keys.rsa2.get())))
                  .ok());
  // The skipped keys verify nothing, not even their own signatures.
  for (const char* kid : {"enc", "rs384", "wrap"}) {
    ExpectRejected(verifier.get(),
                   Token({{"alg", "RS256"}, {"kid", kid}}, GoodClaims(), KeySigner(keys.rsa.get())),
                   "the token's key id matches no key");
  }
}

// ---------------------------------------------------------------------------------------------
// Verify: good tokens

TEST(JwtVerifyTest, AcceptsHs256AndReturnsItsClaims) {
  auto verifier = Make(Hs256Options());
  StatusOr<JwtClaims> claims = Accept(
      verifier.get(), Token({{"alg", "HS256"}, {"kid", "k1"}}, GoodClaims(), Hs256Signer(kSecret)));
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->subject, "user-1");
  EXPECT_EQ(claims->issuer, kIssuer);
  EXPECT_EQ(claims->id, "token-id-1");
  EXPECT_EQ(claims->algorithm, "HS256");
  EXPECT_EQ(claims->key_id, "k1");
  EXPECT_EQ(claims->roles, std::vector<std::string>{"scorer"});
  EXPECT_EQ(claims->expires_at, kNow + 300);
  EXPECT_EQ(claims->not_before, kNow - 10);
  EXPECT_EQ(claims->issued_at, kNow - 10);

  // Optional claims absent: empty strings and zero dates, not errors.
  claims = Accept(verifier.get(), Hs256Token({{"exp", kNow + 1}}));
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->subject, "");
  EXPECT_EQ(claims->key_id, "");
  EXPECT_EQ(claims->not_before, 0);
  EXPECT_EQ(claims->issued_at, 0);
  EXPECT_TRUE(claims->roles.empty());
}

TEST(JwtVerifyTest, AcceptsRs256WithAPemKey) {
  const TestKeys& keys = Keys();
  auto verifier = Make(KeyOptions({"RS256"}, PublicPem(keys.rsa.get())));
  const Signer sign = KeySigner(keys.rsa.get());
  StatusOr<JwtClaims> claims =
      Accept(verifier.get(), Token({{"alg", "RS256"}}, GoodClaims(), sign));
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->algorithm, "RS256");
  EXPECT_EQ(claims->subject, "user-1");
  // PEM keys have no kid, so a token's kid selects nothing away.
  claims = Accept(verifier.get(), Token({{"alg", "RS256"}, {"kid", "any"}}, GoodClaims(), sign));
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->key_id, "any");
  // Another key's signature does not verify.
  ExpectRejected(verifier.get(),
                 Token({{"alg", "RS256"}}, GoodClaims(), KeySigner(keys.rsa2.get())),
                 "the token's signature does not verify");
}

TEST(JwtVerifyTest, AcceptsRs256WithCertificatesAndSeveralPemBlocks) {
  const TestKeys& keys = Keys();
  auto verifier = Make(
      KeyOptions({"RS256"}, CertificatePem(keys.rsa2.get()) + "\n" + PublicPem(keys.rsa.get())));
  EXPECT_TRUE(
      Accept(verifier.get(), Token({{"alg", "RS256"}}, GoodClaims(), KeySigner(keys.rsa.get())))
          .ok());
  EXPECT_TRUE(
      Accept(verifier.get(), Token({{"alg", "RS256"}}, GoodClaims(), KeySigner(keys.rsa2.get())))
          .ok());
}

TEST(JwtVerifyTest, AcceptsRs256WithAJwksWithAndWithoutKid) {
  const TestKeys& keys = Keys();
  auto with_kids = Make(KeyOptions({"RS256"}, Jwks({RsaJwk(keys.rsa.get(), "r1")})));
  auto without_kids = Make(KeyOptions({"RS256"}, Jwks({RsaJwk(keys.rsa.get())})));
  const Signer sign = KeySigner(keys.rsa.get());
  for (const JwtVerifier* verifier : {with_kids.get(), without_kids.get()}) {
    EXPECT_TRUE(Accept(verifier, Token({{"alg", "RS256"}}, GoodClaims(), sign)).ok());
  }
  StatusOr<JwtClaims> claims =
      Accept(with_kids.get(), Token({{"alg", "RS256"}, {"kid", "r1"}}, GoodClaims(), sign));
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->key_id, "r1");
}

TEST(JwtVerifyTest, AcceptsEs256WithPemAndJwks) {
  const TestKeys& keys = Keys();
  const Signer sign = KeySigner(keys.ec.get());
  auto pem = Make(KeyOptions({"ES256"}, PublicPem(keys.ec.get())));
  auto jwks =
      Make(KeyOptions({"ES256"}, Jwks({EcJwk(keys.ec2.get(), "e2"), EcJwk(keys.ec.get(), "e1")})));
  auto jwks_no_kid = Make(KeyOptions({"ES256"}, Jwks({EcJwk(keys.ec.get())})));
  for (const JwtVerifier* verifier : {pem.get(), jwks.get(), jwks_no_kid.get()}) {
    StatusOr<JwtClaims> claims = Accept(verifier, Token({{"alg", "ES256"}}, GoodClaims(), sign));
    ASSERT_TRUE(claims.ok());
    EXPECT_EQ(claims->algorithm, "ES256");
  }
  EXPECT_TRUE(
      Accept(jwks.get(), Token({{"alg", "ES256"}, {"kid", "e1"}}, GoodClaims(), sign)).ok());
  ExpectRejected(pem.get(), Token({{"alg", "ES256"}}, GoodClaims(), KeySigner(keys.ec2.get())),
                 "the token's signature does not verify");
}

TEST(JwtVerifyTest, KidSelectsTheKey) {
  const TestKeys& keys = Keys();
  auto verifier = Make(
      KeyOptions({"RS256"}, Jwks({RsaJwk(keys.rsa.get(), "a"), RsaJwk(keys.rsa2.get(), "b")})));
  const Signer by_b = KeySigner(keys.rsa2.get());
  EXPECT_TRUE(
      Accept(verifier.get(), Token({{"alg", "RS256"}, {"kid", "b"}}, GoodClaims(), by_b)).ok());
  // Without a kid each key is tried.
  EXPECT_TRUE(Accept(verifier.get(), Token({{"alg", "RS256"}}, GoodClaims(), by_b)).ok());
  // With one, only its key: b's signature under a's kid does not verify.
  ExpectRejected(verifier.get(), Token({{"alg", "RS256"}, {"kid", "a"}}, GoodClaims(), by_b),
                 "the token's signature does not verify");
  ExpectRejected(verifier.get(), Token({{"alg", "RS256"}, {"kid", "c"}}, GoodClaims(), by_b),
                 "the token's key id matches no key");
  ExpectRejected(verifier.get(), Token({{"alg", "RS256"}, {"kid", 7}}, GoodClaims(), by_b),
                 "the token is malformed: 'kid' is not a string");
}

// ---------------------------------------------------------------------------------------------
// Verify: altered and ill-formed tokens

// One verifier for all three algorithms, and a token of each.
struct AllAlgorithms {
  std::unique_ptr<JwtVerifier> verifier;
  std::vector<std::string> tokens;
};
AllAlgorithms MakeAllAlgorithms(const Json& claims = GoodClaims()) {
  const TestKeys& keys = Keys();
  JwtOptions options =
      KeyOptions({"HS256", "RS256", "ES256"}, PublicPem(keys.rsa.get()) + PublicPem(keys.ec.get()));
  options.hs256_secret = kSecret;
  AllAlgorithms all{Make(options), {}};
  all.tokens.push_back(Token({{"alg", "HS256"}}, claims, Hs256Signer(kSecret)));
  all.tokens.push_back(Token({{"alg", "RS256"}}, claims, KeySigner(keys.rsa.get())));
  all.tokens.push_back(Token({{"alg", "ES256"}}, claims, KeySigner(keys.ec.get())));
  return all;
}

TEST(JwtVerifyTest, RejectsATamperedPayload) {
  AllAlgorithms all = MakeAllAlgorithms();
  const std::string admin = B64(With(GoodClaims(), "role", "admin").dump());
  for (const std::string& token : all.tokens) {
    ASSERT_TRUE(Accept(all.verifier.get(), token).ok());
    std::vector<std::string> parts = Split(token);
    ExpectRejected(all.verifier.get(), parts[0] + "." + admin + "." + parts[2],
                   "the token's signature does not verify");
  }
}

TEST(JwtVerifyTest, RejectsATamperedSignature) {
  AllAlgorithms all = MakeAllAlgorithms();
  for (const std::string& token : all.tokens) {
    std::vector<std::string> parts = Split(token);
    std::string& sig = parts[2];
    sig[sig.size() / 2] = sig[sig.size() / 2] == 'A' ? 'B' : 'A';
    ExpectRejected(all.verifier.get(), parts[0] + "." + parts[1] + "." + sig,
                   "the token's signature does not verify");
  }
}

TEST(JwtVerifyTest, RejectsATruncatedToken) {
  AllAlgorithms all = MakeAllAlgorithms();
  for (const std::string& token : all.tokens) {
    ExpectRejected(all.verifier.get(), token.substr(0, token.size() - 4), "the token");
    ExpectRejected(all.verifier.get(), token.substr(0, token.rfind('.') + 1), "signature");
    ExpectRejected(all.verifier.get(), token.substr(0, token.find('.') + 5),
                   "does not have three segments");
  }
}

TEST(JwtVerifyTest, RejectsTwoOrFourSegments) {
  AllAlgorithms all = MakeAllAlgorithms();
  const std::string& token = all.tokens[0];
  ExpectRejected(all.verifier.get(), token.substr(0, token.rfind('.')),
                 "the token is malformed: it does not have three segments");
  ExpectRejected(all.verifier.get(), token + ".AAAA", "does not have three segments");
  ExpectRejected(all.verifier.get(), "", "does not have three segments");
  ExpectRejected(all.verifier.get(), "..", "the header is not a JSON object");
}

TEST(JwtVerifyTest, RejectsPaddingAndCharactersOutsideBase64Url) {
  auto verifier = Make(Hs256Options());
  const std::string header = R"({"alg":"HS256"})";  // 15 bytes: 20 characters, no padding
  // A payload whose encoding would be padded: its length not a multiple of 3.
  std::string payload = With(GoodClaims(), "x", "a").dump();
  if (payload.size() % 3 == 0) payload = With(GoodClaims(), "x", "ab").dump();
  const std::string good = TokenOf(header, payload, Hs256Signer(kSecret));
  ASSERT_TRUE(Accept(verifier.get(), good).ok());
  std::vector<std::string> parts = Split(good);

  // A padded header: '=' is outside the alphabet JWS uses.
  const std::string padded_header = B64(R"({"alg":"HS256" })") + "==";  // 16 bytes
  std::string input = padded_header + "." + parts[1];
  ExpectRejected(verifier.get(), input + "." + B64(Hs256Signer(kSecret)(input)),
                 "the header is not base64url");
  // A padded payload, signed as it stands: refused once the signature is known good.
  std::string padded_payload = parts[1];
  while (padded_payload.size() % 4 != 0) padded_payload += '=';
  ASSERT_NE(padded_payload, parts[1]) << "the test needs a payload whose encoding pads";
  input = parts[0] + "." + padded_payload;
  ExpectRejected(verifier.get(), input + "." + B64(Hs256Signer(kSecret)(input)),
                 "the payload is not base64url");
  // Standard base64's '+' and '/', and a space.
  for (char bad : {'+', '/', ' '}) {
    std::string sig = parts[2];
    sig[3] = bad;
    ExpectRejected(verifier.get(), parts[0] + "." + parts[1] + "." + sig,
                   "the signature is not base64url");
  }
  // A length no encoder produces (4k+1), even when the extra characters decode to zero bits.
  ASSERT_EQ((parts[2].size() + 2) % 4, 1u);
  ExpectRejected(verifier.get(), parts[0] + "." + parts[1] + "." + parts[2] + "AA",
                 "the signature is not base64url");
  // The same 32 bytes with a non-zero unused bit: a second spelling of a good signature.
  ASSERT_EQ(parts[2].size(), 43u);  // 258 bits for 256: the last character has 2 unused bits
  std::string sig = parts[2];
  sig.back() = kBase64UrlAlphabet[kBase64UrlAlphabet.find(sig.back()) ^ 1];
  ExpectRejected(verifier.get(), parts[0] + "." + parts[1] + "." + sig,
                 "the signature is not base64url");
}

TEST(JwtVerifyTest, RejectsHeadersAndPayloadsThatAreNotJsonObjects) {
  auto verifier = Make(Hs256Options());
  const Signer sign = Hs256Signer(kSecret);
  ExpectRejected(verifier.get(), TokenOf("[\"HS256\"]", GoodClaims().dump(), sign),
                 "the header is not a JSON object");
  ExpectRejected(verifier.get(), TokenOf("{\"alg\":\"HS256\"", GoodClaims().dump(), sign),
                 "the header is not a JSON object");
  ExpectRejected(verifier.get(), TokenOf("{\"typ\":\"JWT\"}", GoodClaims().dump(), sign),
                 "the header has no 'alg' string");
  ExpectRejected(verifier.get(), TokenOf(R"({"alg":"HS256"})", "123", sign),
                 "the payload is not a JSON object");
  ExpectRejected(verifier.get(), TokenOf(R"({"alg":"HS256"})", "{\"exp\":1", sign),
                 "the payload is not a JSON object");
}

TEST(JwtVerifyTest, RejectsAnOversizedTokenBeforeParsingIt) {
  JwtOptions options = Hs256Options();
  options.max_token_bytes = 400;
  auto verifier = Make(options);
  const std::string big = Hs256Token(With(GoodClaims(), "pad", std::string(400, 'x')));
  ExpectRejected(verifier.get(), big, "the token is too large");
  // Not even looked at: garbage of that size gets the same answer, not "malformed".
  ExpectRejected(verifier.get(), std::string(401, '!'), "the token is too large (401 bytes");
  // At the limit exactly it passes.
  const std::string fits = Hs256Token(GoodClaims());
  options.max_token_bytes = fits.size();
  verifier = Make(options);
  EXPECT_TRUE(Accept(verifier.get(), fits).ok());
  ExpectRejected(verifier.get(), fits + "A", "too large");
}

// ---------------------------------------------------------------------------------------------
// Verify: dates

TEST(JwtVerifyTest, RejectsAnExpiredTokenBeyondTheLeeway) {
  auto verifier = Make(Hs256Options());  // leeway 60
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "exp", kNow - 61)),
                 "the token has expired");
  EXPECT_TRUE(Accept(verifier.get(), Hs256Token(With(GoodClaims(), "exp", kNow - 60))).ok());
  EXPECT_TRUE(Accept(verifier.get(), Hs256Token(With(GoodClaims(), "exp", kNow - 1))).ok());

  JwtOptions strict = Hs256Options();
  strict.leeway_seconds = 0;
  verifier = Make(strict);
  EXPECT_TRUE(Accept(verifier.get(), Hs256Token(With(GoodClaims(), "exp", kNow))).ok());
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "exp", kNow - 1)),
                 "the token has expired");
  // A fractional exp is rounded down: 0.5 s of validity is not a whole second.
  const std::string half = Hs256Token(With(GoodClaims(), "exp", kNow + 0.5));
  StatusOr<JwtClaims> claims = Accept(verifier.get(), half);
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->expires_at, kNow);
  ExpectRejected(verifier.get(), half, "the token has expired", kNow + 1);
}

TEST(JwtVerifyTest, RejectsATokenNotYetValid) {
  auto verifier = Make(Hs256Options());
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "nbf", kNow + 61)),
                 "the token is not yet valid");
  EXPECT_TRUE(Accept(verifier.get(), Hs256Token(With(GoodClaims(), "nbf", kNow + 60))).ok());
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "nbf", kNow + 60.5)),
                 "the token is not yet valid");
}

TEST(JwtVerifyTest, RejectsATokenIssuedInTheFuture) {
  auto verifier = Make(Hs256Options());
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "iat", kNow + 61)),
                 "the token's issue time is in the future");
  EXPECT_TRUE(Accept(verifier.get(), Hs256Token(With(GoodClaims(), "iat", kNow + 60))).ok());
}

TEST(JwtVerifyTest, RejectsMissingOrNonNumericDates) {
  auto verifier = Make(Hs256Options());
  ExpectRejected(verifier.get(), Hs256Token(Without(GoodClaims(), "exp")),
                 "the token has no expiry time ('exp')");
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "exp", std::to_string(kNow + 300))),
                 "the token is malformed: 'exp' is not a number");
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "exp", nullptr)),
                 "'exp' is not a number");
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "nbf", true)),
                 "'nbf' is not a number");
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "iat", Json::array())),
                 "'iat' is not a number");
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "exp", 1e300)),
                 "'exp' is out of range");
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "exp", UINT64_MAX)),
                 "'exp' is out of range");
}

// ---------------------------------------------------------------------------------------------
// Verify: algorithms

TEST(JwtVerifyTest, RejectsAlgNone) {
  AllAlgorithms all = MakeAllAlgorithms();  // every algorithm pinned; none is still refused
  const std::string input = JwtSigningInput(R"({"alg":"none"})", GoodClaims().dump());
  ExpectRejected(all.verifier.get(), input + ".", "the token's algorithm 'none' is not accepted");
  // Nor with a signature, nor spelled otherwise.
  ExpectRejected(all.verifier.get(), input + "." + B64(Hs256Signer(kSecret)(input)),
                 "'none' is not accepted");
  for (const char* alg : {"None", "NONE", "nOnE", ""}) {
    const std::string other = JwtSigningInput(Json{{"alg", alg}}.dump(), GoodClaims().dump());
    ExpectRejected(all.verifier.get(), other + ".", "the token's algorithm is not accepted");
  }
}

TEST(JwtVerifyTest, RejectsAnAlgorithmThatIsNotPinned) {
  const TestKeys& keys = Keys();
  auto verifier = Make(KeyOptions({"RS256"}, PublicPem(keys.rsa.get()) + PublicPem(keys.ec.get())));
  ExpectRejected(verifier.get(), Hs256Token(GoodClaims()),
                 "the token's algorithm 'HS256' is not accepted");
  ExpectRejected(verifier.get(), Token({{"alg", "ES256"}}, GoodClaims(), KeySigner(keys.ec.get())),
                 "the token's algorithm 'ES256' is not accepted");
  ExpectRejected(verifier.get(), Token({{"alg", "RS512"}}, GoodClaims(), KeySigner(keys.rsa.get())),
                 "the token's algorithm 'RS512' is not accepted");
}

TEST(JwtVerifyTest, RejectsHs256SignedWithThePublicKeyAsSecret) {
  // The classic confusion: the verifier holds an RSA public key for RS256 and a secret for
  // HS256; the attacker, who knows the public key, MACs a token with its text. A verifier that
  // picks the key by the token's `alg` alone would take the PEM as the HMAC secret.
  const TestKeys& keys = Keys();
  const std::string pem = PublicPem(keys.rsa.get());
  const std::string jwks = Jwks({RsaJwk(keys.rsa.get(), "r")});
  const std::string der = [&] {
    unsigned char* buf = nullptr;
    const int len = i2d_PUBKEY(keys.rsa.get(), &buf);
    std::string out(reinterpret_cast<const char*>(buf), len > 0 ? len : 0);
    OPENSSL_free(buf);
    return out;
  }();
  for (const std::string& key_file : {pem, jwks}) {
    JwtOptions options = KeyOptions({"RS256", "HS256"}, key_file);
    options.hs256_secret = kSecret;
    auto verifier = Make(options);
    // Both real paths work ...
    ASSERT_TRUE(Accept(verifier.get(), Hs256Token(GoodClaims())).ok());
    ASSERT_TRUE(
        Accept(verifier.get(), Token({{"alg", "RS256"}}, GoodClaims(), KeySigner(keys.rsa.get())))
            .ok());
    // ... and the forgeries do not, whichever spelling of the public key they use.
    for (const std::string& forged_secret : {pem, jwks, der}) {
      const Json admin = With(GoodClaims(), "role", "admin");
      ExpectRejected(verifier.get(), Token({{"alg", "HS256"}}, admin, Hs256Signer(forged_secret)),
                     "the token's signature does not verify");
      ExpectRejected(verifier.get(),
                     Token({{"alg", "HS256"}, {"kid", "r"}}, admin, Hs256Signer(forged_secret)),
                     "the token's signature does not verify");
    }
  }
  // With RS256 alone pinned, the forgery is refused before any MAC is computed.
  auto rs_only = Make(KeyOptions({"RS256"}, pem));
  ExpectRejected(rs_only.get(), Token({{"alg", "HS256"}}, GoodClaims(), Hs256Signer(pem)),
                 "the token's algorithm 'HS256' is not accepted");
}

TEST(JwtVerifyTest, ChecksEachAlgorithmWithKeysOfItsTypeOnly) {
  const TestKeys& keys = Keys();
  auto verifier =
      Make(KeyOptions({"RS256", "ES256"}, PublicPem(keys.rsa.get()) + PublicPem(keys.ec.get())));
  // An EC signature (DER, as OpenSSL makes it) under alg RS256: there is no RSA key it verifies
  // with, and the EC key is not tried.
  ExpectRejected(verifier.get(),
                 Token({{"alg", "RS256"}}, GoodClaims(), KeySigner(keys.ec.get(), /*der=*/true)),
                 "the token's signature does not verify");
  // An RSA signature under alg ES256 is 256 bytes, not R || S.
  ExpectRejected(verifier.get(), Token({{"alg", "ES256"}}, GoodClaims(), KeySigner(keys.rsa.get())),
                 "the token's ES256 signature is not 64 bytes");
}

TEST(JwtVerifyTest, RejectsAnEs256SignatureOfTheWrongLength) {
  const TestKeys& keys = Keys();
  auto verifier = Make(KeyOptions({"ES256"}, PublicPem(keys.ec.get())));
  const std::string input = JwtSigningInput(R"({"alg":"ES256"})", GoodClaims().dump());
  const std::string raw = KeySigner(keys.ec.get())(input);
  ASSERT_EQ(raw.size(), 64u);
  ASSERT_TRUE(Accept(verifier.get(), input + "." + B64(raw)).ok());
  ExpectRejected(verifier.get(), input + "." + B64(raw.substr(0, 63)),
                 "the token's ES256 signature is not 64 bytes");
  ExpectRejected(verifier.get(), input + "." + B64(raw + '\0'), "not 64 bytes");
  ExpectRejected(verifier.get(), input + "." + B64(KeySigner(keys.ec.get(), /*der=*/true)(input)),
                 "not 64 bytes");
  ExpectRejected(verifier.get(), input + "." + B64(std::string(64, '\0')),
                 "the token's signature does not verify");
}

TEST(JwtVerifyTest, RejectsACritHeader) {
  auto verifier = Make(Hs256Options());
  ExpectRejected(verifier.get(),
                 Token({{"alg", "HS256"}, {"crit", {"exp"}}, {"exp", kNow}}, GoodClaims(),
                       Hs256Signer(kSecret)),
                 "the token has a 'crit' header");
  ExpectRejected(
      verifier.get(),
      Token({{"alg", "HS256"}, {"crit", Json::array()}}, GoodClaims(), Hs256Signer(kSecret)),
      "'crit'");
}

// ---------------------------------------------------------------------------------------------
// Verify: issuer, audience, roles

TEST(JwtVerifyTest, RejectsAnotherIssuer) {
  JwtOptions options = Hs256Options();
  options.issuer = kIssuer;
  auto verifier = Make(options);
  EXPECT_TRUE(Accept(verifier.get(), Hs256Token(GoodClaims())).ok());
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "iss", "https://evil.example")),
                 "the token's issuer is not accepted");
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "iss", std::string(kIssuer) + "/")),
                 "the token's issuer is not accepted");
  ExpectRejected(verifier.get(), Hs256Token(Without(GoodClaims(), "iss")),
                 "the token's issuer is not accepted");
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "iss", Json::array({kIssuer}))),
                 "'iss' is not a string");
}

TEST(JwtVerifyTest, ChecksTheAudience) {
  JwtOptions options = Hs256Options();
  options.audiences = {"vigil", "vigil-staging"};
  auto verifier = Make(options);
  EXPECT_TRUE(Accept(verifier.get(), Hs256Token(With(GoodClaims(), "aud", "vigil-staging"))).ok());
  EXPECT_TRUE(Accept(verifier.get(),
                     Hs256Token(With(GoodClaims(), "aud", Json::array({"billing", "vigil"}))))
                  .ok());
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "aud", "billing")),
                 "the token's audience is not accepted");
  ExpectRejected(verifier.get(),
                 Hs256Token(With(GoodClaims(), "aud", Json::array({"billing", "Vigil"}))),
                 "the token's audience is not accepted");
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "aud", Json::array())),
                 "the token's audience is not accepted");
  ExpectRejected(verifier.get(), Hs256Token(Without(GoodClaims(), "aud")),
                 "the token's audience is not accepted");
  ExpectRejected(verifier.get(), Hs256Token(With(GoodClaims(), "aud", Json::array({"vigil", 1}))),
                 "'aud' is not a string or an array of strings");
  // No audiences configured: any is accepted.
  auto any = Make(Hs256Options());
  EXPECT_TRUE(Accept(any.get(), Hs256Token(With(GoodClaims(), "aud", "billing"))).ok());
}

TEST(JwtVerifyTest, ReadsRolesFromAStringAnArrayOrADottedPath) {
  JwtOptions options = Hs256Options();
  auto by_role = Make(options);
  StatusOr<JwtClaims> claims =
      Accept(by_role.get(), Hs256Token(With(GoodClaims(), "role", "admin")));
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->roles, std::vector<std::string>{"admin"});

  claims = Accept(by_role.get(),
                  Hs256Token(With(GoodClaims(), "role", Json::array({"scorer", "analyst"}))));
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->roles, (std::vector<std::string>{"scorer", "analyst"}));

  // Missing: no roles, and not an error (the caller decides).
  claims = Accept(by_role.get(), Hs256Token(Without(GoodClaims(), "role")));
  ASSERT_TRUE(claims.ok());
  EXPECT_TRUE(claims->roles.empty());

  ExpectRejected(by_role.get(), Hs256Token(With(GoodClaims(), "role", 3)),
                 "the role claim is not a string or an array of strings");
  ExpectRejected(by_role.get(),
                 Hs256Token(With(GoodClaims(), "role", Json::array({"admin", Json::object()}))),
                 "the role claim is not a string or an array of strings");

  options.role_claim = "realm_access.roles";
  auto nested = Make(options);
  claims = Accept(nested.get(), Hs256Token(With(GoodClaims(), "realm_access",
                                                {{"roles", Json::array({"viewer", "admin"})}})));
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->roles, (std::vector<std::string>{"viewer", "admin"}));
  // The top-level "role" is not read through another path, and a path that stops at a
  // non-object finds nothing.
  claims = Accept(nested.get(), Hs256Token(With(GoodClaims(), "realm_access", "admin")));
  ASSERT_TRUE(claims.ok());
  EXPECT_TRUE(claims->roles.empty());

  options.role_claim = "https://vigil.example/roles";  // a namespaced claim: dots in its name
  auto namespaced = Make(options);
  claims = Accept(namespaced.get(),
                  Hs256Token(With(GoodClaims(), "https://vigil.example/roles", "processor")));
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->roles, std::vector<std::string>{"processor"});
}

// ---------------------------------------------------------------------------------------------
// Verify: what the messages and OpenSSL are left with

TEST(JwtVerifyTest, ErrorMessagesNeverContainTheTokenOrItsChosenText) {
  AllAlgorithms all = MakeAllAlgorithms();
  const JwtVerifier* verifier = all.verifier.get();
  const std::string secret_text = "sEcReT-cOnTeNt-0f-the-tOkEn";
  const Signer sign = Hs256Signer(kSecret);
  const std::vector<std::string> tokens = {
      Token({{"alg", secret_text}}, GoodClaims(), sign),
      Token({{"alg", "HS256"}, {"kid", secret_text}}, GoodClaims(), Hs256Signer("other secret")),
      Token({{"alg", "RS256"}, {"kid", secret_text}}, GoodClaims(), KeySigner(Keys().rsa2.get())),
      Token({{"alg", "HS256"}, {secret_text, 1}, {"crit", {secret_text}}}, GoodClaims(), sign),
      Hs256Token(With(GoodClaims(), "exp", secret_text)),
      Hs256Token(With(GoodClaims(), "role", {{secret_text, secret_text}})),
      Hs256Token(With(GoodClaims(), "exp", kNow - 1000)),
      Hs256Token(With(GoodClaims(), "sub", 5)),
      B64(secret_text) + "." + B64(secret_text) + "." + B64(secret_text),
      secret_text + "." + secret_text + "." + secret_text,
      secret_text,
  };
  for (const std::string& token : tokens) {
    StatusOr<JwtClaims> claims = verifier->Verify(token, kNow);
    ASSERT_FALSE(claims.ok());
    const std::string& message = claims.status().message();
    EXPECT_EQ(claims.status().code(), StatusCode::kUnauthenticated) << message;
    EXPECT_EQ(message.find(token), std::string::npos) << message;
    EXPECT_FALSE(QuotesToken(message, token)) << message;
    EXPECT_EQ(message.find(secret_text), std::string::npos) << message;
    EXPECT_EQ(message.find("sEcReT"), std::string::npos) << message;
  }
}

TEST(JwtVerifyTest, LeavesNoOpenSslErrorsBehind) {
  // The TLS server reads the thread's OpenSSL error queue after its own calls; a refused token
  // must not leave entries there.
  const TestKeys& keys = Keys();
  AllAlgorithms all = MakeAllAlgorithms();
  ERR_clear_error();
  ExpectRejected(all.verifier.get(),
                 Token({{"alg", "RS256"}}, GoodClaims(), KeySigner(keys.rsa2.get())),
                 "does not verify");
  ExpectRejected(all.verifier.get(),
                 Token({{"alg", "RS256"}}, GoodClaims(), [](std::string_view) { return "short"; }),
                 "does not verify");
  ExpectRejected(all.verifier.get(),
                 Token({{"alg", "ES256"}}, GoodClaims(), KeySigner(keys.ec2.get())),
                 "does not verify");
  ExpectCreateFails(
      KeyOptions({"RS256"}, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
      "does not parse");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(JwtVerifyTest, VerifiesFromManyThreadsAtOnce) {
  AllAlgorithms all = MakeAllAlgorithms();
  const std::string forged = Token({{"alg", "RS256"}}, GoodClaims(), KeySigner(Keys().rsa2.get()));
  std::atomic<int> accepted{0};
  std::atomic<int> rejected{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        for (const std::string& token : all.tokens) {
          if (all.verifier->Verify(token, kNow).ok()) ++accepted;
        }
        if (!all.verifier->Verify(forged, kNow).ok()) ++rejected;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(accepted.load(), 4 * 25 * 3);
  EXPECT_EQ(rejected.load(), 4 * 25);
}

}  // namespace
}  // namespace vigil::auth
