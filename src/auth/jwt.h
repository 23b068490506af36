// Verifying the bearer tokens of Vigil's callers: JSON Web Tokens (RFC 7519) signed with HS256,
// RS256 or ES256, checked as RFC 8725 recommends. The verifier only says who the caller is and
// which roles the token claims; which routes those roles may call is auth/role.h's to decide.
//
// What it refuses, and why:
// - an algorithm outside the pinned set, and `none` always: the token does not choose how it is
//   checked, the configuration does;
// - a key of the wrong type for the algorithm: an HS256 token is checked with the HS256 secret
//   only, never with the bytes of an RSA public key as an HMAC secret (the classic algorithm
//   confusion), an RS256 token with RSA keys only, an ES256 token with P-256 keys only;
// - a `crit` header: it names extensions the token demands we understand, and we understand none;
// - keys that the token carries or points to (`jwk`, `jku`, `x5u`, `x5c`): they are ignored, as a
//   key a token brings proves nothing about who signed it.
#ifndef VIGIL_AUTH_JWT_H_
#define VIGIL_AUTH_JWT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/status.h"

namespace vigil::auth {

struct JwtOptions {
  // The algorithms a token may use, each of "HS256", "RS256", "ES256". Required: there is no
  // default, so that adding a key never silently admits a new algorithm.
  std::vector<std::string> algorithms;
  // The HS256 secret, at least 32 bytes (RFC 7518 §3.2: a key as long as the hash output).
  std::string hs256_secret;
  // For RS256 and ES256: the text of a PEM file (one or more "PUBLIC KEY" or "CERTIFICATE"
  // blocks) or of a JWKS document ({"keys": [...]}); which one is told from the text. RSA keys
  // must have at least 2048 bits, EC keys must be on P-256. In a JWKS, keys whose `use` is not
  // "sig", whose `kty` is neither "RSA" nor "EC", or whose `alg` or curve is none of ours are
  // skipped; a certificate's validity dates are not checked (it is only a container for a key).
  std::string public_keys;
  // When set, the token's `iss` must equal it.
  std::string issuer;
  // When set, the token's `aud` (a string or an array of strings) must contain one of them.
  std::vector<std::string> audiences;
  // Where the roles are in the claims: a claim name ("role"), or a dotted path into nested
  // objects ("realm_access.roles"). A claim whose own name contains dots, as namespaced claims
  // do ("https://vigil.example/roles"), is found by its full name first. The value is a string
  // (one role) or an array of strings.
  std::string role_claim = "role";
  // The clock skew allowed between the issuer and us, for `exp`, `nbf` and `iat`; 0 to 86400.
  int64_t leeway_seconds = 60;
  // Longer tokens are refused before any decoding or parsing.
  size_t max_token_bytes = 8192;
};

// What a verified token says about its caller.
struct JwtClaims {
  std::string subject;    // `sub`, or empty
  std::string issuer;     // `iss`, or empty
  std::string id;         // `jti`, or empty
  std::string algorithm;  // the header's `alg`: "HS256", "RS256" or "ES256"
  std::string key_id;     // the header's `kid`, or empty
  // From JwtOptions::role_claim; empty when the token has no such claim (the caller decides
  // whether a token without roles may do anything).
  std::vector<std::string> roles;
  int64_t expires_at = 0;  // `exp`, Unix seconds
  int64_t not_before = 0;  // `nbf`, or 0 when absent
  int64_t issued_at = 0;   // `iat`, or 0 when absent
};

// One public key of a JwtVerifier: an OpenSSL EVP_PKEY and its JWKS key id. Defined in jwt.cc,
// so that no OpenSSL type reaches this header.
struct JwtPublicKey;

// A JwtVerifier checks tokens against a fixed configuration: pinned algorithms, keys, issuer and
// audiences. Thread-safe: Verify is const and shares nothing mutable between calls, so one
// verifier serves every request thread.
class JwtVerifier {
 public:
  // InvalidArgument naming the problem: no or an unknown algorithm, a short secret, a key file
  // that does not parse, a weak or unsupported key, or a pinned algorithm without a key for it.
  static StatusOr<std::unique_ptr<JwtVerifier>> Create(JwtOptions options);

  ~JwtVerifier();
  JwtVerifier(const JwtVerifier&) = delete;
  JwtVerifier& operator=(const JwtVerifier&) = delete;

  // The claims of `token` (the compact serialization, without "Bearer "), or Unauthenticated with
  // a message for the logs that names the problem ("the token has expired"). The message never
  // quotes the token or any part of it: tokens are credentials, and logs are read by many.
  // `now_unix_seconds` is the current time (injected, so that tests need no clock).
  StatusOr<JwtClaims> Verify(std::string_view token, int64_t now_unix_seconds) const;

 private:
  JwtVerifier(JwtOptions options, std::vector<JwtPublicKey> keys);

  const JwtOptions options_;
  const std::vector<JwtPublicKey> keys_;
};

}  // namespace vigil::auth

#endif  // VIGIL_AUTH_JWT_H_
