#include "journal/journal.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <latch>
#include <limits>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/log.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

// The sizes journal.h documents for the on-disk format.
constexpr size_t kSegmentHeader = 32;
constexpr size_t kRecordHeader = 24;
// Record times the tests choose (µs), well before any wall-clock time a segment could get.
constexpr int64_t kT0 = 1'000'000;

// A record as written and as read back.
struct Record {
  uint64_t offset = 0;
  int64_t time_us = 0;
  std::string payload;
  bool operator==(const Record&) const = default;
};

// Without the payload bytes: a failure prints sizes, not 10 KB of binary.
void PrintTo(const Record& r, std::ostream* os) {
  *os << "{offset " << r.offset << ", time " << r.time_us << ", " << r.payload.size() << " bytes}";
}

// Bytes of every value (headers' and CRCs' lookalikes included), the same for the same seed.
std::string Payload(uint64_t seed, size_t size) {
  std::string s(size, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

// Records with offsets first, first + 1, ..., one per size, stamped kT0 + offset.
std::vector<Record> MakeRecords(uint64_t first, const std::vector<size_t>& sizes) {
  std::vector<Record> out;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const uint64_t offset = first + i;
    out.push_back({offset, kT0 + static_cast<int64_t>(offset), Payload(offset, sizes[i])});
  }
  return out;
}

// Appends `records` in one call, stamped with the first one's time.
StatusOr<uint64_t> AppendRecords(Journal& j, std::span<const Record> records) {
  std::vector<std::string_view> views;
  for (const Record& r : records) views.emplace_back(r.payload);
  return j.Append(views, records.empty() ? 0 : records.front().time_us);
}

// Appends each record on its own, checking it gets the offset it names.
void AppendEach(Journal& j, const std::vector<Record>& records) {
  for (const Record& r : records) {
    auto got = AppendRecords(j, {&r, 1});
    ASSERT_TRUE(got.ok()) << got.status().message();
    ASSERT_EQ(*got, r.offset);
  }
}

// Every record a new Reader returns from `from` on; `skipped` gets the Reader's count.
std::vector<Record> ReadRecords(Journal& j, uint64_t from = 1, uint64_t* skipped = nullptr) {
  std::vector<Record> out;
  auto reader = j.Read(from);
  EXPECT_TRUE(reader.ok()) << reader.status().message();
  if (!reader.ok()) return out;
  JournalEntry e;
  for (;;) {
    auto more = (*reader)->Next(&e);
    EXPECT_TRUE(more.ok()) << more.status().message();
    if (!more.ok() || !*more) break;
    out.push_back({e.offset, e.time_us, std::string(e.payload)});
  }
  if (skipped != nullptr) *skipped = (*reader)->skipped();
  return out;
}

std::vector<Record> Slice(const std::vector<Record>& v, size_t begin, size_t end) {
  return {v.begin() + static_cast<ptrdiff_t>(begin), v.begin() + static_cast<ptrdiff_t>(end)};
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteFile(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// Makes the file at `path` hold `bytes`, writing over it in place when it exists: in the loops
// below, far cheaper than removing and creating it where the folder's metadata is journaled
// (ext4).
void Overwrite(const fs::path& path, std::string_view bytes) {
  if (!fs::exists(path)) return WriteFile(path, bytes);
  {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(f.good()) << path;
  }
  fs::resize_file(path, bytes.size());
}

// The segment files of a journal folder, oldest first (their zero-padded names sort so).
std::vector<fs::path> SegmentFiles(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".jnl") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t FirstOffsetOf(const fs::path& segment) { return std::stoull(segment.stem().string()); }

uint64_t BytesOnDisk(const std::string& dir) {
  uint64_t total = 0;
  for (const fs::path& p : SegmentFiles(dir)) total += fs::file_size(p);
  return total;
}

// Where the records of one segment end, given the records it holds in order.
std::vector<size_t> RecordEnds(const std::vector<Record>& in_segment) {
  std::vector<size_t> ends;
  size_t pos = kSegmentHeader;
  for (const Record& r : in_segment) {
    pos += kRecordHeader + r.payload.size();
    ends.push_back(pos);
  }
  return ends;
}

// The records (of `written`, offsets 1, 2, ...) that a segment with first offset `first` holds,
// the next segment starting at `next` (0: none).
std::vector<Record> RecordsIn(const std::vector<Record>& written, uint64_t first, uint64_t next) {
  std::vector<Record> out;
  for (const Record& r : written) {
    if (r.offset >= first && (next == 0 || r.offset < next)) out.push_back(r);
  }
  return out;
}

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "journal_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    copy_ = dir_ + "_copy";
    fs::remove_all(dir_);
    fs::remove_all(copy_);
    // The journal's warnings are counted, not printed: the loops below provoke thousands.
    SetLogSink([this](std::string_view line) {
      if (line.find("cut off an incomplete record") != std::string_view::npos) ++torn_logs_;
      if (line.find("skipped a damaged record") != std::string_view::npos) ++skip_logs_;
      if (line.find("removed a segment") != std::string_view::npos) ++removed_logs_;
    });
  }
  void TearDown() override {
    SetLogSink({});
    fs::remove_all(dir_);
    fs::remove_all(copy_);
  }

  JournalOptions Options(uint64_t segment_bytes = uint64_t{64} << 20) const {
    JournalOptions o;
    o.dir = dir_;
    o.segment_bytes = segment_bytes;
    return o;
  }
  // Writes `records` to a new journal in dir_ and closes it.
  void Write(const JournalOptions& o, const std::vector<Record>& records) {
    auto j = Journal::Open(o);
    ASSERT_TRUE(j.ok()) << j.status().message();
    AppendEach(**j, records);
  }
  // Makes copy_ a copy of dir_'s segments.
  void CopyJournal() {
    fs::remove_all(copy_);
    fs::create_directories(copy_);
    for (const fs::path& p : SegmentFiles(dir_)) fs::copy_file(p, copy_ / p.filename());
  }

  std::string dir_;
  fs::path copy_;
  std::atomic<int> torn_logs_{0};
  std::atomic<int> skip_logs_{0};
  std::atomic<int> removed_logs_{0};
};

TEST_F(JournalTest, AppendsReadsAndReopens) {
  {
    auto j = Journal::Open(Options());
    ASSERT_TRUE(j.ok()) << j.status().message();
    EXPECT_EQ((*j)->first_offset(), 1u);
    EXPECT_EQ((*j)->next_offset(), 1u);
    EXPECT_TRUE(ReadRecords(**j).empty());
    std::vector<std::string_view> recs = {"one", "two", ""};
    auto first = (*j)->Append(recs, kT0);
    ASSERT_TRUE(first.ok());
    EXPECT_EQ(*first, 1u);
    EXPECT_EQ((*j)->next_offset(), 4u);
    EXPECT_EQ((*j)->first_offset(), 1u);
    EXPECT_EQ(ReadRecords(**j),
              (std::vector<Record>{{1, kT0, "one"}, {2, kT0, "two"}, {3, kT0, ""}}));
    EXPECT_EQ(ReadRecords(**j, 2), (std::vector<Record>{{2, kT0, "two"}, {3, kT0, ""}}));
    EXPECT_TRUE(ReadRecords(**j, 4).empty());
    EXPECT_EQ((*j)->size_bytes(), kSegmentHeader + 3 * kRecordHeader + 6);
    EXPECT_EQ((*j)->size_bytes(), BytesOnDisk(dir_));
    EXPECT_TRUE((*j)->Sync().ok());
    // No records: nothing happens, and the next offset is returned.
    auto none = (*j)->Append({});
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(*none, 4u);
  }
  JournalRecovery rec;
  auto j = Journal::Open(Options(), &rec);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(rec.records, 3u);
  EXPECT_EQ(rec.torn_tail_bytes, 0u);
  EXPECT_EQ(rec.skipped_records, 0u);
  EXPECT_EQ((*j)->next_offset(), 4u);
  std::string_view four = "four";
  auto got = (*j)->Append({&four, 1});  // time 0: stamped with the clock
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, 4u);
  const std::vector<Record> all = ReadRecords(**j);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all.back().payload, "four");
  EXPECT_GT(all.back().time_us, kT0);
  EXPECT_EQ(torn_logs_ + skip_logs_ + removed_logs_, 0);
}

