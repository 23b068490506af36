// The journal: an append-only, checksummed, segmented log of records, the commit point of the
// store (and, later, of the embedded queue).
//
// A record is an opaque byte string with an offset (1, 2, ... in append order; strictly
// increasing, with a gap only where a damaged record was skipped) and the wall-clock time it was
// appended. Records live in segment files of about `segment_bytes` each, named by the offset of
// their first record, so that old ones can be dropped whole (retention) while new ones are
// appended. The shape is LevelDB's log and Kafka's segments:
//
//   <dir>/LOCK                        held (flock) by the one process that has the journal open
//   <dir>/00000000000000000001.jnl    a segment: a header, then records back to back
//
//   segment header (32 bytes): "VIGILJNL" | u32 version (1) | u32 masked CRC-32C of the next
//                              16 bytes | u64 first offset | u64 created (µs since the epoch)
//   record header  (24 bytes): u32 masked CRC-32C of everything after it (the rest of the header
//                              and the payload) | u32 payload length | u64 offset | u64 time µs
//   then the payload.
//
// Integers are little-endian. A record's offset is in its checksum, so a stale record (from a
// segment left over, or bytes shifted) never passes for another.
//
// Durability: Append returns once the records are written to the operating system (one write(2)
// for all of them): they survive a crash of the process (kill -9) but not a power loss. Sync, or
// AfterSync for callers that must not block, makes them survive a power loss too (fdatasync of
// the segment, and of the folder once a new segment file was created); concurrent callers share
// one fdatasync (group commit).
//
// Recovery: Open checks the newest segment record by record. A torn tail (a write cut short by
// a crash) is cut off and logged. A record that fails its checksum with valid records after it
// (a damaged byte) is skipped, and logged, by Open and by every Reader; its offset stays unused.
// Nothing is ever returned that fails its checksum.
//
// Thread-safe: Append, Sync, AfterSync, Read, DropBefore, DropOlderThan and the accessors may be
// called from any thread. A Reader belongs to one thread at a time.
#ifndef VIGIL_JOURNAL_JOURNAL_H_
#define VIGIL_JOURNAL_JOURNAL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/status.h"

namespace vigil {

struct JournalOptions {
  std::string dir;  // created if missing (its parent must exist)
  // A segment is closed and a new one started once it holds at least this many bytes.
  // REQUIRES: >= 4096.
  uint64_t segment_bytes = uint64_t{64} << 20;
  // A record's payload is at most this many bytes (a longer one is refused: InvalidArgument).
  // Records already written under a higher limit are still read.
  uint32_t max_record_bytes = 16u << 20;
};

// One record, as a Reader returns it. The payload view is valid until the Reader's next call.
struct JournalEntry {
  uint64_t offset = 0;
  int64_t time_us = 0;
  std::string_view payload;
};

// What Open found and did; also logged.
struct JournalRecovery {
  uint64_t records = 0;         // records in the newest segment that passed their checksum
  uint64_t torn_tail_bytes = 0;  // cut off the end of the newest segment
  uint64_t skipped_records = 0;  // damaged records skipped inside it
};

class Journal {
 public:
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;
  virtual ~Journal() = default;

  // Opens (creating if needed) the journal in options.dir and recovers its tail. Fails when the
  // folder cannot be created or written, when another process has it open, or when a segment
  // header is not a Vigil journal's.
  static StatusOr<std::unique_ptr<Journal>> Open(const JournalOptions& options,
                                                 JournalRecovery* recovery = nullptr);

  // Appends records in order, in one write; returns the offset of the first. On failure (disk
  // full, I/O error) nothing of them is in the journal (a partial write is cut off again) and
  // the status says why: Unavailable; InvalidArgument for a record over max_record_bytes.
  // `time_us` is the time every record is stamped with (0: now).
  virtual StatusOr<uint64_t> Append(std::span<const std::string_view> records,
                                    int64_t time_us = 0) = 0;

  // Makes every record appended before the call survive a power loss. Blocks; concurrent
  // callers share one fdatasync.
  virtual Status Sync() = 0;
  // Calls `done` (on the journal's sync thread, or at once when nothing is left to sync) once
  // every record up to `offset` survives a power loss, or with the failure. `done` must be quick
  // and must not call Sync.
  virtual void AfterSync(uint64_t offset, std::function<void(const Status&)> done) = 0;

  // A reader of the records from `from` on (the first at or after it), in order, including
  // those appended while it reads.
  class Reader {
   public:
    virtual ~Reader() = default;
    // The next record: true and `entry` set; false at the end of what is written so far (a
    // later call sees records appended meanwhile). Unavailable on an I/O error. A damaged record
    // is skipped with a log line (and counted in skipped()).
    virtual StatusOr<bool> Next(JournalEntry* entry) = 0;
    virtual uint64_t skipped() const = 0;
  };
  virtual StatusOr<std::unique_ptr<Reader>> Read(uint64_t from) = 0;

  // Deletes the segments whose records all have offsets below `offset`, never the newest one.
  // Readers already past them are unaffected. Returns the number of segments deleted.
  virtual StatusOr<size_t> DropBefore(uint64_t offset) = 0;
  // Deletes the segments whose records were all appended before `cutoff_us` (the next segment
  // began at or before it) and all have offsets below `keep_from`, never the newest one.
  virtual StatusOr<size_t> DropOlderThan(int64_t cutoff_us, uint64_t keep_from = UINT64_MAX) = 0;

  // The offset of the oldest record kept (next_offset() when there is none).
  virtual uint64_t first_offset() const = 0;
  // The offset the next record will get.
  virtual uint64_t next_offset() const = 0;
  // When the oldest segment kept began (its first record's time): every record dropped was
  // appended before it.
  virtual int64_t first_segment_time_us() const = 0;
  // Bytes in all segments.
  virtual uint64_t size_bytes() const = 0;
  virtual size_t segments() const = 0;
  // The first offset of each segment kept, oldest first (the names of their files).
  virtual std::vector<uint64_t> segment_first_offsets() const = 0;

 protected:
  Journal() = default;
};

}  // namespace vigil

#endif  // VIGIL_JOURNAL_JOURNAL_H_
