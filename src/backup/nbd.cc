// libnbd clients for backups (strata/backup/nbd.h).
#include "strata/backup/nbd.h"

#include <fcntl.h>
#include <libnbd.h>
#include <unistd.h>

#include <algorithm>

namespace strata::backup {
namespace {

tl::unexpected<Error> nbd_error(const std::string& what) {
  const char* e = nbd_get_error();
  return unavailable("nbd " + what + ": " + (e ? e : "unknown error"));
}

// Block status is asked in steps of at most 1 GiB (NBD counts are 32-bit).
constexpr uint64_t kStatusStep = 1ull << 30;
// Reads and writes are split into pieces of this size, all in flight at once: QEMU's
// NBD server serves concurrent requests in parallel coroutines, one 4 MiB request
// mostly serially.
constexpr uint64_t kPiece = 512 << 10;
// A restore starts the image's writeback after this many bytes written.
constexpr uint64_t kKickEvery = 64ull << 20;

// Runs `issue(offset, length, ptr)` for each piece of [0, length) and waits for all.
template <class Issue>
Status in_flight(nbd_handle* h, size_t length, const char* what, Issue issue) {
  std::vector<int64_t> cookies;
  for (size_t off = 0; off < length; off += kPiece) {
    int64_t c = issue(off, std::min<size_t>(kPiece, length - off));
    if (c == -1) return nbd_error(what);
    cookies.push_back(c);
  }
  for (int64_t c : cookies) {
    for (;;) {
      int r = nbd_aio_command_completed(h, static_cast<uint64_t>(c));
      if (r == 1) break;
      if (r == -1) {
        // Drain the rest so no request writes into the caller's buffer later.
        auto err = nbd_error(what);
        for (int64_t o : cookies)
          while (nbd_aio_command_completed(h, static_cast<uint64_t>(o)) == 0 &&
                 nbd_poll(h, -1) != -1) {
          }
        return err;
      }
      if (nbd_poll(h, -1) == -1) return nbd_error(what);
    }
  }
  return {};
}

struct ExtentCollector {
  std::string context;
  uint32_t mask = 0, value = 0;
  uint64_t reached = 0;  // end of the last entry seen for `context`
  std::vector<Extent>* out = nullptr;
};

int on_extents(void* user, const char* metacontext, uint64_t offset, uint32_t* entries,
               size_t nr_entries, int* /*error*/) {
  auto* c = static_cast<ExtentCollector*>(user);
  if (c->context != metacontext) return 0;
  for (size_t i = 0; i + 1 < nr_entries; i += 2) {
    uint64_t len = entries[i];
    uint32_t flags = entries[i + 1];
    if ((flags & c->mask) == c->value) {
      if (!c->out->empty() && c->out->back().offset + c->out->back().length == offset)
        c->out->back().length += len;
      else
        c->out->push_back({offset, len});
    }
    offset += len;
  }
  c->reached = offset;
  return 0;
}

}  // namespace

Result<std::unique_ptr<NbdSource>> NbdSource::prepare(const std::string& bitmap) {
  std::unique_ptr<NbdSource> s(new NbdSource());
  s->h_ = nbd_create();
  if (!s->h_) return nbd_error("create");
  // Every byte of a read buffer is overwritten by the reply (or the read fails): libnbd
  // need not zero it first (1 GiB of memset per GiB read otherwise).
  if (nbd_set_pread_initialize(s->h_, false) == -1) return nbd_error("pread initialize");
  if (nbd_add_meta_context(s->h_, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1)
    return nbd_error("meta context");
  if (!bitmap.empty()) {
    s->bitmap_context_ = "qemu:dirty-bitmap:" + bitmap;
    if (nbd_add_meta_context(s->h_, s->bitmap_context_.c_str()) == -1)
      return nbd_error("meta context");
  }
  return s;
}

Status NbdSource::connected() {
  int64_t size = nbd_get_size(h_);
  if (size < 0) return nbd_error("size");
  size_ = static_cast<uint64_t>(size);
  if (nbd_can_meta_context(h_, LIBNBD_CONTEXT_BASE_ALLOCATION) != 1)
    return make_error(ErrorCode::failed_precondition, "NBD export lacks base:allocation");
  if (!bitmap_context_.empty() && nbd_can_meta_context(h_, bitmap_context_.c_str()) != 1)
    return make_error(ErrorCode::failed_precondition,
                      "NBD export lacks the dirty bitmap " +
                          bitmap_context_.substr(std::string_view("qemu:dirty-bitmap:").size()));
  return {};
}

Result<std::unique_ptr<NbdSource>> NbdSource::connect_unix(const std::string& socket,
                                                           const std::string& export_name,
                                                           const std::string& bitmap) {
  auto s = prepare(bitmap);
  if (!s) return s;
  if (nbd_set_export_name((*s)->h_, export_name.c_str()) == -1) return nbd_error("export name");
  if (nbd_connect_unix((*s)->h_, socket.c_str()) == -1) return nbd_error("connect " + socket);
  if (auto st = (*s)->connected(); !st) return tl::unexpected(st.error());
  return s;
}

Result<std::unique_ptr<NbdSource>> NbdSource::serve_image(const std::string& qemu_nbd,
                                                          const std::string& path,
                                                          const std::string& format,
                                                          const std::string& bitmap) {
  if (format != "qcow2" && format != "raw") return invalid_argument("format", "qcow2 or raw");
  auto s = prepare(bitmap);
  if (!s) return s;
  std::vector<std::string> args = {qemu_nbd, "--read-only", "-f", format};
  if (!bitmap.empty()) {
    args.push_back("-B");
    args.push_back(bitmap);
  }
  args.push_back(path);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (nbd_connect_systemd_socket_activation((*s)->h_, argv.data()) == -1)
    return nbd_error("start qemu-nbd for " + path);
  if (auto st = (*s)->connected(); !st) return tl::unexpected(st.error());
  return s;
}

NbdSource::~NbdSource() {
  if (h_) {
    (void)nbd_shutdown(h_, 0);
    nbd_close(h_);
  }
}

Result<std::vector<Extent>> NbdSource::extents(const std::string& context, uint32_t mask,
                                               uint32_t value) {
  std::vector<Extent> out;
  ExtentCollector c{context, mask, value, 0, &out};
  uint64_t off = 0;
  while (off < size_) {
    uint64_t count = std::min(kStatusStep, size_ - off);
    c.reached = off;
    nbd_extent_callback cb{on_extents, &c, nullptr};
    if (nbd_block_status(h_, count, off, cb, 0) == -1) return nbd_error("block status");
    if (c.reached <= off) return internal_error("nbd block status made no progress");
    off = std::min(c.reached, size_);
  }
  for (auto& e : out)
    if (e.offset + e.length > size_) e.length = size_ - e.offset;
  return out;
}

Result<std::vector<Extent>> NbdSource::data_extents() {
  // base:allocation: bit 1 (ZERO) set means the range reads as zeros.
  return extents(LIBNBD_CONTEXT_BASE_ALLOCATION, LIBNBD_STATE_ZERO, 0);
}

Result<std::vector<Extent>> NbdSource::dirty_extents() {
  if (bitmap_context_.empty())
    return make_error(ErrorCode::failed_precondition, "no dirty bitmap exported");
  // qemu:dirty-bitmap: bit 0 set means dirty.
  return extents(bitmap_context_, 1, 1);
}

Status NbdSource::read(uint64_t offset, size_t length, void* buf) {
  auto* p = static_cast<char*>(buf);
  return in_flight(h_, length, "read", [&](size_t off, size_t len) {
    return nbd_aio_pread(h_, p + off, len, offset + off, NBD_NULL_COMPLETION, 0);
  });
}

Result<std::unique_ptr<NbdImageSink>> NbdImageSink::open(const std::string& qemu_nbd,
                                                         const std::string& path,
                                                         const std::string& format) {
  if (format != "qcow2" && format != "raw") return invalid_argument("format", "qcow2 or raw");
  std::unique_ptr<NbdImageSink> s(new NbdImageSink());
  s->h_ = nbd_create();
  if (!s->h_) return nbd_error("create");
  // Writeback cache in qemu-nbd; flush() makes the image durable at the end.
  std::vector<std::string> args = {
      qemu_nbd, "-f", format, "--cache=writeback", "--aio=threads", "--discard=unmap", path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (nbd_connect_systemd_socket_activation(s->h_, argv.data()) == -1)
    return nbd_error("start qemu-nbd for " + path);
  int64_t size = nbd_get_size(s->h_);
  if (size < 0) return nbd_error("size");
  s->size_ = static_cast<uint64_t>(size);
  // Advisory (writeback starts later without it): a failure here is not an error.
  s->image_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  return s;
}

NbdImageSink::~NbdImageSink() {
  if (h_) {
    (void)nbd_shutdown(h_, 0);
    nbd_close(h_);  // also reaps the qemu-nbd it started
  }
  if (image_fd_ >= 0) ::close(image_fd_);
}

Status NbdImageSink::write(uint64_t offset, size_t length, const void* buf) {
  if (offset + length > size_) return internal_error("restore write past the image's end");
  const auto* p = static_cast<const char*>(buf);
  auto st = in_flight(h_, length, "write", [&](size_t off, size_t len) {
    return nbd_aio_pwrite(h_, p + off, len, offset + off, NBD_NULL_COMPLETION, 0);
  });
  unkicked_ += length;
  if (st && image_fd_ >= 0 && unkicked_ >= kKickEvery) {
    (void)::sync_file_range(image_fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
    unkicked_ = 0;
  }
  return st;
}

Status NbdImageSink::flush() {
  if (nbd_flush(h_, 0) == -1) return nbd_error("flush");
  return {};
}

}  // namespace strata::backup