TEST_F(JournalTest, RefusesBadOptions) {
  JournalOptions o = Options();
  o.segment_bytes = 4095;
  EXPECT_EQ(Journal::Open(o).status().code(), StatusCode::kInvalidArgument);
  o = Options();
  o.dir.clear();
  EXPECT_EQ(Journal::Open(o).status().code(), StatusCode::kInvalidArgument);
  o = Options();
  o.dir = dir_ + "/no/such/parent";
  EXPECT_FALSE(Journal::Open(o).ok());
}

// 1. A write cut short anywhere in the newest segment: Open keeps every whole record before the
// cut, and only those, and the journal goes on from there.
TEST_F(JournalTest, RecoversFromATornTailAtEveryByte) {
  const JournalOptions o = Options(16384);
  // The first nine fill the first segment (16317 bytes); the rest are the newest one's, its last
  // three a 10 KB record, an empty one and a small one.
  const std::vector<Record> written = MakeRecords(
      1, {0, 1, 23, 24, 25, 3000, 4096, 5000, 3900, 100, 7, 2500, 500, 0, 10240, 0, 301});
  ASSERT_NO_FATAL_FAILURE(Write(o, written));
  const std::vector<fs::path> segments = SegmentFiles(dir_);
  ASSERT_EQ(segments.size(), 2u);
  const uint64_t newest_first = FirstOffsetOf(segments.back());
  ASSERT_EQ(newest_first, 10u);
  const std::vector<Record> older = RecordsIn(written, 1, newest_first);
  const std::vector<Record> newest = RecordsIn(written, newest_first, 0);
  const std::vector<size_t> ends = RecordEnds(newest);
  const std::string bytes = ReadFile(segments.back());
  ASSERT_EQ(bytes.size(), ends.back());  // the format is as journal.h documents it
  ASSERT_EQ(fs::file_size(segments.front()), RecordEnds(older).back());

  // Every byte of the last three records (a cut at a record's end cuts nothing of it), and
  // random cuts anywhere in the segment, its header too.
  std::vector<size_t> cuts;
  for (size_t cut = ends[ends.size() - 4]; cut <= bytes.size(); ++cut) cuts.push_back(cut);
  std::mt19937_64 rng(20261201);
  std::uniform_int_distribution<size_t> anywhere(0, bytes.size());
  for (int i = 0; i < 300; ++i) cuts.push_back(anywhere(rng));
  for (size_t cut : {size_t{0}, size_t{1}, size_t{31}, size_t{32}, size_t{33}}) {
    cuts.push_back(cut);
  }

  CopyJournal();
  JournalOptions co = o;
  co.dir = copy_.string();
  const fs::path torn_path = copy_ / segments.back().filename();
  bool rolled = false;  // whether the last round's Append started a segment
  for (size_t cut : cuts) {
    SCOPED_TRACE(::testing::Message() << "segment cut at byte " << cut);
    // A cut inside the segment header leaves the file a crash while creating it would: Open
    // removes it, and the older segment is the newest again.
    const bool header_torn = cut < kSegmentHeader;
    size_t whole = older.size();  // records wholly before the cut
    size_t kept_end = kSegmentHeader;
    if (!header_torn) {
      for (size_t k = 0; k < newest.size() && ends[k] <= cut; ++k) {
        ++whole;
        kept_end = ends[k];
      }
    }
    const uint64_t torn_bytes = header_torn ? 0 : cut - kept_end;
    const std::vector<Record> expected = Slice(written, 0, whole);

    if (rolled) {
      for (const fs::path& p : SegmentFiles(copy_)) {
        if (FirstOffsetOf(p) >= newest_first) fs::remove(p);
      }
    }
    Overwrite(torn_path, std::string_view(bytes).substr(0, cut));
    const int torn_logs = torn_logs_;
    const Record next{whole + 1, kT0 + 5000, Payload(9000 + cut, 50)};
    {
      JournalRecovery rec;
      auto j = Journal::Open(co, &rec);
      ASSERT_TRUE(j.ok()) << j.status().message();
      EXPECT_EQ(rec.records, header_torn ? older.size() : whole - older.size());
      EXPECT_EQ(rec.torn_tail_bytes, torn_bytes);
      EXPECT_EQ(rec.skipped_records, 0u);
      EXPECT_EQ(torn_logs_ - torn_logs, torn_bytes > 0 ? 1 : 0);
      EXPECT_EQ((*j)->segments(), header_torn ? 1u : 2u);
      EXPECT_EQ((*j)->next_offset(), whole + 1);
      EXPECT_EQ((*j)->size_bytes(), BytesOnDisk(co.dir));
      EXPECT_EQ(ReadRecords(**j), expected);
      auto got = AppendRecords(**j, {&next, 1});
      ASSERT_TRUE(got.ok()) << got.status().message();
      EXPECT_EQ(*got, next.offset);
      std::vector<Record> after = expected;
      after.push_back(next);
      EXPECT_EQ(ReadRecords(**j, whole), Slice(after, whole - 1, after.size()));
      rolled = (*j)->segments() > (header_torn ? 1u : 2u);
      // The older segment, 16317 bytes, has no room for it: it stays as written for the next
      // round.
      EXPECT_EQ(rolled, header_torn);
    }
    JournalRecovery rec;
    auto j = Journal::Open(co, &rec);
    ASSERT_TRUE(j.ok()) << j.status().message();
    EXPECT_EQ(rec.torn_tail_bytes, 0u);
    EXPECT_EQ(rec.skipped_records, 0u);
    EXPECT_EQ((*j)->next_offset(), whole + 2);
    std::vector<Record> after = expected;
    after.push_back(next);
    EXPECT_EQ(ReadRecords(**j), after);
    if (HasFailure()) break;  // one cut's report is enough
  }
}

