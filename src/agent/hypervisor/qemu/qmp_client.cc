// QMP client (see qmp_client.h). Commands carry numeric ids; replies are matched by id so
// an unrelated reply or an event in between never confuses a caller.
#include "qmp_client.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "strata/common/log.h"

namespace strata::agent::qemu {

using nlohmann::json;

Result<std::unique_ptr<QmpClient>> QmpClient::connect(const std::string& socket_path,
                                                      std::chrono::milliseconds timeout,
                                                      EventCallback on_event, EofCallback on_eof,
                                                      std::function<bool()> keep_trying) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  Result<Fd> fd = unavailable("not tried");
  for (;;) {
    fd = connect_unix(socket_path);
    if (fd) break;
    if (fd.error().code != ErrorCode::unavailable) return tl::unexpected(fd.error());
    if (keep_trying && !keep_trying()) return unavailable("QEMU is gone: " + fd.error().message);
    if (std::chrono::steady_clock::now() >= deadline)
      return make_error(ErrorCode::deadline_exceeded,
                        "QMP socket did not accept: " + fd.error().message);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::unique_ptr<QmpClient> c(new QmpClient(std::move(*fd), std::move(on_event),
                                             std::move(on_eof)));  // private ctor
  {
    std::unique_lock lk(c->mu_);
    c->cv_.wait_until(lk, deadline, [&] { return c->have_greeting_ || c->closed_; });
    if (!c->have_greeting_) {
      return c->closed_ ? unavailable("QMP closed before the greeting")
                        : make_error(ErrorCode::deadline_exceeded, "no QMP greeting");
    }
  }
  return c;
}

QmpClient::QmpClient(Fd fd, EventCallback on_event, EofCallback on_eof)
    : fd_(std::move(fd)), on_event_(std::move(on_event)), on_eof_(std::move(on_eof)) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0) {
    wake_[0].reset(p[0]);
    wake_[1].reset(p[1]);
  }
  reader_ = std::thread([this] { reader_loop(); });
}

QmpClient::~QmpClient() {
  if (wake_[1]) {
    char b = 1;
    [[maybe_unused]] auto n = ::write(wake_[1].get(), &b, 1);
  }
  if (reader_.joinable()) {
    if (reader_.get_id() == std::this_thread::get_id())
      reader_.detach();  // destroyed from our own callback; the loop exits on its own
    else
      reader_.join();
  }
}

bool QmpClient::closed() const {
  std::lock_guard lk(mu_);
  return closed_;
}

void QmpClient::close_locked(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  for (auto& [id, slot] : pending_)
    if (!slot) slot = unavailable("QMP connection closed: " + why);
  cv_.notify_all();
}

void QmpClient::reader_loop() {
  QmpFramer framer;
  char buf[65536];
  std::string why = "stopped";
  bool eof = false;
  for (;;) {
    pollfd p[2] = {{fd_.get(), POLLIN, 0}, {wake_[0].get(), POLLIN, 0}};
    int rc = ::poll(p, 2, -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      why = std::string("poll: ") + std::strerror(errno);
      break;
    }
    if (p[1].revents) break;  // destructor
    ssize_t n = ::read(fd_.get(), buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      why = n == 0 ? "EOF" : std::string("read: ") + std::strerror(errno);
      eof = true;
      break;
    }
    if (auto s = framer.feed(std::string_view(buf, static_cast<size_t>(n))); !s) {
      why = s.error().message;
      eof = true;
      break;
    }
    while (auto line = framer.next_line()) {
      auto m = parse_qmp_message(*line);
      if (!m) {
        logger("agent.qmp")->warn("ignoring malformed QMP message error={}", m.error().message);
        continue;
      }
      dispatch(*m);
    }
  }
  {
    std::lock_guard lk(mu_);
    close_locked(why);
  }
  if (eof && on_eof_) on_eof_();
}

void QmpClient::dispatch(const QmpMessage& m) {
  if (m.kind == QmpKind::event) {
    if (on_event_) on_event_(m);
    return;
  }
  std::lock_guard lk(mu_);
  if (m.kind == QmpKind::greeting) {
    greeting_ = m.payload;
    have_greeting_ = true;
    cv_.notify_all();
    return;
  }
  if (!m.id.is_number_unsigned()) return;  // not ours
  auto it = pending_.find(m.id.get<uint64_t>());
  if (it == pending_.end()) return;  // caller already timed out
  if (m.kind == QmpKind::ret)
    it->second = m.payload;
  else
    it->second = tl::unexpected(qmp_error_to_error(m));
  cv_.notify_all();
}

Result<json> QmpClient::execute(const std::string& command, const json& arguments,
                                std::chrono::milliseconds timeout) {
  return execute_with_fd(command, arguments, -1, timeout);
}

Result<json> QmpClient::execute_with_fd(const std::string& command, const json& arguments,
                                        int pass_fd, std::chrono::milliseconds timeout) {
  uint64_t id;
  {
    std::lock_guard lk(mu_);
    if (closed_) return unavailable("QMP connection closed");
    id = next_id_++;
    pending_[id] = std::nullopt;
  }
  auto erase = [&] {
    std::lock_guard lk(mu_);
    pending_.erase(id);
  };
  {
    std::lock_guard wl(write_mu_);
    const std::string line = encode_qmp_command(command, arguments, id);
    auto s = pass_fd < 0 ? write_all(fd_.get(), line, timeout)
                         : write_all_with_fd(fd_.get(), line, pass_fd, timeout);
    if (!s) {
      erase();
      return tl::unexpected(s.error().wrap("QMP " + command));
    }
  }
  std::unique_lock lk(mu_);
  bool done = cv_.wait_for(lk, timeout, [&] { return pending_[id].has_value(); });
  if (!done) {
    pending_.erase(id);
    return make_error(ErrorCode::deadline_exceeded, "QMP " + command + " timed out");
  }
  Result<json> r = std::move(*pending_[id]);
  pending_.erase(id);
  return r;
}

}  // namespace strata::agent::qemu
