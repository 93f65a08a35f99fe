// AgentClient: a session with a VM's VNC display (the agent's StreamDisplay, bidirectional
// streaming of raw RFB bytes). No deadline: the session lasts as long as the viewer; it
// ends when either side closes, on cancel, or when the agent's connection drops.
#include <grpcpp/grpcpp.h>

#include "strata/manager/agents/agent_client.h"

namespace strata::manager {

namespace {
constexpr size_t kChunk = 65536;  // the agent's bound on one DisplayChunk's data
}

std::unique_ptr<DisplayStream> AgentClient::open_display(const std::string& name) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  auto rw = stub_->StreamDisplay(ctx.get());
  auto stream = std::make_unique<DisplayStream>(std::move(ctx), std::move(rw));
  pb::DisplayChunk first;
  first.set_name(name);
  stream->write_first(first);
  return stream;
}

void DisplayStream::write_first(const pb::DisplayChunk& first) { rw_->Write(first); }

bool DisplayStream::write(std::string_view data) {
  for (size_t off = 0; off < data.size(); off += kChunk) {
    pb::DisplayChunk chunk;
    chunk.set_data(std::string(data.substr(off, kChunk)));
    if (!rw_->Write(chunk)) return false;
  }
  return true;
}

std::optional<std::string> DisplayStream::read() {
  pb::DisplayChunk chunk;
  if (!rw_->Read(&chunk)) return std::nullopt;
  return std::move(*chunk.mutable_data());
}

Status DisplayStream::finish() {
  grpc::Status st = rw_->Finish();
  if (!st.ok() && st.error_code() != grpc::StatusCode::CANCELLED)
    return tl::unexpected(error_from_grpc(st));
  return {};
}

}  // namespace strata::manager