// 2. One damaged byte anywhere in a segment: nothing that differs from what was written is ever
// returned, and every record the byte is not in still is, the ones after it too.
TEST_F(JournalTest, NeverReturnsADamagedRecordAndResyncsPastIt) {
  const JournalOptions o = Options();
  const std::vector<Record> written = MakeRecords(1, {0, 5, 24, 100, 1, 37, 2});
  ASSERT_NO_FATAL_FAILURE(Write(o, written));
  const std::vector<fs::path> segments = SegmentFiles(dir_);
  ASSERT_EQ(segments.size(), 1u);
  const std::string bytes = ReadFile(segments[0]);
  const std::vector<size_t> ends = RecordEnds(written);
  ASSERT_EQ(bytes.size(), ends.back());
  const uint64_t n = written.size();

  JournalOptions co = o;
  co.dir = copy_.string();
  fs::create_directories(copy_);
  const fs::path path = copy_ / segments[0].filename();
  for (size_t pos = 0; pos < bytes.size(); ++pos) {
    for (const unsigned char mask : {0x01, 0x80, 0xff}) {
      SCOPED_TRACE(::testing::Message() << "byte " << pos << " ^ " << int{mask});
      for (const fs::path& p : SegmentFiles(copy_)) fs::remove(p);
      std::string damaged = bytes;
      damaged[pos] = static_cast<char>(damaged[pos] ^ static_cast<char>(mask));
      WriteFile(path, damaged);
      JournalRecovery rec;
      auto j = Journal::Open(co, &rec);
      if (pos < kSegmentHeader) {
        // The only segment, with its records, is not a journal's: refused, not cut off.
        EXPECT_EQ(j.status().code(), StatusCode::kInvalidArgument);
        EXPECT_TRUE(fs::exists(path));
        continue;
      }
      ASSERT_TRUE(j.ok()) << j.status().message();
      const size_t k = static_cast<size_t>(std::upper_bound(ends.begin(), ends.end(), pos) -
                                           ends.begin());  // the damaged one
      ASSERT_LT(k, n);
      // The last record, damaged, cannot be told from a torn write: it is cut off. Any other
      // is skipped, its offset left unused.
      const bool last = k + 1 == n;
      const uint64_t record_bytes = kRecordHeader + written[k].payload.size();
      EXPECT_EQ(rec.records, n - 1);
      EXPECT_EQ(rec.skipped_records, last ? 0u : 1u);
      EXPECT_EQ(rec.torn_tail_bytes, last ? record_bytes : 0u);
      std::vector<Record> expected = written;
      expected.erase(expected.begin() + static_cast<ptrdiff_t>(k));
      uint64_t skipped = 0;
      EXPECT_EQ(ReadRecords(**j, 1, &skipped), expected);
      EXPECT_EQ(skipped, last ? 0u : 1u);
      EXPECT_EQ((*j)->next_offset(), last ? n : n + 1);
      EXPECT_EQ((*j)->size_bytes(), BytesOnDisk(co.dir));
      const Record next{(*j)->next_offset(), kT0 + 100, "after the damage"};
      auto got = AppendRecords(**j, {&next, 1});
      ASSERT_TRUE(got.ok()) << got.status().message();
      EXPECT_EQ(*got, next.offset);
      expected.push_back(next);
      j->reset();
      j = Journal::Open(co, &rec);
      ASSERT_TRUE(j.ok()) << j.status().message();
      EXPECT_EQ(rec.skipped_records, last ? 0u : 1u);
      EXPECT_EQ(rec.torn_tail_bytes, 0u);
      EXPECT_EQ(ReadRecords(**j), expected);
    }
    if (HasFailure()) break;
  }
  EXPECT_GT(skip_logs_, 0);
  EXPECT_GT(torn_logs_, 0);
}

// 2b. Open checks only the newest segment's records: damage in an older one is skipped by the
// Reader that meets it.
TEST_F(JournalTest, AReaderSkipsADamagedRecordInAnOlderSegment) {
  const JournalOptions o = Options(4096);
  std::vector<size_t> sizes;
  for (size_t i = 0; i < 30; ++i) sizes.push_back((i * 211) % 900);
  const std::vector<Record> written = MakeRecords(1, sizes);
  ASSERT_NO_FATAL_FAILURE(Write(o, written));
  const std::vector<fs::path> segments = SegmentFiles(dir_);
  ASSERT_GE(segments.size(), 3u);
  const fs::path& oldest = segments[0];
  const std::vector<Record> in_oldest = RecordsIn(written, 1, FirstOffsetOf(segments[1]));
  const std::vector<size_t> ends = RecordEnds(in_oldest);
  const std::string bytes = ReadFile(oldest);
  ASSERT_EQ(bytes.size(), ends.back());

  for (size_t pos = 0; pos < bytes.size(); ++pos) {
    const unsigned char masks[] = {0x01, 0x80, 0xff};
    const unsigned char mask = masks[pos % 3];
    SCOPED_TRACE(::testing::Message() << "byte " << pos << " ^ " << int{mask});
    std::string damaged = bytes;
    damaged[pos] = static_cast<char>(damaged[pos] ^ static_cast<char>(mask));
    Overwrite(oldest, damaged);
    {
      JournalRecovery rec;
      auto j = Journal::Open(o, &rec);
      if (pos < kSegmentHeader) {
        EXPECT_EQ(j.status().code(), StatusCode::kInvalidArgument);
      } else {
        ASSERT_TRUE(j.ok()) << j.status().message();
        EXPECT_EQ(rec.skipped_records, 0u);
        EXPECT_EQ(rec.torn_tail_bytes, 0u);
        const size_t k =
            static_cast<size_t>(std::upper_bound(ends.begin(), ends.end(), pos) - ends.begin());
        ASSERT_LT(k, in_oldest.size());
        std::vector<Record> expected = written;
        expected.erase(expected.begin() + static_cast<ptrdiff_t>(k));
        uint64_t skipped = 0;
        EXPECT_EQ(ReadRecords(**j, 1, &skipped), expected);
        EXPECT_EQ(skipped, 1u);
        // A Reader from the one after it: from there on, whatever segment it starts in.
        EXPECT_EQ(ReadRecords(**j, k + 2), Slice(written, k + 1, written.size()));
        EXPECT_EQ((*j)->next_offset(), written.size() + 1);
      }
    }
    Overwrite(oldest, bytes);
    if (HasFailure()) break;
  }
}

