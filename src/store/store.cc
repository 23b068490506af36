#include "vigil/store.h"

#include <utility>
#include <vector>

#include "store/sqlite_store.h"

namespace vigil {

Store::~Store() = default;

void Store::Append(TransactionRecord record, std::function<void(const Status&)> done,
                   CommitBy by) {
  std::vector<Write> one;
  one.push_back(Write{std::move(record), std::move(done)});
  AppendAll(std::move(one), by);
}

StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  // SQLite is the only backend so far; PostgreSQL will be chosen by a postgresql:// path.
  return OpenSqliteStore(options);
}

}  // namespace vigil
