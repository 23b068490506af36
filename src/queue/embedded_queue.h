// The embedded durable queue: the default backend of vigil/queue.h, in the data folder.
//
// Each queue is a journal (src/journal) of its own under <data_dir>/queues/<name>/, and its
// state (the messages not yet acknowledged, where each one stands) is held in memory and rebuilt
// from that journal at open. Every change of state is a journal record written before the call
// that made it returns, so a kill -9 at any point leaves a journal from which the same state
// (less what had not been written) is rebuilt:
//
//   P  a message: its sequence, enqueue time, attempts, state (waiting | dead), due time, type,
//      last error and content. Written by a push, and again, with the message's current state,
//      when compaction moves a live message out of a segment about to be dropped.
//   L  a lease: the time it runs out and the sequences leased (each one's attempts + 1)
//   T  taken by a plain pull (gone, attempts + 1)      A  acknowledged (gone)
//   N  given back (waiting again from a time)          D  dead-lettered, with the reason
//   R  requeued from the dead letters (attempts from 0)
//
// A message's sequence is the journal offset of the record that first pushed it, so sequences,
// and the ids "<queue>-<sequence>" made from them, are never reused (the journal's offsets keep
// increasing across restarts and dropped segments).
//
// A lease that ran out needs no record: whoever looks at the queue next (a pull, an ack, the
// stats, the next open) finds it expired by the same rule, and dead-letters it (with a D record)
// when it used its last attempt.
//
// Compaction: once the journal has more than one segment, the oldest is dropped as soon as no
// live message's newest record is in it; when only a few are (under a quarter of a segment's
// bytes: a dead letter or a message delayed for long), they are written again at the end first.
// So the disk holds about the live messages plus a segment or two.
#ifndef VIGIL_QUEUE_EMBEDDED_QUEUE_H_
#define VIGIL_QUEUE_EMBEDDED_QUEUE_H_

#include <cstdint>
#include <memory>

#include "vigil/queue.h"
#include "vigil/status.h"

namespace vigil {

// Opens the embedded queues under <options.data_dir>/queues (created if missing), replaying each
// one's journal. `segment_bytes` is each journal's segment size (tests make it small).
StatusOr<std::unique_ptr<Queue>> OpenEmbeddedQueue(const QueueOptions& options,
                                                   uint64_t segment_bytes = uint64_t{64} << 20);

}  // namespace vigil

#endif  // VIGIL_QUEUE_EMBEDDED_QUEUE_H_
