#include "vigil/store.h"

#include "store/sqlite_store.h"

namespace vigil {

Store::~Store() = default;

StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  // SQLite is the only backend so far; PostgreSQL will be chosen by a postgresql:// path.
  return OpenSqliteStore(options);
}

}  // namespace vigil
