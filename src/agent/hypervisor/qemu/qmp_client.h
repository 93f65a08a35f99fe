// QMP client over a UNIX socket, the transport under QemuMonitor (qemu_monitor.h): connects
// (waiting for QEMU to create the socket), reads the greeting, runs commands with a timeout
// and delivers events, all untyped. One reader thread per connection; callbacks run on it
// and must not call execute() synchronously. The driver uses QemuMonitor, never this.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "qmp_codec.h"
#include "unix_socket.h"

namespace strata::agent::qemu {

class QmpClient {
 public:
  using EventCallback = std::function<void(const QmpMessage&)>;
  using EofCallback = std::function<void()>;

  // Retries connecting until `timeout`; `keep_trying` (optional) stops early, e.g. when
  // QEMU has already exited. Then waits for the greeting (capabilities negotiation is the
  // monitor's first command).
  static Result<std::unique_ptr<QmpClient>> connect(const std::string& socket_path,
                                                    std::chrono::milliseconds timeout,
                                                    EventCallback on_event, EofCallback on_eof,
                                                    std::function<bool()> keep_trying = {});
  ~QmpClient();
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // Runs a command; the result is the "return" value, or the QMP error as an Error.
  // unavailable once the connection is closed; deadline_exceeded after `timeout`.
  Result<nlohmann::json> execute(const std::string& command,
                                 const nlohmann::json& arguments = nullptr,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // As execute, with `pass_fd` sent along (SCM_RIGHTS) for commands that take one (getfd).
  Result<nlohmann::json> execute_with_fd(const std::string& command,
                                         const nlohmann::json& arguments, int pass_fd,
                                         std::chrono::milliseconds timeout);
  bool closed() const;
  const nlohmann::json& greeting() const { return greeting_; }

 private:
  QmpClient(Fd fd, EventCallback on_event, EofCallback on_eof);
  void reader_loop();
  void dispatch(const QmpMessage& m);
  void close_locked(const std::string& why);

  Fd fd_;
  Fd wake_[2];
  EventCallback on_event_;
  EofCallback on_eof_;
  nlohmann::json greeting_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  bool have_greeting_ = false;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::optional<Result<nlohmann::json>>> pending_;
  std::mutex write_mu_;
  std::thread reader_;
};
using QmpClientPtr = std::unique_ptr<QmpClient>;

}  // namespace strata::agent::qemu
