#include "dist/mpi_runtime.h"

#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "core/log.h"
#include "dist/mpi_api.h"

namespace vigil::dist {
namespace {

constexpr int kErrorLen = 512;
static_assert(kAnySource == VIGIL_MPI_ANY);

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return *end == '\0' && n >= 0 && n < (1 << 24) ? static_cast<int>(n) : fallback;
}

std::string PluginPath() {
  if (const char* p = std::getenv("VIGIL_MPI_PLUGIN"); p != nullptr && *p != '\0') return p;
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "libvigil_mpi.so";
  return (exe.parent_path() / "libvigil_mpi.so").string();
}

}  // namespace

Launcher DetectLauncher() {
  // {variable that names the size or rank, rank variable, size variable}
  static constexpr const char* kVariables[][3] = {
      {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},  // Open MPI
      {"PMIX_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE"},                        // PMIx (srun)
      {"PMI_RANK", "PMI_RANK", "PMI_SIZE"},                                      // MPICH, Hydra
      {"PMI_SIZE", "PMI_RANK", "PMI_SIZE"},
      {"MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"},  // MVAPICH
      {"MPICH_INTERFACE_HOSTNAME", "PMI_RANK", "PMI_SIZE"},
  };
  Launcher l;
  for (const auto& v : kVariables) {
    if (std::getenv(v[0]) == nullptr) continue;
    l.present = true;
    l.variable = v[0];
    l.rank = EnvInt(v[1], -1);
    l.size = EnvInt(v[2], -1);
    break;
  }
  return l;
}

StatusOr<std::unique_ptr<Mpi>> Mpi::Init() {
  const std::string path = PluginPath();
  // RTLD_GLOBAL: Open MPI loads its own components with dlopen, and they need libmpi's symbols.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    Log(LogLevel::kWarn, "mpi_plugin_not_loaded",
        {{"plugin", path}, {"error", why == nullptr ? "" : why}});
    return Unavailable(
        "the MPI plugin did not load (is OpenMPI installed? openmpi-bin, libopenmpi3); the log has "
        "the details");
  }
  using Entry = const VigilMpiApi* (*)();
  auto entry = reinterpret_cast<Entry>(dlsym(handle, "vigil_mpi_api"));
  const VigilMpiApi* api = entry == nullptr ? nullptr : entry();
  if (api == nullptr || api->version != VIGIL_MPI_API_VERSION) {
    return Unavailable("the MPI plugin is not this Vigil's: rebuild it with this binary");
  }
  std::unique_ptr<Mpi> mpi(new Mpi(api));
  char host[256] = {}, error[kErrorLen] = {};
  if (api->init(&mpi->rank_, &mpi->size_, host, sizeof host, error, kErrorLen) != 0) {
    return Unavailable(std::string("MPI did not initialise: ") + error);
  }
  mpi->host_ = host;
  return mpi;
}

Mpi::~Mpi() {
  if (Status st = FlushSends(); !st.ok())
    Log(LogLevel::kWarn, "mpi_flush_failed", {{"error", st.message()}});
  char error[kErrorLen] = {};
  if (api_->finalize(error, kErrorLen) != 0)
    Log(LogLevel::kWarn, "mpi_finalize_failed", {{"error", error}});
}

std::string Mpi::library_version() const {
  std::string v = api_->library_version();
  if (const size_t comma = v.find(','); comma != std::string::npos) v.resize(comma);
  return v;
}

Status Mpi::Send(int dest, int tag, std::string bytes) {
  auto p = std::make_unique<Pending>(Pending{nullptr, std::move(bytes)});
  char error[kErrorLen] = {};
  if (api_->isend(p->bytes.data(), static_cast<long long>(p->bytes.size()), dest, tag, &p->request,
                  error, kErrorLen) != 0) {
    return Unavailable(std::string("sending to rank ") + std::to_string(dest) + ": " + error);
  }
  pending_.push_back(std::move(p));
  return ProgressSends();
}

Status Mpi::ProgressSends() {
  char error[kErrorLen] = {};
  for (size_t i = 0; i < pending_.size();) {
    int done = 0;
    if (api_->test(&pending_[i]->request, &done, error, kErrorLen) != 0) return Unavailable(error);
    if (done) {
      pending_[i] = std::move(pending_.back());
      pending_.pop_back();
    } else {
      ++i;
    }
  }
  return Status::Ok();
}

StatusOr<std::optional<MpiMessage>> Mpi::TryReceive(int source) {
  char error[kErrorLen] = {};
  VIGIL_RETURN_IF_ERROR(ProgressSends());
  int found = 0, from = 0, tag = 0;
  long long bytes = 0;
  if (api_->iprobe(source, VIGIL_MPI_ANY, &found, &from, &tag, &bytes, error, kErrorLen) != 0) {
    return Unavailable(error);
  }
  if (!found) return std::optional<MpiMessage>();
  MpiMessage m{from, tag, std::string(static_cast<size_t>(bytes), '\0')};
  if (api_->recv(m.bytes.data(), bytes, from, tag, error, kErrorLen) != 0) {
    return Unavailable(error);
  }
  return std::optional<MpiMessage>(std::move(m));
}

StatusOr<MpiMessage> Mpi::Receive(int source) {
  // Spin briefly (a reply often follows at once), then sleep, longer and longer up to 1 ms: an
  // idle master or worker then costs next to no CPU, where MPI's own blocking calls poll a core.
  auto sleep = std::chrono::microseconds(0);
  for (int spins = 0;; ++spins) {
    VIGIL_ASSIGN_OR_RETURN(std::optional<MpiMessage> m, TryReceive(source));
    if (m.has_value()) return std::move(*m);
    if (spins < 200) continue;
    sleep = std::min(std::chrono::microseconds(1000), sleep + std::chrono::microseconds(20));
    std::this_thread::sleep_for(sleep);
  }
}

Status Mpi::FlushSends() {
  auto sleep = std::chrono::microseconds(0);
  for (;;) {
    VIGIL_RETURN_IF_ERROR(ProgressSends());
    if (pending_.empty()) return Status::Ok();
    sleep = std::min(std::chrono::microseconds(1000), sleep + std::chrono::microseconds(20));
    std::this_thread::sleep_for(sleep);
  }
}

void Mpi::Abort(int code) {
  api_->abort(code);
  std::_Exit(code);
}

}  // namespace vigil::dist