// 3. A segment header: a torn one in the newest segment is what a crash while creating it
// leaves, and is removed; a bad one anywhere else is not a journal's, and Open refuses it.
TEST_F(JournalTest, RemovesTheNewestSegmentWhenItsHeaderIsTorn) {
  const JournalOptions o = Options(4096);
  const std::vector<Record> written = MakeRecords(1, std::vector<size_t>(20, 600));
  ASSERT_NO_FATAL_FAILURE(Write(o, written));
  const std::vector<fs::path> segments = SegmentFiles(dir_);
  ASSERT_GE(segments.size(), 3u);
  const fs::path& newest = segments.back();
  const uint64_t newest_first = FirstOffsetOf(newest);
  const uint64_t previous_first = FirstOffsetOf(segments[segments.size() - 2]);
  const std::string bytes = ReadFile(newest);
  std::vector<std::pair<fs::path, std::string>> originals;
  originals.reserve(segments.size());
  for (const fs::path& p : segments) originals.emplace_back(p, ReadFile(p));
  auto restore = [&] {
    for (const fs::path& p : SegmentFiles(dir_)) fs::remove(p);
    for (const auto& [p, b] : originals) WriteFile(p, b);
  };
  std::string flipped = bytes.substr(0, kSegmentHeader);
  flipped[20] = static_cast<char>(flipped[20] ^ 1);  // its first offset

  for (const std::string& header : {std::string(), bytes.substr(0, 1), bytes.substr(0, 8),
                                    bytes.substr(0, 20), bytes.substr(0, 31), flipped}) {
    SCOPED_TRACE(::testing::Message() << "a header of " << header.size() << " bytes");
    restore();
    WriteFile(newest, header);
    const int removed = removed_logs_;
    {
      JournalRecovery rec;
      auto j = Journal::Open(o, &rec);
      ASSERT_TRUE(j.ok()) << j.status().message();
      EXPECT_FALSE(fs::exists(newest));
      EXPECT_EQ(removed_logs_ - removed, 1);
      EXPECT_EQ((*j)->segments(), segments.size() - 1);
      EXPECT_EQ(rec.records, newest_first - previous_first);
      EXPECT_EQ(rec.torn_tail_bytes, 0u);
      EXPECT_EQ((*j)->next_offset(), newest_first);
      EXPECT_EQ(ReadRecords(**j), Slice(written, 0, newest_first - 1));
      const Record next{newest_first, kT0, "next"};
      auto got = AppendRecords(**j, {&next, 1});
      ASSERT_TRUE(got.ok());
      EXPECT_EQ(*got, newest_first);
    }
  }

  // Exactly a header, and a valid one: an empty segment, kept.
  restore();
  WriteFile(newest, bytes.substr(0, kSegmentHeader));
  {
    JournalRecovery rec;
    auto j = Journal::Open(o, &rec);
    ASSERT_TRUE(j.ok()) << j.status().message();
    EXPECT_TRUE(fs::exists(newest));
    EXPECT_EQ((*j)->segments(), segments.size());
    EXPECT_EQ(rec.records, 0u);
    EXPECT_EQ((*j)->next_offset(), newest_first);
  }
  // Longer than a header, with a bad one: records that are not a journal's; refused, kept.
  std::string bad = bytes;
  bad[0] = 'X';
  WriteFile(newest, bad);
  EXPECT_EQ(Journal::Open(o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(fs::exists(newest));
}

TEST_F(JournalTest, KeepsItsOffsetsWhenItsOnlySegmentHasATornHeader) {
  const JournalOptions o = Options(4096);
  const std::vector<Record> written = MakeRecords(1, std::vector<size_t>(20, 600));
  uint64_t newest_first = 0;
  {
    auto j = Journal::Open(o);
    ASSERT_TRUE(j.ok());
    AppendEach(**j, written);
    newest_first = FirstOffsetOf(SegmentFiles(dir_).back());
    ASSERT_GT(newest_first, 1u);
    auto dropped = (*j)->DropBefore(newest_first);
    ASSERT_TRUE(dropped.ok());
    ASSERT_EQ((*j)->segments(), 1u);
  }
  // A power loss can leave the newest segment's header unwritten after the older ones' removal
  // reached the disk. The offsets must go on, never start again at 1 (a reader that has seen
  // 1..n would take the new records for those).
  const std::vector<fs::path> segments = SegmentFiles(dir_);
  ASSERT_EQ(segments.size(), 1u);
  WriteFile(segments[0], ReadFile(segments[0]).substr(0, 10));
  {
    auto j = Journal::Open(o);
    ASSERT_TRUE(j.ok()) << j.status().message();
    EXPECT_EQ((*j)->next_offset(), newest_first);
    EXPECT_EQ((*j)->first_offset(), newest_first);
    EXPECT_TRUE(ReadRecords(**j).empty());
    const Record next{newest_first, kT0, "next"};
    auto got = AppendRecords(**j, {&next, 1});
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(*got, newest_first);
  }
  auto j = Journal::Open(o);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)->next_offset(), newest_first + 1);
  EXPECT_EQ(ReadRecords(**j), (std::vector<Record>{{newest_first, kT0, "next"}}));
}

