// One disk into the repository and back (strata/backup/disk_backup.h).
#include "strata/backup/disk_backup.h"

#include <memory>

namespace strata::backup {

Result<DiskBackupResult> backup_disk(const Repository& repo, DiskSource& src,
                                     const std::string& disk, const DiskIndex* parent,
                                     uint64_t chunk_size, const ByteProgress& progress) {
  if (auto s = validate_disk_name(disk); !s) return tl::unexpected(s.error());
  DiskBackupResult out;
  out.index.disk = disk;
  out.index.size = src.size();
  out.index.chunk_size = chunk_size;
  const uint64_t n = chunk_count(out.index.size, chunk_size);
  std::vector<bool> want;
  if (parent) {
    if (parent->size != out.index.size || parent->chunk_size != chunk_size ||
        parent->chunks.size() != n)
      return make_error(ErrorCode::failed_precondition,
                        "disk " + disk + " changed size since the parent backup: a full is needed");
    auto dirty = src.dirty_extents();
    if (!dirty) return tl::unexpected(dirty.error().wrap("dirty extents of disk " + disk));
    want = chunks_touched(out.index.size, chunk_size, *dirty);
    out.index.chunks = parent->chunks;
  } else {
    auto data = src.data_extents();
    if (!data) return tl::unexpected(data.error().wrap("allocated extents of disk " + disk));
    want = chunks_touched(out.index.size, chunk_size, *data);
    out.index.chunks.assign(n, "");
  }
  uint64_t total = 0;
  for (uint64_t i = 0; i < n; ++i)
    if (want[i]) total += chunk_length(out.index.size, chunk_size, i);
  auto buf = std::make_unique<unsigned char[]>(chunk_size);
  uint64_t done = 0;
  for (uint64_t i = 0; i < n; ++i) {
    if (!want[i]) {
      if (out.index.chunks[i].empty()) ++out.stats.zero_chunks;
      continue;
    }
    const uint64_t len = chunk_length(out.index.size, chunk_size, i);
    if (auto s = src.read(i * chunk_size, len, buf.get()); !s)
      return tl::unexpected(s.error().wrap("read disk " + disk));
    ++out.stats.chunks_read;
    out.stats.bytes_read += len;
    if (all_zero(buf.get(), len)) {
      out.index.chunks[i].clear();
      ++out.stats.zero_chunks;
    } else {
      auto put = repo.put_chunk(buf.get(), len);
      if (!put) return tl::unexpected(put.error());
      out.index.chunks[i] = put->digest;
      if (put->stored) {
        ++out.stats.chunks_new;
        out.stats.bytes_new += len;
      }
    }
    done += len;
    if (progress) progress(done, total);
  }
  return out;
}

Status restore_disk(const Repository& repo, const DiskIndex& idx, DiskSink& sink,
                    const ByteProgress& progress) {
  uint64_t total = 0;
  for (uint64_t i = 0; i < idx.chunks.size(); ++i)
    if (!idx.chunks[i].empty()) total += chunk_length(idx.size, idx.chunk_size, i);
  uint64_t done = 0;
  for (uint64_t i = 0; i < idx.chunks.size(); ++i) {
    if (idx.chunks[i].empty()) continue;
    auto data = repo.read_chunk(idx.chunks[i]);
    if (!data) return tl::unexpected(data.error().wrap("disk " + idx.disk));
    if (data->size() != chunk_length(idx.size, idx.chunk_size, i))
      return internal_error("disk " + idx.disk + ": chunk " + std::to_string(i) +
                            " has the wrong length");
    if (auto s = sink.write(i * idx.chunk_size, data->size(), data->data()); !s) return s;
    done += data->size();
    if (progress) progress(done, total);
  }
  return sink.flush();
}

}  // namespace strata::backup
