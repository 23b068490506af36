// The C interface between Vigil and its MPI plugin (libvigil_mpi.so, from mpi_plugin.cc).
//
// The `vigil` binary does not link MPI: it starts on a machine without OpenMPI, and loads the
// plugin (which links libmpi) only when a launcher started it (src/dist/mpi_runtime.h). The
// plugin is these few calls and nothing of Vigil's, so no code exists twice in the process.
// Plain C types only: no mpi.h here.
#ifndef VIGIL_DIST_MPI_API_H_
#define VIGIL_DIST_MPI_API_H_

#ifdef __cplusplus
extern "C" {
#endif

#define VIGIL_MPI_API_VERSION 1
#define VIGIL_MPI_ANY (-1)  // any source, or any tag

// Every call returns 0 on success, or -1 after writing a message into the caller's buffer of
// `error_len` bytes (the plugin sets MPI_ERRORS_RETURN, so MPI's errors come back here).
struct VigilMpiApi {
  int version;  // VIGIL_MPI_API_VERSION
  // MPI_Init_thread(MPI_THREAD_FUNNELED): only the thread that called init calls MPI.
  int (*init)(int* rank, int* size, char* host, int host_len, char* error, int error_len);
  int (*finalize)(char* error, int error_len);
  // MPI_Abort(MPI_COMM_WORLD, code): ends every rank of the job.
  void (*abort)(int code);
  // A non-blocking send of n bytes; the buffer must live until test reports it done.
  int (*isend)(const void* data, long long n, int dest, int tag, void** request, char* error,
               int error_len);
  // *done = 1 once the send completed (the request is then freed).
  int (*test)(void** request, int* done, char* error, int error_len);
  // *found = 1 and the envelope when a message from `source` with `tag` waits.
  int (*iprobe)(int source, int tag, int* found, int* out_source, int* out_tag,
                long long* out_bytes, char* error, int error_len);
  // Receives the message iprobe announced.
  int (*recv)(void* data, long long n, int source, int tag, char* error, int error_len);
  // "Open MPI v4.1.4, ..." (MPI_Get_library_version), for the logs.
  const char* (*library_version)(void);
};

// The plugin's one symbol.
const struct VigilMpiApi* vigil_mpi_api(void);

#ifdef __cplusplus
}
#endif

#endif  // VIGIL_DIST_MPI_API_H_