TEST_F(JournalTest, RefusesAnOlderSegmentWithABadHeader) {
  const JournalOptions o = Options(4096);
  const std::vector<Record> written = MakeRecords(1, std::vector<size_t>(20, 600));
  ASSERT_NO_FATAL_FAILURE(Write(o, written));
  const std::vector<fs::path> segments = SegmentFiles(dir_);
  ASSERT_GE(segments.size(), 3u);
  const fs::path& older = segments[1];
  const std::string bytes = ReadFile(older);
  for (size_t pos = 0; pos < kSegmentHeader; ++pos) {
    SCOPED_TRACE(::testing::Message() << "header byte " << pos);
    std::string bad = bytes;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x10);
    WriteFile(older, bad);
    auto j = Journal::Open(o);
    EXPECT_EQ(j.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(j.status().message().find(older.filename().string()), std::string::npos)
        << j.status().message();
  }
  // Cut short: it is not the newest, so no crash while creating it explains that.
  WriteFile(older, bytes.substr(0, 20));
  EXPECT_EQ(Journal::Open(o).status().code(), StatusCode::kInvalidArgument);
  // A valid header, of another segment than the file's name says.
  WriteFile(older, ReadFile(segments[0]));
  EXPECT_EQ(Journal::Open(o).status().code(), StatusCode::kInvalidArgument);
  // Repaired, the journal opens (the refused Opens left no lock behind) with every record.
  WriteFile(older, bytes);
  auto j = Journal::Open(o);
  ASSERT_TRUE(j.ok()) << j.status().message();
  EXPECT_EQ(ReadRecords(**j), written);
}

// 4. Segments: rolled at segment_bytes, read from any offset, dropped whole.
TEST_F(JournalTest, ReadsFromEveryOffsetAcrossSegments) {
  const JournalOptions o = Options(4096);
  std::vector<size_t> sizes;
  for (size_t i = 0; i < 90; ++i) sizes.push_back(i == 40 ? 6000 : (i * 389) % 1500);
  const std::vector<Record> all = MakeRecords(1, sizes);
  {
    auto j = Journal::Open(o);
    ASSERT_TRUE(j.ok());
    // In batches of 1 to 4 records, one write each.
    std::vector<Record> written;
    for (size_t i = 0; i < all.size();) {
      const size_t n = std::min<size_t>(1 + i % 4, all.size() - i);
      std::vector<Record> batch = Slice(all, i, i + n);
      for (Record& r : batch) r.time_us = batch.front().time_us;
      auto got = AppendRecords(**j, batch);
      ASSERT_TRUE(got.ok()) << got.status().message();
      ASSERT_EQ(*got, i + 1);
      written.insert(written.end(), batch.begin(), batch.end());
      i += n;
    }
    const std::vector<fs::path> files = SegmentFiles(dir_);
    EXPECT_GT(files.size(), 10u);
    EXPECT_EQ((*j)->segments(), files.size());
    EXPECT_EQ((*j)->size_bytes(), BytesOnDisk(dir_));
    // A segment is closed once the next write would take it past segment_bytes: only one whose
    // first write alone is larger ends up larger.
    for (size_t s = 0; s < files.size(); ++s) {
      const uint64_t first = FirstOffsetOf(files[s]);
      const uint64_t next = s + 1 < files.size() ? FirstOffsetOf(files[s + 1]) : 0;
      const std::vector<Record> in = RecordsIn(written, first, next);
      ASSERT_FALSE(in.empty());
      EXPECT_EQ(fs::file_size(files[s]), RecordEnds(in).back());
      if (fs::file_size(files[s]) > o.segment_bytes) {
        EXPECT_TRUE(std::all_of(in.begin(), in.end(), [&](const Record& r) {
          return r.time_us == in.front().time_us;
        })) << files[s];
      }
    }
    for (uint64_t from = 0; from <= written.size() + 2; ++from) {
      SCOPED_TRACE(::testing::Message() << "from " << from);
      const size_t begin = std::min<size_t>(from == 0 ? 0 : from - 1, written.size());
      EXPECT_EQ(ReadRecords(**j, from), Slice(written, begin, written.size()));
      if (HasFailure()) break;
    }
    // A Reader at the end returns the records appended after it reached it.
    auto reader = (*j)->Read(1);
    ASSERT_TRUE(reader.ok());
    JournalEntry e;
    for (size_t i = 0; i < written.size(); ++i) ASSERT_TRUE(*(*reader)->Next(&e));
    EXPECT_FALSE(*(*reader)->Next(&e));
    std::vector<Record> more = MakeRecords(written.size() + 1, {3000, 3000, 10});
    ASSERT_NO_FATAL_FAILURE(AppendEach(**j, more));
    for (const Record& r : more) {
      ASSERT_TRUE(*(*reader)->Next(&e));
      EXPECT_EQ((Record{e.offset, e.time_us, std::string(e.payload)}), r);
    }
    EXPECT_FALSE(*(*reader)->Next(&e));
    EXPECT_EQ((*reader)->skipped(), 0u);
  }
  JournalRecovery rec;
  auto j = Journal::Open(o, &rec);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(rec.skipped_records + rec.torn_tail_bytes, 0u);
  EXPECT_EQ(ReadRecords(**j).size(), all.size() + 3);
  EXPECT_EQ((*j)->next_offset(), all.size() + 4);
}

TEST_F(JournalTest, AReaderSeesEveryRecordOnceWhileAnotherThreadAppends) {
  const JournalOptions o = Options(4096);
  auto opened = Journal::Open(o);
  ASSERT_TRUE(opened.ok());
  Journal& j = **opened;
  constexpr uint64_t kRecords = 3000;
  // Two to five records a segment, so that readers often reach a segment's end as it closes.
  auto size_of = [](uint64_t offset) { return static_cast<size_t>((offset * 577) % 1700); };
  std::atomic<bool> appended{false};
  // Reads from `from` until the writer is done and everything is read; `next` ends one past the
  // last offset returned, `bad` says what went wrong first.
  auto read = [&](uint64_t from, uint64_t* next, std::string* bad) {
    auto reader = j.Read(from);
    if (!reader.ok()) return;
    JournalEntry e;
    for (;;) {
      const bool last_round = appended.load();
      auto more = (*reader)->Next(&e);
      if (!more.ok()) {
        *bad = more.status().message();
        return;
      }
      if (!*more) {
        if (last_round) return;
        std::this_thread::yield();
        continue;
      }
      if (bad->empty() && e.offset != *next) {
        *bad = "offset " + std::to_string(e.offset) + " after " + std::to_string(*next - 1);
      }
      if (bad->empty() && (e.payload != Payload(e.offset, size_of(e.offset)) ||
                           e.time_us != kT0 + static_cast<int64_t>(e.offset))) {
        *bad = "offset " + std::to_string(e.offset) + " is not the record written";
      }
      *next = e.offset + 1;
    }
  };
  uint64_t next_a = 1;
  std::string bad_a;
  uint64_t next_b = kRecords / 2;
  std::string bad_b;
  std::thread reader_a([&] { read(1, &next_a, &bad_a); });
  std::thread reader_b([&] { read(kRecords / 2, &next_b, &bad_b); });
  bool append_failed = false;
  for (uint64_t offset = 1; offset <= kRecords && !append_failed; ++offset) {
    const std::string payload = Payload(offset, size_of(offset));
    std::string_view v = payload;
    auto got = j.Append({&v, 1}, kT0 + static_cast<int64_t>(offset));
    append_failed = !got.ok() || *got != offset;
    // The journal keeps closed segments open until a Sync has made them durable.
    if (offset % 500 == 0) append_failed = append_failed || !j.Sync().ok();
  }
  appended = true;
  reader_a.join();
  reader_b.join();
  EXPECT_FALSE(append_failed);
  EXPECT_GT(j.segments(), 400u);
  EXPECT_EQ(bad_a, "");
  EXPECT_EQ(next_a, kRecords + 1);
  EXPECT_EQ(bad_b, "");
  EXPECT_EQ(next_b, kRecords + 1);
}

