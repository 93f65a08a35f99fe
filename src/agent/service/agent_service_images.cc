// AgentService: images pushed by the manager's catalog (PutImage, client streaming).
// Bytes go to a temp file under the image store's tmp/ folder; size and sha256 are
// checked before the store imports it (qemu-img info, backing files refused) and renames
// it into place, so a partial or corrupted upload never appears under a name.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "strata/agent/service/agent_service.h"
#include "strata/common/log.h"
#include "strata/common/random.h"
#include "strata/common/sha256.h"
#include "strata/model/validation.h"
#include "strata/wire/status.h"
#include "strata/wire/vm_status.h"

namespace strata::agent::service {

namespace {

auto images_log() {
  static auto l = logger("agent.images");
  return l;
}

// An O_EXCL temp file removed on destruction unless released.
class TempFile {
 public:
  Status open(const std::string& dir, const std::string& hint) {
    path_ = fmt::format("{}/put-{}-{:016x}", dir, hint, random_u64());
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd_ < 0) return internal_error(fmt::format("create {}: {}", path_, std::strerror(errno)));
    return {};
  }
  Status write(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::write(fd_, data.data() + off, data.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return internal_error(fmt::format("write {}: {}", path_, std::strerror(errno)));
      off += static_cast<size_t>(n);
    }
    return {};
  }
  Status close() {
    int fd = std::exchange(fd_, -1);
    if (::fsync(fd) != 0 || ::close(fd) != 0)
      return internal_error(fmt::format("close {}: {}", path_, std::strerror(errno)));
    return {};
  }
  const std::string& path() const { return path_; }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }

 private:
  std::string path_;
  int fd_ = -1;
};

Status check_header(const v1::PutImageHeader& h) {
  if (auto st = model::validate_image_name("name", h.name()); !st) return st;
  if (h.kind() != "disk" && h.kind() != "kernel" && h.kind() != "initrd" && h.kind() != "iso")
    return invalid_argument("kind", "kind must be disk, kernel, initrd or iso");
  if (!is_sha256_hex(h.sha256()))
    return invalid_argument("sha256", "sha256 must be 64 lowercase hex characters");
  if (h.size_bytes() > model::kMaxDiskBytes)
    return invalid_argument("size_bytes", "image larger than the maximum disk size");
  return {};
}

}  // namespace

// The same name already present: fine when its bytes hash the same, else a conflict.
static Status same_or_conflict(ImageStore& images, const v1::PutImageHeader& h,
                               v1::PutImageResponse* resp) {
  auto existing = images.image(h.name());
  if (!existing) return tl::unexpected(existing.error());
  auto digest = sha256_file(existing->path);
  if (!digest) return tl::unexpected(digest.error());
  if (*digest != h.sha256())
    return make_error(ErrorCode::already_exists,
                      fmt::format("image {} already exists with different content (sha256 {})",
                                  h.name(), *digest),
                      "name");
  *resp->mutable_image() = wire::to_proto(*existing);
  resp->set_existed(true);
  return {};
}

grpc::Status AgentService::PutImage(grpc::ServerContext*,
                                    grpc::ServerReader<v1::PutImageChunk>* reader,
                                    v1::PutImageResponse* resp) {
  auto run = [&]() -> Status {
    if (!opts_.images) return make_error(ErrorCode::unavailable, "no image store");
    ImageStore& images = *opts_.images;
    v1::PutImageChunk chunk;
    if (!reader->Read(&chunk) || !chunk.has_header())
      return invalid_argument("header", "the first message must carry the image header");
    const v1::PutImageHeader h = chunk.header();
    if (auto st = check_header(h); !st) return st;
    if (images.image(h.name())) return same_or_conflict(images, h, resp);

    TempFile tmp;
    if (auto st = tmp.open(images.root() + "/tmp", h.name()); !st) return st;
    Sha256 digest;
    uint64_t received = 0;
    do {
      if (received > 0 && chunk.has_header())
        return invalid_argument("header", "only the first message may carry the header");
      const std::string& data = chunk.data();
      received += data.size();
      if (received > h.size_bytes())
        return invalid_argument("size_bytes",
                                fmt::format("more than the announced {} bytes", h.size_bytes()));
      digest.update(data);
      if (auto st = tmp.write(data); !st) return st;
      chunk.Clear();
    } while (reader->Read(&chunk));
    if (auto st = tmp.close(); !st) return st;
    if (received != h.size_bytes())
      return invalid_argument(
          "size_bytes", fmt::format("received {} bytes, announced {}", received, h.size_bytes()));
    std::string got = digest.hex_final();
    if (got != h.sha256())
      return invalid_argument("sha256",
                              fmt::format("content hashes to {}, announced {}", got, h.sha256()));
    auto info = images.import_image(h.name(), tmp.path(), h.kind());
    if (!info) {
      // Another PutImage of the same name won the race: same content is still success.
      if (info.error().code == ErrorCode::already_exists) return same_or_conflict(images, h, resp);
      return tl::unexpected(info.error());
    }
    *resp->mutable_image() = wire::to_proto(*info);
    resp->set_existed(false);
    images_log()->info("image received name={} kind={} bytes={} sha256={}", h.name(), h.kind(),
                       received, got);
    return {};
  };
  auto st = run();
  if (!st) return wire::to_grpc_status(st.error());
  return grpc::Status::OK;
}

}  // namespace strata::agent::service
