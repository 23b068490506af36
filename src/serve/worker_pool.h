// A WorkerPool runs tasks on threads of its own: the work `vigil serve` must not do on an I/O
// thread (a model reload that reads and compiles a file; a queue call that waits on a server).
// Thread-safe. Stop finishes the tasks at hand and drops the rest.
#ifndef VIGIL_SERVE_WORKER_POOL_H_
#define VIGIL_SERVE_WORKER_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "core/mutex.h"

namespace vigil {

class WorkerPool {
 public:
  explicit WorkerPool(int threads) {
    threads_.reserve(static_cast<size_t>(threads));
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~WorkerPool() { Stop(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // False once stopping: the task will not run.
  bool Post(std::function<void()> task) EXCLUDES(mu_) {
    {
      MutexLock lock(&mu_);
      if (stopping_) return false;
      tasks_.push_back(std::move(task));
    }
    cv_.Signal();
    return true;
  }

  // Finishes the tasks at hand, drops the rest, joins the threads. Idempotent.
  void Stop() EXCLUDES(mu_) {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
      tasks_.clear();
    }
    cv_.SignalAll();
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void Loop() EXCLUDES(mu_) {
    while (true) {
      std::function<void()> task;
      {
        MutexLock lock(&mu_);
        while (!stopping_ && tasks_.empty()) cv_.Wait(&mu_);
        if (stopping_) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> tasks_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace vigil

#endif  // VIGIL_SERVE_WORKER_POOL_H_