// A Reader that has caught up with a segment's end while a record goes into that segment and the
// next one starts a new segment: it must read the first before moving on to the new segment.
TEST_F(JournalTest, AReaderAtTheEndOfASegmentReadsItsLastRecordBeforeTheNext) {
  auto opened = Journal::Open(Options(4096));
  ASSERT_TRUE(opened.ok());
  Journal& j = **opened;
  // Two records a segment (32 + 2 * 1524 bytes; a third would pass 4096).
  constexpr uint64_t kRecords = 1201;
  const std::string payload(1500, 'p');
  std::atomic<uint64_t> read_up_to{0};
  std::atomic<bool> reader_done{false};
  std::string bad;
  std::thread reader([&] {
    auto r = j.Read(1);
    JournalEntry e;
    while (r.ok() && read_up_to.load() < kRecords) {
      auto more = (*r)->Next(&e);
      if (!more.ok()) {
        bad = more.status().message();
        break;
      }
      if (!*more) {
        std::this_thread::yield();
        continue;
      }
      if (e.offset != read_up_to.load() + 1) {
        bad = "offset " + std::to_string(e.offset) + " after " + std::to_string(read_up_to);
        break;
      }
      read_up_to = e.offset;
    }
    reader_done = true;
  });
  auto append = [&] {
    std::string_view v = payload;
    return j.Append({&v, 1}, kT0).ok();
  };
  bool appended = append();  // record 1, alone in segment 1
  for (uint64_t offset = 2; appended && offset + 1 <= kRecords; offset += 2) {
    // Once the reader has read everything, and spins at the end of the segment: one more record
    // into it (offset), then one that starts the next segment (offset + 1).
    while (read_up_to.load() < offset - 1 && !reader_done.load()) std::this_thread::yield();
    appended = append() && append();
  }
  reader.join();
  EXPECT_TRUE(appended);
  EXPECT_EQ(bad, "");
  EXPECT_EQ(read_up_to.load(), kRecords);
  EXPECT_EQ(j.segments(), (kRecords + 1) / 2);
}

TEST_F(JournalTest, DropsWholeSegmentsAndNeverTheNewest) {
  const JournalOptions o = Options(4096);
  // 5 records of 724 bytes a segment; segment s (from 0) begins at 5s + 1, stamped kT0 + 5s + 1.
  const std::vector<Record> written = MakeRecords(1, std::vector<size_t>(60, 700));
  auto opened = Journal::Open(o);
  ASSERT_TRUE(opened.ok());
  Journal& j = **opened;
  AppendEach(j, written);
  std::vector<uint64_t> firsts;
  for (const fs::path& p : SegmentFiles(dir_)) firsts.push_back(FirstOffsetOf(p));
  ASSERT_EQ(firsts.size(), 12u);
  for (size_t s = 0; s < firsts.size(); ++s) ASSERT_EQ(firsts[s], 5 * s + 1);
  auto created = [&](size_t s) { return kT0 + static_cast<int64_t>(firsts[s]); };

  auto before = j.Read(1);  // in the oldest segment when it goes
  auto fresh = j.Read(1);   // not started when it goes
  auto kept = j.Read(firsts[3] + 1);
  ASSERT_TRUE(before.ok() && fresh.ok() && kept.ok());
  JournalEntry e;
  ASSERT_TRUE(*(*before)->Next(&e));
  ASSERT_TRUE(*(*before)->Next(&e));
  EXPECT_EQ(e.offset, 2u);
  ASSERT_TRUE(*(*kept)->Next(&e));
  EXPECT_EQ(e.offset, firsts[3] + 1);

  auto dropped = j.DropBefore(firsts[1] - 1);  // segment 0 still holds a record that old
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(*dropped, 0u);
  EXPECT_EQ(j.first_offset(), 1u);
  dropped = j.DropBefore(firsts[1]);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(*dropped, 1u);
  EXPECT_EQ(j.first_offset(), firsts[1]);
  dropped = j.DropBefore(firsts[2] + 2);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(*dropped, 1u);
  EXPECT_EQ(j.first_offset(), firsts[2]);
  EXPECT_EQ(j.segments(), firsts.size() - 2);
  EXPECT_EQ(SegmentFiles(dir_).size(), firsts.size() - 2);
  EXPECT_EQ(j.size_bytes(), BytesOnDisk(dir_));

  // Readers in or before what went on at the first record kept; the one past it is unaffected.
  ASSERT_TRUE(*(*before)->Next(&e));
  EXPECT_EQ(e.offset, firsts[2]);
  ASSERT_TRUE(*(*fresh)->Next(&e));
  EXPECT_EQ(e.offset, firsts[2]);
  ASSERT_TRUE(*(*kept)->Next(&e));
  EXPECT_EQ(e.offset, firsts[3] + 2);
  EXPECT_EQ(ReadRecords(j, 1), Slice(written, firsts[2] - 1, written.size()));

  // By age: a segment goes once the next one began at or before the cutoff.
  dropped = j.DropOlderThan(created(3) - 1);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(*dropped, 0u);
  dropped = j.DropOlderThan(created(3));
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(*dropped, 1u);
  EXPECT_EQ(j.first_offset(), firsts[3]);
  dropped = j.DropOlderThan(created(5) + 2);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(*dropped, 2u);
  EXPECT_EQ(j.first_offset(), firsts[5]);
  ASSERT_TRUE(*(*kept)->Next(&e));  // it was in segment 3
  EXPECT_EQ(e.offset, firsts[5]);

  // Never the newest, whatever the bound.
  dropped = j.DropBefore(std::numeric_limits<uint64_t>::max());
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(*dropped, firsts.size() - 6);
  EXPECT_EQ(j.segments(), 1u);
  dropped = j.DropOlderThan(std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(*dropped, 0u);
  dropped = j.DropBefore(std::numeric_limits<uint64_t>::max());
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(*dropped, 0u);
  EXPECT_EQ(j.first_offset(), firsts.back());
  EXPECT_EQ(ReadRecords(j, 1), Slice(written, firsts.back() - 1, written.size()));
  const Record next{written.size() + 1, kT0 + 999, "next"};
  ASSERT_NO_FATAL_FAILURE(AppendEach(j, {next}));
  opened->reset();

  auto reopened = Journal::Open(o);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->first_offset(), firsts.back());
  EXPECT_EQ((*reopened)->next_offset(), written.size() + 2);
  std::vector<Record> expected = Slice(written, firsts.back() - 1, written.size());
  expected.push_back(next);
  EXPECT_EQ(ReadRecords(**reopened), expected);
}

