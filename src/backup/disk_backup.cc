// One disk into the repository and back (strata/backup/disk_backup.h).
#include "strata/backup/disk_backup.h"

#include <future>
#include <memory>

namespace strata::backup {

Result<DiskBackupResult> backup_disk(const Repository& repo, DiskSource& src,
                                     const std::string& disk, const DiskIndex* parent,
                                     uint64_t chunk_size, const ByteProgress& progress,
                                     Repository::PendingChunks* pending) {
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
  // Two buffers: chunk k is hashed and stored while chunk k+1 is read.
  std::unique_ptr<unsigned char[]> bufs[2] = {std::make_unique<unsigned char[]>(chunk_size),
                                              std::make_unique<unsigned char[]>(chunk_size)};
  std::vector<uint64_t> todo;
  for (uint64_t i = 0; i < n; ++i) {
    if (want[i])
      todo.push_back(i);
    else if (out.index.chunks[i].empty())
      ++out.stats.zero_chunks;
  }
  auto read_at = [&](size_t k) {
    return std::async(std::launch::async, [&, k] {
      uint64_t i = todo[k];
      return src.read(i * chunk_size, chunk_length(out.index.size, chunk_size, i),
                      bufs[k % 2].get());
    });
  };
  std::future<Status> next;
  if (!todo.empty()) next = read_at(0);
  uint64_t done = 0;
  for (size_t k = 0; k < todo.size(); ++k) {
    Status got = next.get();
    if (got && k + 1 < todo.size()) next = read_at(k + 1);
    if (!got) return tl::unexpected(got.error().wrap("read disk " + disk));
    const uint64_t i = todo[k];
    const uint64_t len = chunk_length(out.index.size, chunk_size, i);
    unsigned char* buf = bufs[k % 2].get();
    ++out.stats.chunks_read;
    out.stats.bytes_read += len;
    Status stored;
    if (all_zero(buf, len)) {
      out.index.chunks[i].clear();
      ++out.stats.zero_chunks;
    } else if (auto put = repo.put_chunk(buf, len, pending); !put) {
      stored = tl::unexpected(put.error());
    } else {
      out.index.chunks[i] = put->digest;
      if (put->stored) {
        ++out.stats.chunks_new;
        out.stats.bytes_new += len;
      }
    }
    if (!stored) {
      if (next.valid()) (void)next.get();  // never leave a read into a buffer behind
      return tl::unexpected(stored.error());
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
  std::vector<uint64_t> todo;
  for (uint64_t i = 0; i < idx.chunks.size(); ++i)
    if (!idx.chunks[i].empty()) todo.push_back(i);
  auto read_at = [&](size_t k) {
    return std::async(std::launch::async, [&, k] { return repo.read_chunk(idx.chunks[todo[k]]); });
  };
  std::future<Result<std::string>> next;
  if (!todo.empty()) next = read_at(0);
  uint64_t done = 0;
  for (size_t k = 0; k < todo.size(); ++k) {
    auto data = next.get();
    if (data && k + 1 < todo.size()) next = read_at(k + 1);
    const uint64_t i = todo[k];
    Status st;
    if (!data)
      st = tl::unexpected(data.error().wrap("disk " + idx.disk));
    else if (data->size() != chunk_length(idx.size, idx.chunk_size, i))
      st = internal_error("disk " + idx.disk + ": chunk " + std::to_string(i) +
                          " has the wrong length");
    else
      st = sink.write(i * idx.chunk_size, data->size(), data->data());
    if (!st) {
      if (next.valid()) (void)next.get();
      return st;
    }
    done += data->size();
    if (progress) progress(done, total);
  }
  return sink.flush();
}

}  // namespace strata::backup
