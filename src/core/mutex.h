// Mutex, MutexLock and CondVar: std::mutex and std::condition_variable under the annotations of
// core/thread_annotations.h, so that clang's -Wthread-safety checks who holds what.
#ifndef VIGIL_CORE_MUTEX_H_
#define VIGIL_CORE_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "core/thread_annotations.h"

namespace vigil {

// A Mutex is a std::mutex the thread-safety analysis can see. Not recursive.
// Thread-safe.
class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// A MutexLock holds a Mutex for its scope, as std::lock_guard holds a std::mutex:
//   MutexLock lock(&mu_);
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A ReleasableMutexLock is a MutexLock that can let go of its Mutex before the end of its scope
// (as Abseil's), e.g. to signal a waiter that would otherwise wake only to block on the lock.
class SCOPED_CAPABILITY ReleasableMutexLock {
 public:
  explicit ReleasableMutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~ReleasableMutexLock() RELEASE() {
    if (mu_ != nullptr) mu_->Unlock();
  }
  ReleasableMutexLock(const ReleasableMutexLock&) = delete;
  ReleasableMutexLock& operator=(const ReleasableMutexLock&) = delete;

  // REQUIRES: not released yet.
  void Release() RELEASE() {
    mu_->Unlock();
    mu_ = nullptr;
  }

 private:
  Mutex* mu_;
};

// A CondVar is a std::condition_variable that waits with a Mutex held. Wakes may be spurious:
// wait in a loop on the condition, which the analysis then checks under the lock:
//   while (!ready_) cv_.Wait(&mu_);
// Thread-safe.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases *mu, waits for a Signal or SignalAll, and holds *mu again before it returns.
  void Wait(Mutex* mu) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();  // *mu stays held, as on entry
  }

  // Wait, for at most `timeout`: std::cv_status::timeout when it passed without a signal.
  template <class Rep, class Period>
  std::cv_status WaitFor(Mutex* mu, const std::chrono::duration<Rep, Period>& timeout)
      REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const std::cv_status status = cv_.wait_for(lock, timeout);
    lock.release();
    return status;
  }

  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace vigil

#endif  // VIGIL_CORE_MUTEX_H_
