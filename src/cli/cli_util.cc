#include "cli/cli_util.h"

#include <pthread.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <utility>

#include "core/file_util.h"

namespace vigil::cli {

void AddKernelOption(CLI::App& cmd, std::string* kernel) {
  cmd.add_option("--kernel", *kernel,
                 "Tree kernel: auto (times the kernels this CPU has on each model as it loads and "
                 "keeps the fastest), or scalar, avx2, avx512 to force one (a kernel the CPU "
                 "lacks fails the load); every kernel gives the same scores")
      ->capture_default_str()
      ->envname("VIGIL_KERNEL");
}

sigset_t BlockTerminationSignals(bool and_hangup) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (and_hangup) sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

void WatchForTermination(sigset_t signals, std::string command, std::string out,
                         std::shared_ptr<FileJobProgress> job, std::string note) {
  std::thread([signals, command = std::move(command), out = std::move(out), job = std::move(job),
               note = std::move(note)] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (job->committed.load()) std::_Exit(128 + sig);
    if (const std::string temp = job->TempPath(); !temp.empty()) ::unlink(temp.c_str());
    std::fprintf(stderr, "vigil %s: stopped by %s%s with %s\n", command.c_str(),
                 sig == SIGINT ? "SIGINT" : "SIGTERM",
                 note.empty() ? "" : (" (" + note + ")").c_str(), job->StoppedAccount(out).c_str());
    std::fflush(stderr);
    std::_Exit(128 + sig);
  }).detach();
}

int Fail(const std::string& command, const Status& status) {
  std::fprintf(stderr, "vigil %s: error: %s\n", command.c_str(), status.message().c_str());
  return 1;
}

Progress::Progress(std::string label, bool quiet)
    : label_(std::move(label)),
      quiet_(quiet),
      tty_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() {
  if (!done_ && tty_ && last_step_ >= 0 && !quiet_) std::fputc('\n', stderr);
}

double Progress::Seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::Update(double fraction) {
  if (quiet_) return;
  const int percent = static_cast<int>(fraction * 100);
  const int step = tty_ ? percent : percent / 20 * 20;
  if (step == last_step_ || percent >= 100) return;
  last_step_ = step;
  if (tty_) {
    std::fprintf(stderr, "\r%s: %3d%%", label_.c_str(), step);
  } else {
    std::fprintf(stderr, "%s: %d%%\n", label_.c_str(), step);
  }
  std::fflush(stderr);
}

void Progress::Done() {
  if (quiet_ || done_) return;
  done_ = true;
  std::fprintf(stderr, "%s%s: done in %.1f s\n", tty_ && last_step_ >= 0 ? "\r" : "",
               label_.c_str(), Seconds());
}

StatusOr<std::map<std::string, std::string>> ParseParams(const std::vector<std::string>& kvs) {
  std::map<std::string, std::string> out;
  for (const auto& kv : kvs) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgument("--param '" + kv + "' is not key=value");
    }
    out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return out;
}

std::vector<std::string> SplitList(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start) out.push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

StatusOr<std::chrono::seconds> ParseDuration(std::string_view text) {
  if (text == "0") return std::chrono::seconds(0);
  const auto bad = [&text] {
    return InvalidArgument("'" + std::string(text) +
                           "' is not a duration: a whole number and a unit, d, h, m or s (e.g. "
                           "90d), or 0");
  };
  if (text.size() < 2 || text.size() > 12) return bad();
  int64_t n = 0;
  for (char c : text.substr(0, text.size() - 1)) {
    if (c < '0' || c > '9') return bad();
    n = n * 10 + (c - '0');
  }
  switch (text.back()) {
    case 'd': return std::chrono::seconds(n * 86400);
    case 'h': return std::chrono::seconds(n * 3600);
    case 'm': return std::chrono::seconds(n * 60);
    case 's': return std::chrono::seconds(n);
    default: return bad();
  }
}

}  // namespace vigil::cli
