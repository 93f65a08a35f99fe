// Backing up one disk into a repository and restoring it (docs/internals/backup.md):
// which chunks to read (all data for a full, the dirty ones for an incremental), hashing,
// deduplicated storage, and the index. The disk is read and written through small
// interfaces: NBD in the product (strata/backup/nbd.h), memory in unit tests.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "strata/backup/index.h"
#include "strata/backup/repository.h"
#include "strata/common/error.h"

namespace strata::backup {

class DiskSource {
 public:
  virtual ~DiskSource() = default;
  virtual uint64_t size() const = 0;
  // Extents that may hold data (everything else reads as zeros).
  virtual Result<std::vector<Extent>> data_extents() = 0;
  // Extents written since the parent backup (incremental only).
  virtual Result<std::vector<Extent>> dirty_extents() = 0;
  virtual Status read(uint64_t offset, size_t length, void* buf) = 0;
};

class DiskSink {
 public:
  virtual ~DiskSink() = default;
  virtual Status write(uint64_t offset, size_t length, const void* buf) = 0;
  virtual Status flush() = 0;
};

struct DiskBackupStats {
  uint64_t chunks_read = 0;
  uint64_t bytes_read = 0;
  uint64_t chunks_new = 0;  // stored by this backup (not deduplicated)
  uint64_t bytes_new = 0;
  uint64_t zero_chunks = 0;
};

struct DiskBackupResult {
  DiskIndex index;
  DiskBackupStats stats;
};

// Called after each chunk with the bytes done and the bytes this disk will read.
using ByteProgress = std::function<void(uint64_t done, uint64_t total)>;

// Full when `parent` is null: reads every chunk a data extent touches. Incremental: reads
// every chunk a dirty extent touches, the others keep the parent's digest; the parent must
// have the same size and chunk size (failed_precondition otherwise: do a full). One thread
// reads chunks in disk order (src.read: one call at a time) a few chunks ahead of two
// threads hashing and storing them; `progress` runs on the calling thread. New chunks go
// to `pending` when given (Repository::commit names them).
Result<DiskBackupResult> backup_disk(const Repository& repo, DiskSource& src,
                                     const std::string& disk, const DiskIndex* parent,
                                     uint64_t chunk_size = kDefaultChunkSize,
                                     const ByteProgress& progress = {},
                                     Repository::PendingChunks* pending = nullptr);

// Writes every non-zero chunk of `idx` to `sink` (each checked against its digest; zero
// chunks are skipped: the sink must read zeros where nothing is written), then flushes.
// Two threads read and check chunks a few ahead while the calling thread writes them, in
// any order (sink.write and `progress` run on the calling thread only).
Status restore_disk(const Repository& repo, const DiskIndex& idx, DiskSink& sink,
                    const ByteProgress& progress = {});

}  // namespace strata::backup
