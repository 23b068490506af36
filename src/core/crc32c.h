// CRC-32C (Castagnoli), the checksum of the journal's records and snapshots: the polynomial
// LevelDB, RocksDB, ext4 and iSCSI use, computed by the SSE 4.2 `crc32` instruction where the
// CPU has it (every x86-64 CPU since 2008), else by table.
#ifndef VIGIL_CORE_CRC32C_H_
#define VIGIL_CORE_CRC32C_H_

#include <cstdint>
#include <string_view>

namespace vigil {

// The CRC-32C of `bytes`, or, given the value a previous call returned, its continuation:
// Crc32c(b, Crc32c(a)) == Crc32c(a + b). Crc32c("123456789") == 0xE3069283.
uint32_t Crc32c(std::string_view bytes, uint32_t crc = 0);

// A CRC stored beside the data it covers is masked (LevelDB's rotation and constant), so that
// the CRC of a record holding CRCs of its own does not degenerate.
inline uint32_t MaskCrc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
inline uint32_t UnmaskCrc(uint32_t masked) {
  const uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

}  // namespace vigil

#endif  // VIGIL_CORE_CRC32C_H_
