// Snapshots of the engine's online state: the feature windows and the set of ids seen, as of a
// journal offset, so that start-up loads the newest one and replays only the records after it.
//
//   <dir>/00000000000001234567.snap   the state holding every record up to sequence 1234567
//
//   header (32 bytes): "VIGILSNP" | u32 version (1) | u32 sections | i64 through |
//                      u32 masked CRC-32C of the 24 bytes before it | u32 0
//   then each section: u64 length | u32 masked CRC-32C of the bytes | the bytes
//
// A snapshot is written whole or not at all (a temporary file, fsync, rename). One that is torn
// or fails a checksum is skipped, with a log line, for the one before it.
#ifndef VIGIL_ENGINE_SNAPSHOT_H_
#define VIGIL_ENGINE_SNAPSHOT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vigil/status.h"

namespace vigil {

struct Snapshot {
  int64_t through = 0;                // holds every record with a sequence <= through
  std::vector<std::string> sections;  // the parts of the state, in the writer's order
};

// Writes `snapshot` into `dir` (created if missing), then deletes all but the newest `keep`.
Status WriteSnapshot(const std::string& dir, const Snapshot& snapshot, size_t keep = 2);

// The newest snapshot in `dir` that is whole and passes its checksums, or nullopt when there is
// none (no folder, no file, or none valid).
StatusOr<std::optional<Snapshot>> LoadNewestSnapshot(const std::string& dir);

}  // namespace vigil

#endif  // VIGIL_ENGINE_SNAPSHOT_H_
