// AgentClient: a stopped VM's local disk copied between two agents for a cold migration
// (ReadDisk on the source relayed to WriteDisk on the target). Control stays with the
// manager (agents never call each other); one chunk (at most 1 MiB) is in memory at a time.
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include "strata/manager/agents/agent_client.h"

namespace strata::manager {

namespace {
// Generous: a disk may be large and a link slow; a dead agent still ends the call through
// gRPC keepalive or a closed connection, and the manager's cancel ends it at once.
constexpr auto kCopyDeadline = std::chrono::hours(12);
}  // namespace

Result<uint64_t> AgentClient::copy_disk_to(AgentClient& target, const std::string& request_id,
                                           const std::string& vm, const std::string& disk,
                                           const std::function<void(uint64_t, uint64_t)>& on_progress) {
  const auto deadline = std::chrono::system_clock::now() + kCopyDeadline;
  grpc::ClientContext read_ctx, write_ctx;
  read_ctx.set_deadline(deadline);
  write_ctx.set_deadline(deadline);
  pb::ReadDiskRequest req;
  req.set_name(vm);
  req.set_disk(disk);
  auto reader = stub_->ReadDisk(&read_ctx, req);
  pb::DiskChunk chunk;
  if (!reader->Read(&chunk)) {
    grpc::Status st = reader->Finish();
    if (!st.ok()) return tl::unexpected(error_from_grpc(st));
    return internal_error("the source sent no disk header for " + vm + "/" + disk);
  }
  if (!chunk.has_header()) {
    read_ctx.TryCancel();
    (void)reader->Finish();
    return internal_error("the source's first disk message has no header");
  }
  const uint64_t file_size = chunk.header().file_size();
  chunk.mutable_header()->set_request_id(request_id);
  pb::WriteDiskResponse resp;
  auto writer = target.stub_->WriteDisk(&write_ctx, &resp);
  bool ok = writer->Write(chunk);
  uint64_t sent = 0;
  while (ok) {
    chunk.Clear();
    if (!reader->Read(&chunk)) break;
    sent += chunk.data().size();
    ok = writer->Write(chunk);
    if (ok && on_progress && !chunk.data().empty()) on_progress(sent, file_size);
  }
  grpc::Status read_st;
  if (ok) {
    read_st = reader->Finish();
    if (read_st.ok()) {
      writer->WritesDone();
    } else {
      write_ctx.TryCancel();  // the target drops what it received
    }
  } else {
    read_ctx.TryCancel();  // the target refused or went away: stop reading
    read_st = reader->Finish();
  }
  grpc::Status write_st = writer->Finish();
  // The target's answer says most (it checked the digest); a source that failed first
  // is the cause when the target only saw the cancel.
  if (auto read = wire::call_end_status(read_st, kAgentPeer); !read)
    return tl::unexpected(read.error().wrap("reading " + vm + "/" + disk));
  if (!write_st.ok())
    return tl::unexpected(error_from_grpc(write_st).wrap("writing " + vm + "/" + disk));
  return resp.bytes_written();
}

}  // namespace strata::manager
