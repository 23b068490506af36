// The embedded Store backend: one SQLite file in WAL mode.
//
// Schema (version 3, recorded in `schema_version`; versions 1 and 2 are migrated in place):
//
//   schema_version(version INTEGER NOT NULL)            -- one row: 3
//   transactions(
//     sequence         INTEGER PRIMARY KEY,               -- the rowid: 1, 2, ... in commit order
//     transaction_id   TEXT NOT NULL UNIQUE,
//     customer_id      TEXT NOT NULL,
//     terminal_id      TEXT NOT NULL,
//     amount           REAL,                              -- NULL when NaN
//     timestamp        INTEGER NOT NULL,                  -- epoch seconds UTC
//     transaction_json TEXT NOT NULL,                     -- as received
//     score            REAL,                              -- NULL when NaN
//     decision         TEXT NOT NULL,                     -- approve | review | decline
//     anomaly_score    REAL,                              -- NULL when NaN (no anomaly model)
//     model_name       TEXT NOT NULL,
//     model_version    TEXT NOT NULL,
//     reply_json       TEXT NOT NULL,                     -- the exact reply body sent
//     latency_us       INTEGER NOT NULL,
//     recorded_at_us   INTEGER NOT NULL,                  -- wall clock when queued
//     idempotency_key  TEXT,                              -- unique when not NULL (v2)
//     request_fingerprint INTEGER,                        -- with a key: its request's hash (v3)
//     features         BLOB)                              -- float32s the model scored (v3)
//   store_probe(id INTEGER PRIMARY KEY, checked_at_us INTEGER NOT NULL)  -- CheckWritable's row
//
// One table holds a transaction and its prediction: they are written together, read together
// (GET /v1/transactions/{id}) and never updated. Feedback, models, runs and audit will get their
// own tables in later schema versions.
//
// Connections: one writer (owned by the writer thread), one reader for Get/Scan (WAL lets it
// read beside the writer; guarded by its own mutex), one for CheckWritable. The sequence of a
// record is computed inside its INSERT as MAX(sequence) + 1, so a rolled-back batch leaves no
// gap (and stays right should another process write the same file).
#ifndef VIGIL_STORE_SQLITE_STORE_H_
#define VIGIL_STORE_SQLITE_STORE_H_

#include <memory>

#include "vigil/status.h"
#include "vigil/store.h"

namespace vigil {

// Opens (creating if needed) the SQLite store at options.path.
StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const StoreOptions& options);

}  // namespace vigil

#endif  // VIGIL_STORE_SQLITE_STORE_H_
