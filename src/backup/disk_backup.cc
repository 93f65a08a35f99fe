// One disk into the repository and back (strata/backup/disk_backup.h).
//
// Both directions are small pipelines over a bounded set of chunk buffers, so reading,
// hashing and writing overlap and use more than one core (measured in
// docs/internals/backup.md: the hash and the chunk files' write, not QEMU's NBD server,
// bounded a full backup):
//   backup:  one reader (src.read, chunks in disk order) -> kWorkers hashing and storing
//            -> the calling thread, which fills the index and reports progress;
//   restore: kWorkers reading and checking chunks -> the calling thread writing them.
// Every callback (progress) and every sink write runs on the calling thread.
#include "strata/backup/disk_backup.h"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

namespace strata::backup {
namespace {

// Hashing/storing (backup) or reading/checking (restore) threads.
constexpr size_t kWorkers = 2;
// Chunks in flight at once (buffers): the reader's lead over the workers.
constexpr size_t kInFlight = kWorkers + 3;

}  // namespace

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
  std::vector<uint64_t> todo;
  for (uint64_t i = 0; i < n; ++i) {
    if (want[i]) {
      todo.push_back(i);
      total += chunk_length(out.index.size, chunk_size, i);
    } else if (out.index.chunks[i].empty()) {
      ++out.stats.zero_chunks;
    }
  }
  if (todo.empty()) return out;

  // What a worker hands back for chunk todo[k].
  struct Done {
    size_t k = 0;
    size_t buf = 0;
    bool zero = false;
    Result<Repository::PutResult> put;
  };
  std::vector<std::unique_ptr<unsigned char[]>> bufs;
  std::vector<size_t> free_bufs;
  const size_t nbufs = std::min<size_t>(kInFlight, todo.size());
  for (size_t b = 0; b < nbufs; ++b) {
    bufs.push_back(std::make_unique_for_overwrite<unsigned char[]>(chunk_size));
    free_bufs.push_back(b);
  }
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<size_t, size_t>> read_done;  // (k, buffer), disk order
  std::deque<Done> done;
  bool stop = false, reader_finished = false;
  Status read_error;

  std::thread reader([&] {
    for (size_t k = 0; k < todo.size(); ++k) {
      size_t b;
      {
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return stop || !free_bufs.empty(); });
        if (stop) break;
        b = free_bufs.back();
        free_bufs.pop_back();
      }
      const uint64_t i = todo[k];
      Status st =
          src.read(i * chunk_size, chunk_length(out.index.size, chunk_size, i), bufs[b].get());
      std::lock_guard lk(mu);
      if (!st) {
        read_error = tl::unexpected(st.error());
        stop = true;
        break;
      }
      read_done.emplace_back(k, b);
      cv.notify_all();
    }
    std::lock_guard lk(mu);
    reader_finished = true;
    cv.notify_all();
  });
  std::vector<std::thread> workers;
  for (size_t w = 0; w < kWorkers; ++w)
    workers.emplace_back([&] {
      for (;;) {
        std::pair<size_t, size_t> item;
        {
          std::unique_lock lk(mu);
          cv.wait(lk, [&] { return stop || !read_done.empty() || reader_finished; });
          if (stop || read_done.empty()) return;
          item = read_done.front();
          read_done.pop_front();
        }
        const auto [k, b] = item;
        const uint64_t len = chunk_length(out.index.size, chunk_size, todo[k]);
        Done d{k, b, all_zero(bufs[b].get(), len), Repository::PutResult{}};
        if (!d.zero) d.put = repo.put_chunk(bufs[b].get(), len, pending);
        std::lock_guard lk(mu);
        done.push_back(std::move(d));
        cv.notify_all();
      }
    });

  // The calling thread: results in any order, buffers back to the reader.
  Status failed;
  uint64_t bytes_done = 0;
  for (size_t handled = 0; handled < todo.size() && failed;) {
    Done d;
    {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return !done.empty() || !read_error; });
      if (!read_error) {
        failed = tl::unexpected(read_error.error().wrap("read disk " + disk));
        break;
      }
      d = std::move(done.front());
      done.pop_front();
      free_bufs.push_back(d.buf);
      cv.notify_all();
    }
    ++handled;
    const uint64_t i = todo[d.k];
    const uint64_t len = chunk_length(out.index.size, chunk_size, i);
    ++out.stats.chunks_read;
    out.stats.bytes_read += len;
    if (d.zero) {
      out.index.chunks[i].clear();
      ++out.stats.zero_chunks;
    } else if (!d.put) {
      failed = tl::unexpected(d.put.error());
      break;
    } else {
      out.index.chunks[i] = d.put->digest;
      if (d.put->stored) {
        ++out.stats.chunks_new;
        out.stats.bytes_new += len;
      }
    }
    bytes_done += len;
    if (progress) progress(bytes_done, total);
  }
  {
    std::lock_guard lk(mu);
    stop = true;  // also after success: the workers wait for it or the reader's end
    cv.notify_all();
  }
  reader.join();  // never leave a read into a buffer behind
  for (auto& t : workers) t.join();
  if (!failed) return tl::unexpected(failed.error());
  return out;
}

Status restore_disk(const Repository& repo, const DiskIndex& idx, DiskSink& sink,
                    const ByteProgress& progress) {
  uint64_t total = 0;
  std::vector<uint64_t> todo;
  for (uint64_t i = 0; i < idx.chunks.size(); ++i)
    if (!idx.chunks[i].empty()) {
      todo.push_back(i);
      total += chunk_length(idx.size, idx.chunk_size, i);
    }
  if (todo.empty()) return sink.flush();

  struct Got {
    uint64_t i = 0;
    Result<std::string> data;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Got> got;
  size_t next = 0;       // next todo entry a worker takes
  size_t in_flight = 0;  // taken and not yet written
  bool stop = false;
  std::vector<std::thread> workers;
  for (size_t w = 0; w < std::min(kWorkers, todo.size()); ++w)
    workers.emplace_back([&] {
      for (;;) {
        uint64_t i;
        {
          std::unique_lock lk(mu);
          cv.wait(lk, [&] { return stop || next == todo.size() || in_flight < kInFlight; });
          if (stop || next == todo.size()) return;
          i = todo[next++];
          ++in_flight;
        }
        Got g{i, repo.read_chunk(idx.chunks[i])};
        if (g.data && g.data->size() != chunk_length(idx.size, idx.chunk_size, i))
          g.data = internal_error("chunk " + std::to_string(i) + " has the wrong length");
        std::lock_guard lk(mu);
        got.push_back(std::move(g));
        cv.notify_all();
      }
    });

  Status st;
  uint64_t bytes_done = 0;
  for (size_t handled = 0; handled < todo.size() && st; ++handled) {
    Got g;
    {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return !got.empty(); });
      g = std::move(got.front());
      got.pop_front();
    }
    if (!g.data)
      st = tl::unexpected(g.data.error().wrap("disk " + idx.disk));
    else
      st = sink.write(g.i * idx.chunk_size, g.data->size(), g.data->data());
    {
      std::lock_guard lk(mu);
      --in_flight;
      cv.notify_all();
    }
    if (st) {
      bytes_done += g.data->size();
      if (progress) progress(bytes_done, total);
    }
  }
  {
    std::lock_guard lk(mu);
    stop = true;
    cv.notify_all();
  }
  for (auto& t : workers) t.join();
  if (!st) return st;
  return sink.flush();
}

}  // namespace strata::backup
