// MPI for Vigil's ranks, loaded at run time: the `vigil` binary links no MPI, so it starts on
// machines without OpenMPI, and only a process a launcher started loads the plugin.
#ifndef VIGIL_DIST_MPI_RUNTIME_H_
#define VIGIL_DIST_MPI_RUNTIME_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vigil/status.h"

struct VigilMpiApi;

namespace vigil::dist {

// What the environment says of a launcher (mpirun, mpiexec, srun): the variables Open MPI, PMIx,
// MPICH/Hydra and MVAPICH set for each process they start.
struct Launcher {
  bool present = false;
  std::string variable;  // the one that said so, e.g. "OMPI_COMM_WORLD_SIZE"
  int rank = 0;          // as the environment gives it (-1: unknown)
  int size = 1;          // (-1: unknown)
};
Launcher DetectLauncher();

// Receive(kAnySource): a message from any rank.
inline constexpr int kAnySource = -1;

// One message received.
struct MpiMessage {
  int source = 0;
  int tag = 0;
  std::string bytes;
};

// MPI_COMM_WORLD through the plugin. Not thread-safe: one thread makes every call.
class Mpi {
 public:
  // Loads the plugin ($VIGIL_MPI_PLUGIN, or libvigil_mpi.so beside the executable) and
  // initialises MPI. Unavailable, with the reason, when the plugin or libmpi cannot be loaded.
  static StatusOr<std::unique_ptr<Mpi>> Init();
  // Waits for the sends in flight, then MPI_Finalize.
  ~Mpi();
  Mpi(const Mpi&) = delete;
  Mpi& operator=(const Mpi&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& host() const { return host_; }
  std::string library_version() const;

  // Sends `bytes` without waiting for the receiver; the bytes are kept until the send is done.
  Status Send(int dest, int tag, std::string bytes);
  // The next message from `source` (or kAnySource), waiting for it. Waiting sleeps (after
  // a short spin) instead of polling a core: ranks may share cores with each other.
  StatusOr<MpiMessage> Receive(int source);
  // The next message from `source` (or kAnySource) if one has come, without waiting.
  StatusOr<std::optional<MpiMessage>> TryReceive(int source);
  // Waits until every send made is done.
  Status FlushSends();
  // Ends every rank of the job (MPI_Abort); does not return.
  [[noreturn]] void Abort(int code);

 private:
  struct Pending {
    void* request;
    std::string bytes;
  };
  explicit Mpi(const VigilMpiApi* api) : api_(api) {}
  Status ProgressSends();
  const VigilMpiApi* api_;
  int rank_ = 0, size_ = 1;
  std::string host_;
  std::vector<std::unique_ptr<Pending>> pending_;
};

}  // namespace vigil::dist

#endif  // VIGIL_DIST_MPI_RUNTIME_H_
