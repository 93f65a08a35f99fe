// AgentService: the streaming RPCs (console output, the VNC display, VM events). Each
// stream runs on its gRPC handler thread, draining a bounded queue fed by a driver callback
// (or, for the display, reading QEMU's VNC socket), and polls for client cancellation and
// agent shutdown.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "event_hub.h"
#include "strata/agent/service/agent_service.h"
#include "strata/model/validation.h"
#include "strata/wire/status.h"
#include "strata/wire/vm_status.h"
#include "stream_queue.h"

namespace strata::agent::service {

namespace {
constexpr auto kPoll = std::chrono::milliseconds(200);
constexpr size_t kConsoleQueueChunks = 4096;

grpc::Status shutting_down() {
  return wire::to_grpc_status(Error{ErrorCode::unavailable, "agent is shutting down", {}});
}
grpc::Status overflowed(const char* what) {
  return wire::to_grpc_status(Error{
      ErrorCode::resource_exhausted, std::string(what) + " stream fell behind; reconnect", {}});
}
}  // namespace

grpc::Status AgentService::StreamConsole(grpc::ServerContext* ctx,
                                         const v1::StreamConsoleRequest* req,
                                         grpc::ServerWriter<v1::ConsoleChunk>* writer) {
  if (auto st = model::validate_name("name", req->name()); !st)
    return wire::to_grpc_status(st.error());
  auto queue = std::make_shared<StreamQueue<std::string>>(kConsoleQueueChunks);
  // Subscribe before reading the tail: the two may overlap by a few bytes, but no output
  // is lost between them.
  auto sub = hv_.console_subscribe(
      req->name(), [queue](std::string_view data) { queue->push(std::string(data)); });
  if (!sub) return wire::to_grpc_status(sub.error());
  if (req->tail_bytes() > 0) {
    auto tail = hv_.console_tail(req->name(), std::min<uint32_t>(req->tail_bytes(), 1u << 20));
    if (!tail) return wire::to_grpc_status(tail.error());
    v1::ConsoleChunk chunk;
    chunk.set_data(std::move(*tail));
    if (!chunk.data().empty() && !writer->Write(chunk)) return grpc::Status::OK;
  }
  while (!ctx->IsCancelled()) {
    if (stopping_) return shutting_down();
    auto data = queue->pop_for(kPoll);
    if (!data) {
      if (queue->overflowed()) return overflowed("console");
      continue;
    }
    v1::ConsoleChunk chunk;
    chunk.set_data(std::move(*data));
    if (!writer->Write(chunk)) break;  // client went away
  }
  return grpc::Status::OK;
}

namespace {
constexpr size_t kDisplayChunk = 65536;
constexpr auto kDisplayWriteTimeout = std::chrono::seconds(30);

// A new client connection to QEMU's VNC listener (blocking socket).
Result<int> connect_display(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return internal_error("VNC socket path too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return internal_error(std::string("socket: ") + std::strerror(errno));
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    std::string why = std::strerror(errno);
    ::close(fd);
    return unavailable("the VM's VNC display does not answer (" + why + ")");
  }
  return fd;
}

// Writes all of `data`; false when the display went away or did not read for
// kDisplayWriteTimeout.
bool send_display(int fd, std::string_view data) {
  auto deadline = std::chrono::steady_clock::now() + kDisplayWriteTimeout;
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), kPoll.count())));
      continue;
    }
    return false;
  }
  return true;
}
}  // namespace

grpc::Status AgentService::StreamDisplay(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<v1::DisplayChunk, v1::DisplayChunk>* stream) {
  v1::DisplayChunk first;
  if (!stream->Read(&first)) return grpc::Status::OK;  // the caller went away at once
  if (auto st = model::validate_name("name", first.name()); !st)
    return wire::to_grpc_status(st.error());
  auto vm = hv_.status(first.name());
  if (!vm) return wire::to_grpc_status(vm.error());
  if (vm->vnc_socket.empty())
    return wire::to_grpc_status(Error{ErrorCode::failed_precondition,
                                      "the VM has no VNC display (its spec has vnc false)",
                                      "name"});
  if (vm->state != model::VmState::running && vm->state != model::VmState::paused)
    return wire::to_grpc_status(
        Error{ErrorCode::failed_precondition,
              std::string("the VM is not running (") + model::to_string(vm->state) + ")", "name"});
  auto fd = connect_display(vm->vnc_socket);
  if (!fd) return wire::to_grpc_status(fd.error());

  // Caller -> display on a thread of its own; display -> caller here. Either side closing
  // ends both: the input thread shuts the socket down, this loop cancels the call.
  std::atomic<bool> input_done{false};
  std::thread input([&, fd = *fd] {
    v1::DisplayChunk in = std::move(first);
    do {
      if (in.data().size() > kDisplayChunk) break;
      if (!in.data().empty() && !send_display(fd, in.data())) break;
    } while (stream->Read(&in));
    input_done = true;
    ::shutdown(fd, SHUT_RDWR);
  });
  std::string buf(kDisplayChunk, '\0');
  while (!ctx->IsCancelled() && !stopping_) {
    pollfd p{*fd, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(kPoll.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) break;
    if (rc == 0) continue;
    ssize_t n = ::read(*fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the display closed (VM stopped) or the input side shut it down
    v1::DisplayChunk out;
    out.set_data(buf.data(), static_cast<size_t>(n));
    if (!stream->Write(out)) break;  // the caller went away
  }
  ::shutdown(*fd, SHUT_RDWR);
  if (!input_done) ctx->TryCancel();  // unblocks the input thread's Read
  input.join();
  ::close(*fd);
  if (stopping_) return shutting_down();
  return grpc::Status::OK;
}

grpc::Status AgentService::WatchEvents(grpc::ServerContext* ctx, const v1::WatchEventsRequest* req,
                                       grpc::ServerWriter<v1::VmEvent>* writer) {
  if (!req->vm().empty()) {
    if (auto st = model::validate_name("vm", req->vm()); !st)
      return wire::to_grpc_status(st.error());
  }
  // Subscribe before the snapshot so no transition between the two is missed.
  auto queue = hub_->subscribe();
  struct Unsubscribe {
    EventHub& hub;
    std::shared_ptr<EventHub::Queue> q;
    ~Unsubscribe() { hub.unsubscribe(q); }
  } unsubscribe{*hub_, queue};

  if (req->include_current()) {
    int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         opts_.clock->wall().time_since_epoch())
                         .count();
    for (const auto& vm : hv_.list()) {
      if (!req->vm().empty() && vm.spec.name != req->vm()) continue;
      if (!writer->Write(wire::to_proto(VmEvent{vm.spec.name, vm.state, "current", now_ms}))) {
        return grpc::Status::OK;
      }
    }
  }
  while (!ctx->IsCancelled()) {
    if (stopping_) return shutting_down();
    auto event = queue->pop_for(kPoll);
    if (!event) {
      if (queue->overflowed()) return overflowed("event");
      continue;
    }
    if (!req->vm().empty() && event->vm != req->vm()) continue;
    if (!writer->Write(wire::to_proto(*event))) break;
  }
  return grpc::Status::OK;
}

}  // namespace strata::agent::service
