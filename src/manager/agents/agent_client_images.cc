// AgentClient: pushing catalog images to an agent (PutImage, client streaming) and
// removing them (DeleteImage). The file is read in 1 MiB chunks, never whole.
#include <fcntl.h>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "strata/manager/agents/agent_client.h"
#include "strata/wire/call.h"

namespace strata::manager {

namespace {
constexpr size_t kImageChunk = 1 << 20;
// Generous: an image is bounded by the catalog's upload cap, and a slow link must not
// fail a large push; a dead agent still ends the call through gRPC keepalive/close.
constexpr auto kPutDeadline = std::chrono::minutes(30);
}  // namespace

Result<pb::PutImageResponse> AgentClient::put_image(
    const std::string& name, const std::string& kind, const std::string& path, uint64_t size_bytes,
    const std::string& sha256, const std::function<void(uint64_t)>& on_progress) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return internal_error(fmt::format("open {}: {}", path, std::strerror(errno)));
  grpc::ClientContext ctx;
  wire::set_deadline(ctx, kPutDeadline);
  pb::PutImageResponse resp;
  auto writer = stub_->PutImage(&ctx, &resp);
  pb::PutImageChunk first;
  auto* h = first.mutable_header();
  h->set_name(name);
  h->set_kind(kind);
  h->set_size_bytes(size_bytes);
  h->set_sha256(sha256);
  bool ok = writer->Write(first);
  std::vector<char> buf(kImageChunk);
  uint64_t sent = 0;
  std::string read_error;
  while (ok) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      read_error = fmt::format("read {}: {}", path, std::strerror(errno));
      ctx.TryCancel();
      break;
    }
    if (n == 0) break;
    pb::PutImageChunk c;
    c.set_data(buf.data(), static_cast<size_t>(n));
    ok = writer->Write(c);
    sent += static_cast<uint64_t>(n);
    if (ok && on_progress) on_progress(sent);
  }
  ::close(fd);
  if (ok) writer->WritesDone();
  grpc::Status st = writer->Finish();
  if (!read_error.empty()) return internal_error(read_error);
  if (!st.ok()) return tl::unexpected(error_from_grpc(st));
  return resp;
}

Status AgentClient::delete_image(const std::string& request_id, const std::string& name,
                                 std::optional<std::chrono::milliseconds> timeout) {
  pb::DeleteImageRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  auto r = wire::call(*stub_, &pb::AgentService::Stub::DeleteImage, req, timeout.value_or(timeout_),
                      kAgentPeer);
  if (!r) return tl::unexpected(r.error());
  return {};
}

}  // namespace strata::manager
