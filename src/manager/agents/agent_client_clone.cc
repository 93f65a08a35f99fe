// AgentClient: CloneVm, a stream of progress ending with the clone.
#include <grpcpp/grpcpp.h>

#include "strata/manager/agents/agent_client.h"
#include "strata/wire/call.h"

namespace strata::manager {

Result<pb::VmStatus> AgentClient::clone_vm(
    const std::string& request_id, const std::string& source, const model::VmSpec& spec,
    bool linked, std::chrono::milliseconds deadline,
    const std::function<void(uint64_t, uint64_t)>& on_progress) {
  pb::CloneVmRequest req;
  req.set_request_id(request_id);
  req.set_source(source);
  *req.mutable_spec() = to_proto(spec);
  req.set_linked(linked);
  grpc::ClientContext ctx;
  wire::set_deadline(ctx, deadline);
  auto reader = stub_->CloneVm(&ctx, req);
  pb::CloneProgress p;
  std::optional<pb::VmStatus> made;
  while (reader->Read(&p)) {
    if (p.has_vm())
      made = p.vm();
    else if (on_progress)
      on_progress(p.done(), p.total());
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) return tl::unexpected(error_from_grpc(st));
  if (!made) return make_error(ErrorCode::internal, "the clone stream ended without the VM");
  return *made;
}

}  // namespace strata::manager
