#include "engine/snapshot.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <system_error>

#include "core/crc32c.h"
#include "core/file_util.h"
#include "core/log.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'V', 'I', 'G', 'I', 'L', 'S', 'N', 'P'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 32;
constexpr std::string_view kSuffix = ".snap";
// A snapshot larger than this is not read (the state of 100 million transactions is smaller).
constexpr size_t kMaxSnapshotBytes = size_t{16} << 30;

template <typename T>
void Put(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // x86-64: little-endian
  out->append(b, sizeof(T));
}
template <typename T>
T Get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

std::string FileName(int64_t through) {
  char name[32];
  std::snprintf(name, sizeof name, "%020lld", static_cast<long long>(through));
  return std::string(name) + std::string(kSuffix);
}

// The snapshots in `dir`, newest first, as (through, path).
std::vector<std::pair<int64_t, std::string>> List(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != 20 + kSuffix.size() || !name.ends_with(kSuffix)) continue;
    if (!std::all_of(name.begin(), name.begin() + 20, [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    found.emplace_back(std::stoll(name.substr(0, 20)), entry.path().string());
  }
  std::sort(found.begin(), found.end(), std::greater<>());
  return found;
}

// Parses a snapshot file's bytes; the reason when it is not a whole one.
StatusOr<Snapshot> Parse(std::string_view bytes) {
  if (bytes.size() < kHeaderBytes || std::memcmp(bytes.data(), kMagic, 8) != 0) {
    return InvalidArgument("not a Vigil snapshot, or its header is torn");
  }
  const char* h = bytes.data();
  if (UnmaskCrc(Get<uint32_t>(h + 24)) != Crc32c(bytes.substr(0, 24)) ||
      Get<uint32_t>(h + 28) != 0) {
    return InvalidArgument("the header fails its checksum");
  }
  if (Get<uint32_t>(h + 8) != kVersion) return InvalidArgument("a snapshot version this build does not read");
  Snapshot s;
  const uint32_t sections = Get<uint32_t>(h + 12);
  s.through = Get<int64_t>(h + 16);
  size_t pos = kHeaderBytes;
  for (uint32_t i = 0; i < sections; ++i) {
    if (bytes.size() - pos < 12) return InvalidArgument("torn: a section header is missing");
    const uint64_t length = Get<uint64_t>(bytes.data() + pos);
    const uint32_t crc = UnmaskCrc(Get<uint32_t>(bytes.data() + pos + 8));
    pos += 12;
    if (bytes.size() - pos < length) return InvalidArgument("torn: a section ends early");
    const std::string_view body = bytes.substr(pos, length);
    if (Crc32c(body) != crc) {
      return InvalidArgument("section " + std::to_string(i) + " fails its checksum");
    }
    s.sections.emplace_back(body);
    pos += length;
  }
  if (pos != bytes.size()) return InvalidArgument("bytes after the last section");
  return s;
}

}  // namespace

Status WriteSnapshot(const std::string& dir, const Snapshot& snapshot, size_t keep) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Unavailable("snapshots: cannot create folder '" + dir + "': " + ec.message());
  std::string header(kMagic, 8);
  Put(&header, kVersion);
  Put(&header, static_cast<uint32_t>(snapshot.sections.size()));
  Put(&header, snapshot.through);
  Put(&header, MaskCrc(Crc32c(header)));
  Put(&header, uint32_t{0});
  VIGIL_ASSIGN_OR_RETURN(auto file, AtomicFile::Create(dir + "/" + FileName(snapshot.through)));
  file->Write(header);
  for (const std::string& section : snapshot.sections) {
    std::string frame;
    Put(&frame, static_cast<uint64_t>(section.size()));
    Put(&frame, MaskCrc(Crc32c(section)));
    file->Write(frame);
    file->Write(section);
  }
  VIGIL_RETURN_IF_ERROR(file->Commit());
  const auto all = List(dir);
  for (size_t i = keep; i < all.size(); ++i) fs::remove(all[i].second, ec);
  return Status::Ok();
}

StatusOr<std::optional<Snapshot>> LoadNewestSnapshot(const std::string& dir) {
  for (const auto& [through, path] : List(dir)) {
    auto bytes = ReadFile(path, kMaxSnapshotBytes);
    if (!bytes.ok()) {
      Log(LogLevel::kWarn, "snapshot unreadable; trying the one before",
          {{"path", path}, {"error", bytes.status().message()}});
      continue;
    }
    auto parsed = Parse(*bytes);
    if (!parsed.ok() || parsed->through != through) {
      Log(LogLevel::kWarn, "snapshot damaged; trying the one before",
          {{"path", path},
           {"error", parsed.ok() ? "its name and header disagree" : parsed.status().message()}});
      continue;
    }
    return std::optional<Snapshot>(std::move(*parsed));
  }
  return std::optional<Snapshot>();
}

}  // namespace vigil
