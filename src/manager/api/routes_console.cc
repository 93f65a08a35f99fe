// The VM consoles over WebSocket, one relay for both:
// - serial, GET /api/v1/vms/{name}/console: agent StreamConsole (tail first) -> client
//   frames, client frames -> agent WriteConsole;
// - graphical, GET /api/v1/vms/{name}/vnc: raw RFB bytes both ways through the agent's
//   StreamDisplay (a new connection to the VM's VNC socket), for noVNC in the browser.
// Ends when either side closes. The WebSocket I/O is asynchronous (http_streams.cc); the
// gRPC calls to the agent block, so each console holds two threads (the handler's, relaying
// input, and one reading the agent's stream): consoles of both kinds share one cap
// (StreamCaps::consoles) and the per-token stream cap.
#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <variant>

#include <fmt/format.h>

#include "strata/manager/agents/connection_manager.h"
#include "strata/manager/api/api_service.h"

namespace strata::manager {

namespace {

// One console session as the relay drives it.
struct ConsoleSession {
  // Runs on a thread of its own: hands each chunk from the agent to `send` until the
  // agent's stream ends, `send` returns false or stop() is called.
  std::function<void(const std::function<bool(const std::string&)>& send)> output;
  // One message from the client; false ends the session.
  std::function<bool(const std::string&)> input;
  // Ends output() (any thread).
  std::function<void()> stop;
};

void relay(WebSocket& ws, ConsoleSession& s) {
  std::atomic<bool> done{false};
  std::thread out([&] {
    s.output([&](const std::string& chunk) { return ws.send(chunk, /*binary=*/true); });
    done = true;
    ws.close();  // agent side ended: unblock the reader
  });
  while (!done) {
    auto msg = ws.receive();
    if (!msg) break;
    if (msg->empty()) continue;
    if (!s.input(*msg)) break;
  }
  s.stop();
  out.join();
}

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
    auto client = d.agents->client(*vm->host_id);
    if (!client || d.agents->liveness(*vm->host_id) != Liveness::up)
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
    resp.websocket = [client, name, id, tail, kind,
                      ticket = std::get<StreamLimiter::Ticket>(std::move(ticket))](WebSocket& ws) {
      ConsoleSession s;
      std::shared_ptr<DisplayStream> display;
      if (kind == ConsoleKind::serial) {
        auto cancel = std::make_shared<StreamCancel>();
        s.output = [client, name, tail, cancel](const auto& send) {
          client->stream_console(name, tail, *cancel, send);
        };
        s.stop = [cancel] { cancel->cancel(); };
        const uint64_t session =
            (uint64_t{std::random_device{}()} << 32) | std::random_device{}();
        s.input = [client, name, id, session, n = uint64_t{0}](const std::string& msg) mutable {
          for (size_t off = 0; off < msg.size(); off += 65536) {
            std::string request_id = fmt::format("{}:console:{:x}:{}", id, session, n++);
            if (!client->write_console(request_id, name, msg.substr(off, 65536))) return false;
          }
          return true;
        };
      } else {
        display = client->open_display(name);
        s.output = [display](const auto& send) {
          while (auto chunk = display->read())
            if (!send(*chunk)) break;
          display->cancel();
        };
        s.input = [display](const std::string& msg) { return display->write(msg); };
        s.stop = [display] { display->cancel(); };
      }
      relay(ws, s);
      if (display) (void)display->finish();  // how it ended matters to nobody here
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
