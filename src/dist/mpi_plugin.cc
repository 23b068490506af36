// libvigil_mpi.so: the MPI calls Vigil makes, behind the C interface of src/dist/mpi_api.h.
// Nothing else belongs here; the master and worker logic is in src/dist.
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstring>

#include "dist/mpi_api.h"

namespace {

int Failed(int code, const char* what, char* error, int error_len) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
    std::snprintf(text, sizeof text, "code %d", code);
  std::snprintf(error, static_cast<size_t>(error_len), "%s: %s", what, text);
  return -1;
}

int Check(int code, const char* what, char* error, int error_len) {
  return code == MPI_SUCCESS ? 0 : Failed(code, what, error, error_len);
}

int Count(long long n, int* count, char* error, int error_len) {
  if (n < 0 || n > INT_MAX) {
    std::snprintf(error, static_cast<size_t>(error_len),
                  "a message of %lld bytes is over MPI's limit", n);
    return -1;
  }
  *count = static_cast<int>(n);
  return 0;
}

int Source(int s) { return s == VIGIL_MPI_ANY ? MPI_ANY_SOURCE : s; }
int Tag(int t) { return t == VIGIL_MPI_ANY ? MPI_ANY_TAG : t; }

int Init(int* rank, int* size, char* host, int host_len, char* error, int error_len) {
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::snprintf(error, static_cast<size_t>(error_len), "MPI_Init_thread failed");
    return -1;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if (provided < MPI_THREAD_FUNNELED) {
    std::snprintf(error, static_cast<size_t>(error_len), "this MPI gives no MPI_THREAD_FUNNELED");
    return -1;
  }
  if (Check(MPI_Comm_rank(MPI_COMM_WORLD, rank), "MPI_Comm_rank", error, error_len) != 0) return -1;
  if (Check(MPI_Comm_size(MPI_COMM_WORLD, size), "MPI_Comm_size", error, error_len) != 0) return -1;
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int len = 0;
  MPI_Get_processor_name(name, &len);
  std::snprintf(host, static_cast<size_t>(host_len), "%s", name);
  return 0;
}

int Finalize(char* error, int error_len) {
  return Check(MPI_Finalize(), "MPI_Finalize", error, error_len);
}

void Abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

int Isend(const void* data, long long n, int dest, int tag, void** request, char* error,
          int error_len) {
  int count = 0;
  if (Count(n, &count, error, error_len) != 0) return -1;
  auto* r = new MPI_Request;
  if (Check(MPI_Isend(data, count, MPI_BYTE, dest, tag, MPI_COMM_WORLD, r), "MPI_Isend", error,
            error_len) != 0) {
    delete r;
    return -1;
  }
  *request = r;
  return 0;
}

int Test(void** request, int* done, char* error, int error_len) {
  auto* r = static_cast<MPI_Request*>(*request);
  *done = 0;
  if (Check(MPI_Test(r, done, MPI_STATUS_IGNORE), "MPI_Test", error, error_len) != 0) return -1;
  if (*done) {
    delete r;
    *request = nullptr;
  }
  return 0;
}

int Iprobe(int source, int tag, int* found, int* out_source, int* out_tag, long long* out_bytes,
           char* error, int error_len) {
  MPI_Status status;
  *found = 0;
  if (Check(MPI_Iprobe(Source(source), Tag(tag), MPI_COMM_WORLD, found, &status), "MPI_Iprobe",
            error, error_len) != 0) {
    return -1;
  }
  if (*found) {
    int count = 0;
    MPI_Get_count(&status, MPI_BYTE, &count);
    *out_source = status.MPI_SOURCE;
    *out_tag = status.MPI_TAG;
    *out_bytes = count;
  }
  return 0;
}

int Recv(void* data, long long n, int source, int tag, char* error, int error_len) {
  int count = 0;
  if (Count(n, &count, error, error_len) != 0) return -1;
  return Check(MPI_Recv(data, count, MPI_BYTE, source, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
               "MPI_Recv", error, error_len);
}

const char* LibraryVersion() {
  static char version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int len = 0;
  if (version[0] == '\0') MPI_Get_library_version(version, &len);
  return version;
}

const VigilMpiApi kApi = {VIGIL_MPI_API_VERSION, Init, Finalize, Abort, Isend, Test, Iprobe, Recv,
                          LibraryVersion};

}  // namespace

extern "C" const VigilMpiApi* vigil_mpi_api(void) { return &kApi; }
