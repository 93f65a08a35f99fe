// The VM consoles over WebSocket, one relay for both:
// - serial, GET /api/v1/vms/{name}/console: agent StreamConsole (tail first) -> client
//   frames, client frames -> agent WriteConsole;
// - graphical, GET /api/v1/vms/{name}/vnc: raw RFB bytes both ways through the agent's
//   StreamDisplay (a new connection to the VM's VNC socket), for noVNC in the browser.
// Ends when either side closes: the agent's side ending closes the WebSocket (normal
// closure), the client leaving cancels the agent's call. Both sides are asynchronous and
// hold no thread: the WebSocket on the HTTP server's I/O threads (http_streams.cc), the
// agent's calls on gRPC's callback API (agent_client_console.cc); an open console costs
// two outstanding calls and bounded buffers (one message each way). Consoles of both kinds
// still share one cap (StreamCaps::consoles, --max-consoles) and the per-token stream cap.
#include <fmt/format.h>

#include <memory>
#include <optional>
#include <variant>

#include "strata/common/random.h"
#include "strata/manager/agents/connection_manager.h"
#include "strata/manager/api/api_service.h"

namespace strata::manager {

namespace {

// One console session: the client's WebSocket and the agent's call, pumped both ways by
// callbacks (I/O threads on one side, gRPC's on the other). Each direction has one message
// in flight at most: the agent is asked for its next chunk once the last went out to the
// client, and the client is read again once the agent took its last message. It lives as
// long as a callback holds it; its stream ticket goes first, its WebSocket last (the
// server's stop waits for the WebSocket, and the ticket refers to the ApiService).
class Relay : public std::enable_shared_from_this<Relay> {
 public:
  Relay(std::shared_ptr<WebSocket> ws, ConsoleStreamPtr agent, StreamLimiter::Ticket ticket)
      : ws_(std::move(ws)), agent_(std::move(agent)), ticket_(std::move(ticket)) {}

  void start() {
    pump_out();
    pump_in();
  }

 private:
  // Agent -> client, until the agent's call is over (then the WebSocket closes).
  void pump_out() {
    agent_->read([self = shared_from_this()](std::optional<std::string> chunk) {
      if (!chunk) {
        self->ws_->close();
        return;
      }
      auto next = [self](bool written) {
        if (!written) self->agent_->cancel();  // the client is gone: read on to the end
        self->pump_out();
      };
      if (chunk->empty()) {
        next(true);
      } else if (!self->ws_->send(std::move(*chunk), /*binary=*/true, next)) {
        next(false);
      }
    });
  }
  // Client -> agent, until the WebSocket ends (then the agent's call is cancelled).
  void pump_in() {
    ws_->receive([self = shared_from_this()](std::optional<std::string> msg) {
      if (!msg) {
        self->agent_->cancel();
        return;
      }
      if (msg->empty()) {
        self->pump_in();
        return;
      }
      self->agent_->write(std::move(*msg), [self](bool ok) {
        if (!ok) self->ws_->close();  // the agent's side failed: end the session
        self->pump_in();
      });
    });
  }

  std::shared_ptr<WebSocket> ws_;  // first member: let go of last
  ConsoleStreamPtr agent_;
  StreamLimiter::Ticket ticket_;
};

enum class ConsoleKind { serial, vnc };

void add_route(ApiService& api, ConsoleKind kind) {
  ApiDeps& d = api.deps();
  RouteOptions op;
  // Console input is control of the guest; a viewer sees neither console (like Proxmox's
  // VM.Console privilege and vSphere's "Console interaction", which read-only roles lack).
  op.role = Role::operator_;
  const char* path =
      kind == ConsoleKind::serial ? "/api/v1/vms/{name}/console" : "/api/v1/vms/{name}/vnc";
  api.router().add("GET", path, op, [&d, kind](HttpRequest& r) {
    auto vm = d.store->get_vm_by_name(r.param("name"));
    if (!vm) return error_response(vm.error());
    if (!vm->host_id)
      return error_response(Error{ErrorCode::failed_precondition, "the VM is not placed yet", ""});
    const std::string host_id = *vm->host_id;
    if (!d.agents->client(host_id) || d.agents->liveness(host_id) != Liveness::up)
      return error_response(Error{ErrorCode::unavailable, "the VM's host is not reachable", ""});
    uint32_t tail = 0;
    if (kind == ConsoleKind::serial) {
      auto t = query_int(r, "tail", 65536, 0, 1 << 20);
      if (!t) return error_response(t.error());
      tail = static_cast<uint32_t>(*t);
    }
    auto ticket = d.streams->acquire(r.principal ? r.principal->token_id : "", true);
    if (auto* refused = std::get_if<HttpResponse>(&ticket)) return std::move(*refused);
    std::string name = vm->name, id = vm->id;
    std::string actor = r.principal ? r.principal->name : "";
    d.events->append("token:" + actor, kind == ConsoleKind::serial ? "vm.console" : "vm.vnc",
                     "vm/" + name, "ok",
                     kind == ConsoleKind::serial ? "console opened" : "graphical console opened");
    HttpResponse resp;
    // The agent's calls go through the connection manager, counted with the host's (its
    // stop waits for them; nothing of them is let go of on gRPC's threads).
    resp.websocket = [agents = d.agents, host_id, name, id, tail, kind,
                      ticket = std::get<StreamLimiter::Ticket>(std::move(ticket))](
                         std::shared_ptr<WebSocket> ws) mutable {
      ConsoleStreamPtr agent;
      if (kind == ConsoleKind::serial) {
        const uint64_t session = random_u64();
        agent = agents->open_console(host_id, name, tail,
                                     fmt::format("{}:console:{:x}", id, session));
      } else {
        agent = agents->open_display(host_id, name);
      }
      if (!agent) {  // the host went (removed, or the manager is stopping)
        ws->close();
        return;
      }
      std::make_shared<Relay>(std::move(ws), std::move(agent), std::move(ticket))->start();
    };
    return resp;
  });
}

}  // namespace

void add_console_route(ApiService& api) {
  add_route(api, ConsoleKind::serial);
  add_route(api, ConsoleKind::vnc);
}

}  // namespace strata::manager
