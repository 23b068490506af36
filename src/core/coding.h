// Little-endian binary encoding of numbers for Vigil's own formats (journal records, the feature
// state and the Bloom filter of a snapshot): LEB128 varints, zigzag for signed values,
// fixed-width words, length-prefixed strings.
#ifndef VIGIL_CORE_CODING_H_
#define VIGIL_CORE_CODING_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace vigil {

static_assert(std::endian::native == std::endian::little, "fixed-width words are copied as is");

inline void PutVarint(uint64_t v, std::string* out) {
  char buf[10];
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out->append(buf, n);
}

// Zigzag: small magnitudes of either sign take few bytes (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...).
inline uint64_t ZigzagEncode(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t ZigzagDecode(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}
inline void PutSignedVarint(int64_t v, std::string* out) { PutVarint(ZigzagEncode(v), out); }

template <typename T>
void PutFixed(T v, std::string* out) {
  static_assert(std::is_trivially_copyable_v<T>);
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out->append(b, sizeof(T));
}

inline void PutString(std::string_view s, std::string* out) {
  PutVarint(s.size(), out);
  out->append(s);
}

// Reads fields off the front of a buffer. A read past its end, or a varint that is overlong or
// overflows 64 bits, makes ok() false; from then on every read returns 0 and consumes nothing,
// so a decoder may check ok() once per loop rather than after each field. A decoder calls
// Fail() itself on a value it rejects.
class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}

  bool ok() const { return ok_; }
  // The bytes not read yet (after an error: not read when it happened).
  size_t remaining() const { return in_.size(); }
  void Fail() { ok_ = false; }

  uint8_t Byte() {
    if (!ok_ || in_.empty()) {
      Fail();
      return 0;
    }
    const auto b = static_cast<uint8_t>(in_.front());
    in_.remove_prefix(1);
    return b;
  }

  // One value, one encoding: a last byte of 0 after the first (an overlong varint) and bits
  // beyond the 64th are errors.
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && ok_ && !in_.empty(); shift += 7) {
      const auto b = static_cast<uint8_t>(in_.front());
      in_.remove_prefix(1);
      if (shift == 63 && b > 1) break;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        if (b == 0 && shift > 0) break;
        return v;
      }
    }
    Fail();
    return 0;
  }

  int64_t SignedVarint() { return ZigzagDecode(Varint()); }

  template <typename T>
  T Fixed() {
    static_assert(std::is_trivially_copyable_v<T>);
    T v{};
    if (!ok_ || in_.size() < sizeof(T)) {
      Fail();
      return v;
    }
    std::memcpy(&v, in_.data(), sizeof(T));
    in_.remove_prefix(sizeof(T));
    return v;
  }

  // A varint length and that many bytes (PutString's encoding) into `s`.
  void String(std::string* s) {
    const size_t n = Count(1);
    if (!ok_) return;
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
  }

  // A count of items that take at least `min_bytes` each (> 0): fails, returning 0, when the
  // rest of the buffer cannot hold that many. Check it before reserving room for them.
  size_t Count(size_t min_bytes) {
    const uint64_t n = Varint();
    if (n > in_.size() / min_bytes) {
      Fail();
      return 0;
    }
    return static_cast<size_t>(n);
  }

 private:
  std::string_view in_;
  bool ok_ = true;
};

}  // namespace vigil

#endif  // VIGIL_CORE_CODING_H_
