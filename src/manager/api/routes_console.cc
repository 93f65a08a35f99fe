// The serial console over WebSocket: agent StreamConsole (tail first) -> client frames,
// client frames -> agent WriteConsole. Ends when either side closes. The WebSocket I/O is
// asynchronous (http_streams.cc); the gRPC calls to the agent block, so each console holds
// two threads (the handler's, relaying input, and one reading the agent's stream): consoles
// are capped (StreamCaps::consoles).
#include <atomic>
#include <random>
#include <thread>
#include <variant>

#include <fmt/format.h>

#include "strata/manager/agents/connection_manager.h"
#include "strata/manager/api/api_service.h"

namespace strata::manager {

void add_console_route(ApiService& api) {
  ApiDeps& d = api.deps();
  RouteOptions op;
  op.role = Role::operator_;  // console input is control of the guest
  api.router().add("GET", "/api/v1/vms/{name}/console", op, [&d](HttpRequest& r) {
    auto vm = d.store->get_vm_by_name(r.param("name"));
    if (!vm) return error_response(vm.error());
    if (!vm->host_id)
      return error_response(Error{ErrorCode::failed_precondition, "the VM is not placed yet", ""});
    auto client = d.agents->client(*vm->host_id);
    if (!client || d.agents->liveness(*vm->host_id) != Liveness::up)
      return error_response(Error{ErrorCode::unavailable, "the VM's host is not reachable", ""});
    auto tail = query_int(r, "tail", 65536, 0, 1 << 20);
    if (!tail) return error_response(tail.error());
    auto ticket = d.streams->acquire(r.principal ? r.principal->token_id : "", true);
    if (auto* refused = std::get_if<HttpResponse>(&ticket)) return std::move(*refused);
    std::string name = vm->name, id = vm->id;
    std::string actor = r.principal ? r.principal->name : "";
    d.events->append("token:" + actor, "vm.console", "vm/" + name, "ok", "console opened");
    HttpResponse resp;
    resp.websocket = [client, name, id, tail = static_cast<uint32_t>(*tail),
                      ticket = std::get<StreamLimiter::Ticket>(std::move(ticket))](WebSocket& ws) {
      StreamCancel cancel;
      std::atomic<bool> done{false};
      std::thread out([&] {
        client->stream_console(name, tail, cancel, [&](const std::string& chunk) {
          return ws.send(chunk, /*binary=*/true);
        });
        done = true;
        ws.close();  // agent side ended: unblock the reader
      });
      uint64_t n = 0;
      const uint64_t session = (uint64_t{std::random_device{}()} << 32) | std::random_device{}();
      while (!done) {
        auto msg = ws.receive();
        if (!msg) break;
        if (msg->empty()) continue;
        for (size_t off = 0; off < msg->size(); off += 65536) {
          std::string request_id = fmt::format("{}:console:{:x}:{}", id, session, n++);
          if (!client->write_console(request_id, name, msg->substr(off, 65536))) break;
        }
      }
      cancel.cancel();
      out.join();
    };
    return resp;
  });
}

}  // namespace strata::manager
