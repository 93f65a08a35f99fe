// QMP client (see qmp_client.h). Commands carry numeric ids; replies are matched by id so
// an unrelated reply, an out-of-band reply overtaking in-band ones, or an event in between
// never confuses a caller.
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

void QmpClient::set_oob_enabled(bool on) {
  std::lock_guard lk(mu_);
  oob_ = on;
}

bool QmpClient::oob_enabled() const {
  std::lock_guard lk(mu_);
  return oob_;
}

int QmpClient::in_band_unanswered() const {
  std::lock_guard lk(mu_);
  return in_band_unanswered_;
}

void QmpClient::close_locked(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  for (auto& [id, p] : pending_)
    if (!p.result) p.result = unavailable("QMP connection closed: " + why);
  abandoned_.clear();
  in_band_unanswered_ = 0;
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
  const uint64_t id = m.id.get<uint64_t>();
  if (abandoned_.erase(id) > 0) {  // its caller timed out; QEMU is done with it now
    --in_band_unanswered_;
    cv_.notify_all();
    return;
  }
  auto it = pending_.find(id);
  if (it == pending_.end() || it->second.result) return;  // not ours, or a duplicate
  if (m.kind == QmpKind::ret)
    it->second.result = m.payload;
  else
    it->second.result = tl::unexpected(qmp_error_to_error(m));
  if (it->second.in_band) --in_band_unanswered_;
  cv_.notify_all();
}

Result<json> QmpClient::execute(const std::string& command, const json& arguments,
                                std::chrono::milliseconds timeout, QmpExec how) {
  return run(command, arguments, -1, timeout, how);
}

Result<json> QmpClient::execute_with_fd(const std::string& command, const json& arguments,
                                        int pass_fd, std::chrono::milliseconds timeout) {
  return run(command, arguments, pass_fd, timeout, QmpExec::in_band);
}

Result<json> QmpClient::run(const std::string& command, const json& arguments, int pass_fd,
                            std::chrono::milliseconds timeout, QmpExec how) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const bool in_band = how == QmpExec::in_band;
  uint64_t id;
  {
    std::unique_lock lk(mu_);
    if (closed_) return unavailable("QMP connection closed");
    if (!in_band && !oob_)
      return make_error(ErrorCode::failed_precondition,
                        "QMP " + command + ": out-of-band is not enabled on this connection");
    if (in_band) {
      // Keep QEMU's in-band queue short so it never stops reading (kMaxInBandUnanswered).
      bool room = cv_.wait_until(
          lk, deadline, [&] { return closed_ || in_band_unanswered_ < kMaxInBandUnanswered; });
      if (closed_) return unavailable("QMP connection closed");
      if (!room)
        return make_error(ErrorCode::deadline_exceeded,
                          "QMP " + command + " not sent: " + std::to_string(in_band_unanswered_) +
                              " earlier commands are still unanswered (QEMU busy)");
      ++in_band_unanswered_;
    }
    id = next_id_++;
    pending_[id] = Pending{in_band, std::nullopt};
  }
  {
    std::lock_guard wl(write_mu_);
    const std::string line = encode_qmp_command(command, arguments, id, how);
    auto left = std::max(std::chrono::milliseconds(1),
                         std::chrono::duration_cast<std::chrono::milliseconds>(
                             deadline - std::chrono::steady_clock::now()));
    auto s = pass_fd < 0 ? write_all(fd_.get(), line, left)
                         : write_all_with_fd(fd_.get(), line, pass_fd, left);
    if (!s) {
      std::lock_guard lk(mu_);
      if (auto it = pending_.find(id); it != pending_.end()) {
        if (in_band && !it->second.result && !closed_) {
          --in_band_unanswered_;
          cv_.notify_all();
        }
        pending_.erase(it);
      }
      return tl::unexpected(s.error().wrap("QMP " + command));
    }
  }
  std::unique_lock lk(mu_);
  auto it = pending_.find(id);
  bool done = cv_.wait_until(lk, deadline, [&] { return it->second.result.has_value(); });
  if (!done) {
    // QEMU still holds an in-band command and will answer it in turn: it keeps counting
    // against the in-band budget until then.
    if (in_band) abandoned_.insert(id);
    pending_.erase(it);
    return make_error(ErrorCode::deadline_exceeded, "QMP " + command + " timed out");
  }
  Result<json> r = std::move(*it->second.result);
  pending_.erase(it);
  return r;
}

}  // namespace strata::agent::qemu
