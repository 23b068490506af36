// The admin routes of the API keys (auth/key_store.h):
//   POST   /v1/admin/keys             {"role", "name", "expires_at"?} -> the key and its secret,
//   once GET    /v1/admin/keys             every key (never a secret) DELETE /v1/admin/keys/{id}
//   revokes it at once POST   /v1/admin/keys/{id}/roll   {"old_key_valid_seconds"?} -> a new key;
//   the old one
//                                     stays valid that long (default a day)
// The key store's calls run on `pool` (they write a file), never on an I/O thread.
#ifndef VIGIL_SERVE_KEY_ROUTES_H_
#define VIGIL_SERVE_KEY_ROUTES_H_

#include <string>

#include "auth/audit_log.h"
#include "auth/key_store.h"
#include "serve/router.h"
#include "serve/worker_pool.h"

namespace vigil {

// Each key event goes to `audit` before it is answered; GET /v1/admin/audit?after=SEQ&limit=N
// (1 to 1000, default 100) reads it. REQUIRES: keys, pool and audit outlive the router.
void AddKeyRoutes(Router& router, auth::KeyStore& keys, WorkerPool& pool, auth::AuditLog& audit);

// A key as JSON, without its secret.
std::string KeyJson(const auth::KeyRecord& key, int64_t now);

}  // namespace vigil

#endif  // VIGIL_SERVE_KEY_ROUTES_H_
