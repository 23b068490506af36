// Background threads (the indexer, checkpoints, the snapshotter) do work nothing waits for. On a
// machine with few cores they would otherwise preempt the threads that serve requests for a
// millisecond at a time and show in the reply latency's tail: they run at a lower priority.
#ifndef VIGIL_CORE_BACKGROUND_THREAD_H_
#define VIGIL_CORE_BACKGROUND_THREAD_H_

#include <string_view>

namespace vigil {

// Names the calling thread (at most 15 characters shown, in `top -H` and profiles) and lowers
// its scheduling priority to `nice` (0..19) above the process's. Best effort: a refusal changes
// nothing else.
void BecomeBackgroundThread(std::string_view name, int nice = 10);

}  // namespace vigil

#endif  // VIGIL_CORE_BACKGROUND_THREAD_H_