TEST_F(JournalTest, RollsSegmentsAndDropsOldOnes) {
  const JournalOptions o = Options(4096);
  auto j = Journal::Open(o);
  ASSERT_TRUE(j.ok());
  const std::string payload(500, 'x');
  for (int i = 0; i < 40; ++i) {
    std::string_view v = payload;
    ASSERT_TRUE((*j)->Append({&v, 1}, 1000 + i).ok());
  }
  EXPECT_GT((*j)->segments(), 4u);
  EXPECT_EQ(ReadRecords(**j).size(), 40u);
  auto dropped = (*j)->DropBefore(20);
  ASSERT_TRUE(dropped.ok());
  EXPECT_GT(*dropped, 0u);
  EXPECT_LE((*j)->first_offset(), 20u);
  EXPECT_GT((*j)->first_offset(), 1u);
  EXPECT_EQ(ReadRecords(**j, 20).size(), 21u);
  auto old = (*j)->DropOlderThan(2000);  // everything: all but the newest segment go
  ASSERT_TRUE(old.ok());
  EXPECT_EQ((*j)->segments(), 1u);
}

// 5. Sync and AfterSync.
TEST_F(JournalTest, ConcurrentSyncsAndAfterSyncsAllSucceed) {
  auto opened = Journal::Open(Options(4096));
  ASSERT_TRUE(opened.ok());
  Journal& j = **opened;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 60;
  std::latch callbacks(kThreads * kPerThread / 2);
  std::atomic<int> sync_failures{0};
  std::atomic<int> callback_failures{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string payload =
            Payload(static_cast<uint64_t>(t) * 1000 + static_cast<uint64_t>(i), 300);
        std::string_view v = payload;
        auto got = j.Append({&v, 1});
        if (!got.ok()) {
          ++sync_failures;
          if (i % 2 == 1) callbacks.count_down();
          continue;
        }
        if (i % 2 == 0) {
          if (!j.Sync().ok()) ++sync_failures;
        } else {
          j.AfterSync(*got, [&](const Status& s) {
            if (!s.ok()) ++callback_failures;
            callbacks.count_down();
          });
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  callbacks.wait();
  EXPECT_EQ(sync_failures, 0);
  EXPECT_EQ(callback_failures, 0);
  EXPECT_EQ(j.next_offset(), uint64_t{kThreads * kPerThread} + 1);
  EXPECT_EQ(ReadRecords(j).size(), size_t{kThreads * kPerThread});

  // Already synced: called at once, on this thread.
  ASSERT_TRUE(j.Sync().ok());
  for (uint64_t offset : {uint64_t{0}, uint64_t{1}, j.next_offset() - 1}) {
    bool called = false;
    Status status = Internal("not called");
    j.AfterSync(offset, [&](const Status& s) {
      called = true;
      status = s;
    });
    EXPECT_TRUE(called) << offset;
    EXPECT_TRUE(status.ok()) << offset;
  }
}

TEST_F(JournalTest, DestroyingTheJournalCallsThePendingAfterSyncs) {
  constexpr int kRecords = 200;
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  {
    auto j = Journal::Open(Options());
    ASSERT_TRUE(j.ok());
    for (int i = 0; i < kRecords; ++i) {
      std::string_view v = "x";
      auto got = (*j)->Append({&v, 1});
      ASSERT_TRUE(got.ok());
      (*j)->AfterSync(*got, [&](const Status& s) { ++(s.ok() ? ok : failed); });
    }
  }  // the destructor lets the sync thread finish its queue: none is dropped
  EXPECT_EQ(ok, kRecords);
  EXPECT_EQ(failed, 0);

  // After a reopen nothing counts as synced yet: AfterSync syncs the recovered records.
  auto j = Journal::Open(Options());
  ASSERT_TRUE(j.ok());
  std::latch done(1);
  Status status = Internal("not called");
  (*j)->AfterSync(kRecords, [&](const Status& s) {
    status = s;
    done.count_down();
  });
  done.wait();
  EXPECT_TRUE(status.ok());
}

// 6. Append errors.
TEST_F(JournalTest, ARecordOverTheLimitIsRefusedAndChangesNothing) {
  JournalOptions o = Options();
  o.max_record_bytes = 1000;
  const std::string at_limit(1000, 'a');
  const std::string over(1001, 'b');
  {
    auto j = Journal::Open(o);
    ASSERT_TRUE(j.ok());
    std::string_view first = "first";
    ASSERT_TRUE((*j)->Append({&first, 1}, kT0).ok());
    const uint64_t size = (*j)->size_bytes();
    for (const std::vector<std::string_view>& batch :
         {std::vector<std::string_view>{over}, std::vector<std::string_view>{"ok", over},
          std::vector<std::string_view>{over, "ok"}}) {
      auto got = (*j)->Append(batch, kT0);
      EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
      EXPECT_EQ((*j)->next_offset(), 2u);
      EXPECT_EQ((*j)->size_bytes(), size);
      EXPECT_EQ(BytesOnDisk(o.dir), size);
    }
    EXPECT_EQ(ReadRecords(**j), (std::vector<Record>{{1, kT0, "first"}}));
    std::string_view v = at_limit;
    auto got = (*j)->Append({&v, 1}, kT0);
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_EQ(*got, 2u);
  }
  auto j = Journal::Open(o);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(ReadRecords(**j), (std::vector<Record>{{1, kT0, "first"}, {2, kT0, at_limit}}));
}

// max_record_bytes bounds what Append takes, not what is already written: a record written under
// a higher limit is neither cut off nor skipped after a reopen with a lower one.
TEST_F(JournalTest, LoweringTheRecordLimitLosesNoRecord) {
  const std::vector<Record> written = MakeRecords(1, {3000, 10, 3000});
  ASSERT_NO_FATAL_FAILURE(Write(Options(), written));
  JournalOptions o = Options();
  o.max_record_bytes = 1000;
  JournalRecovery rec;
  auto j = Journal::Open(o, &rec);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(rec.records, 3u);
  EXPECT_EQ(rec.torn_tail_bytes, 0u);
  EXPECT_EQ(rec.skipped_records, 0u);
  uint64_t skipped = 0;
  EXPECT_EQ(ReadRecords(**j, 1, &skipped), written);
  EXPECT_EQ(skipped, 0u);
  EXPECT_EQ((*j)->next_offset(), 4u);
  std::string_view v = written[0].payload;
  EXPECT_EQ((*j)->Append({&v, 1}).status().code(), StatusCode::kInvalidArgument);
}

// A journal on a tmpfs of 256 KB, to run out of space. Mounting needs root, which the test
// machines give; without it the test fails, saying so.
class JournalDiskFullTest : public JournalTest {
 protected:
  void SetUp() override {
    JournalTest::SetUp();
    mount_ = ::testing::TempDir() + "journal_tmpfs";
    (void)std::system(("umount -q '" + mount_ + "' 2>/dev/null").c_str());  // a crashed run's
    fs::remove_all(mount_);
    fs::create_directories(mount_);
    const std::string mount = "mount -t tmpfs -o size=256k tmpfs '" + mount_ + "'";
    ASSERT_EQ(std::system(mount.c_str()), 0)
        << "cannot mount a tmpfs (`" << mount << "`): this test needs root";
    mounted_ = true;
    dir_ = mount_ + "/journal";
  }
  void TearDown() override {
    if (mounted_) {
      EXPECT_EQ(std::system(("umount '" + mount_ + "'").c_str()), 0);
    }
    fs::remove_all(mount_);
    JournalTest::TearDown();
  }

  // Appends batches of 1 to 3 records to `j` until one fails, adding those it takes to
  // `acked`; checks that the one refused changed nothing.
  void AppendUntilFull(Journal& j, std::vector<Record>* acked) {
    for (int i = 0; i < 10000; ++i) {
      const uint64_t first = acked->size() + 1;
      std::vector<size_t> sizes;
      for (uint64_t k = 0; k < 1 + first % 3; ++k) sizes.push_back(500 + (first + k) * 997 % 2600);
      std::vector<Record> batch = MakeRecords(first, sizes);
      for (Record& r : batch) r.time_us = batch.front().time_us;
      const uint64_t size = j.size_bytes();
      auto got = AppendRecords(j, batch);
      if (got.ok()) {
        ASSERT_EQ(*got, first);
        acked->insert(acked->end(), batch.begin(), batch.end());
        continue;
      }
      EXPECT_EQ(got.status().code(), StatusCode::kUnavailable) << got.status().message();
      EXPECT_EQ(j.next_offset(), first);
      // Nothing of the batch stays: at most the header of a segment it started.
      EXPECT_TRUE(j.size_bytes() == size || j.size_bytes() == size + kSegmentHeader)
          << j.size_bytes() << " after " << size;
      EXPECT_EQ(j.size_bytes(), BytesOnDisk(dir_));
      EXPECT_EQ(ReadRecords(j), *acked);
      return;
    }
    FAIL() << "the tmpfs never filled up";
  }

  std::string mount_;
  bool mounted_ = false;
};

TEST_F(JournalDiskFullTest, KeepsExactlyTheAcknowledgedRecordsWhenTheDiskIsFull) {
  const fs::path filler = fs::path(mount_) / "filler";
  WriteFile(filler, std::string(96 * 1024, 'f'));
  const JournalOptions o = Options(16384);
  std::vector<Record> acked;
  {
    auto j = Journal::Open(o);
    ASSERT_TRUE(j.ok()) << j.status().message();
    ASSERT_NO_FATAL_FAILURE(AppendUntilFull(**j, &acked));
    ASSERT_GT(acked.size(), 10u);
    // Room again: the same journal appends, no reopen needed.
    fs::remove(filler);
    const size_t full_at = acked.size();
    for (int i = 0; i < 20; ++i) {
      const Record r{acked.size() + 1, kT0 + 7, Payload(acked.size() + 1, 1500)};
      auto got = AppendRecords(**j, {&r, 1});
      ASSERT_TRUE(got.ok()) << got.status().message();
      ASSERT_EQ(*got, r.offset);
      acked.push_back(r);
    }
    EXPECT_EQ(ReadRecords(**j, full_at + 1), Slice(acked, full_at, acked.size()));
    // And full once more, then closed there.
    ASSERT_NO_FATAL_FAILURE(AppendUntilFull(**j, &acked));
  }
  JournalRecovery rec;
  auto j = Journal::Open(o, &rec);
  ASSERT_TRUE(j.ok()) << j.status().message();
  EXPECT_EQ(rec.torn_tail_bytes, 0u);
  EXPECT_EQ(rec.skipped_records, 0u);
  EXPECT_EQ((*j)->next_offset(), acked.size() + 1);
  EXPECT_EQ(ReadRecords(**j), acked);
}

// 7. One Journal per folder at a time.
TEST_F(JournalTest, SecondOpenOfTheSameFolderIsRefused) {
  auto j = Journal::Open(Options());
  ASSERT_TRUE(j.ok());
  std::string_view a = "a";
  ASSERT_TRUE((*j)->Append({&a, 1}, kT0).ok());
  auto again = Journal::Open(Options());
  EXPECT_EQ(again.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(again.status().message().find("in use"), std::string::npos);
  // The refused Open let go of nothing of the first's: refused again, and the first still works.
  EXPECT_EQ(Journal::Open(Options()).status().code(), StatusCode::kUnavailable);
  std::string_view b = "b";
  ASSERT_TRUE((*j)->Append({&b, 1}, kT0).ok());
  j->reset();
  auto reopened = Journal::Open(Options());
  ASSERT_TRUE(reopened.ok()) << reopened.status().message();
  EXPECT_EQ(ReadRecords(**reopened), (std::vector<Record>{{1, kT0, "a"}, {2, kT0, "b"}}));
}

}  // namespace
}  // namespace vigil
