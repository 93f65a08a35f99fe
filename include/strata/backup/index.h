// The pure half of backups (docs/internals/backup.md): chunk arithmetic, which chunks a
// backup must read, and the per-disk index (ordered chunk digests, "" for a zero chunk)
// with its JSON form. No I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "strata/common/error.h"

namespace strata::backup {

// 4 MiB, as Proxmox Backup Server's fixed index for VM images (the reasoning is in
// docs/internals/backup.md).
inline constexpr uint64_t kDefaultChunkSize = 4ull << 20;

struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// Number of chunks of a disk of `size` bytes (the last one may be short).
uint64_t chunk_count(uint64_t size, uint64_t chunk_size);
// Length of chunk `i` (chunk_size, or the remainder for the last).
uint64_t chunk_length(uint64_t size, uint64_t chunk_size, uint64_t i);

// Marks every chunk that one of `extents` overlaps (extents past `size` are clipped).
std::vector<bool> chunks_touched(uint64_t size, uint64_t chunk_size,
                                 const std::vector<Extent>& extents);

// True when all `n` bytes are zero.
bool all_zero(const void* data, size_t n);

// The index of one disk in one backup. `chunks[i]` is the id of chunk i (its sha256 hex;
// in an encrypted repository its HMAC-SHA256 hex), or "" when the chunk is all zeros
// (never stored).
struct DiskIndex {
  std::string disk;
  uint64_t size = 0;
  uint64_t chunk_size = kDefaultChunkSize;
  std::vector<std::string> chunks;
};

nlohmann::json to_json(const DiskIndex& idx);
// Validates everything: version 1, a disk name, size and a power-of-two chunk_size of at
// least 64 KiB, exactly chunk_count entries, each "" or 64 lowercase hex characters.
Result<DiskIndex> parse_index(const nlohmann::json& j);

// Backup ids name folders: 1-64 of [a-z0-9-], starting with a letter or digit.
Status validate_backup_id(std::string_view id);

}  // namespace strata::backup
