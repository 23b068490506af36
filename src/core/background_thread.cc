#include "core/background_thread.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

namespace vigil {

void BecomeBackgroundThread(std::string_view name, int nice) {
  const std::string shown(name.substr(0, 15));
  (void)pthread_setname_np(pthread_self(), shown.c_str());
  // On Linux, PRIO_PROCESS with a thread id sets that one thread's nice value.
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  const int base = ::getpriority(PRIO_PROCESS, 0);
  (void)::setpriority(PRIO_PROCESS, tid, base + nice > 19 ? 19 : base + nice);
}

}  // namespace vigil
