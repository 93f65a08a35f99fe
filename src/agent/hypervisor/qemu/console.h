// Serial console plumbing. QEMU's serial chardev is a UNIX socket server that accepts one
// client: the agent holds that one connection (ConsoleHub) and fans the output out to any
// number of subscribers; input from console_write goes the other way. QEMU also appends
// everything to console.log, which the agent keeps bounded by rotating it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "strata/agent/hypervisor.h"
#include "unix_socket.h"

namespace strata::agent::qemu {

class ConsoleHub {
 public:
  // Connects to the serial socket, retrying until `timeout`.
  static Result<std::unique_ptr<ConsoleHub>> connect(const std::string& socket_path,
                                                     std::chrono::milliseconds timeout);
  ~ConsoleHub();
  ConsoleHub(const ConsoleHub&) = delete;
  ConsoleHub& operator=(const ConsoleHub&) = delete;

  // `on_data` runs on the hub's reader thread until the subscription is destroyed (which
  // may happen inside the callback). A subscription lasts for this QEMU run.
  ConsoleSubscriptionPtr subscribe(std::function<void(std::string_view)> on_data);
  Status write(std::string_view data);
  bool closed() const;

  struct Subscriber {
    std::recursive_mutex mu;
    bool active = true;
    std::function<void(std::string_view)> on_data;
  };
  struct Subscribers {
    mutable std::mutex mu;
    std::vector<std::shared_ptr<Subscriber>> list;
    bool closed = false;
  };

 private:
  explicit ConsoleHub(Fd fd);
  void reader_loop();

  Fd fd_;
  Fd wake_[2];
  std::shared_ptr<Subscribers> subs_ = std::make_shared<Subscribers>();
  std::mutex write_mu_;
  std::thread reader_;
};
using ConsoleHubPtr = std::unique_ptr<ConsoleHub>;

// Copies console.log to console.log.1 and truncates console.log when it is larger than
// `max_bytes`. Safe while QEMU writes: it opened the log with O_APPEND. Returns true when
// it rotated.
Result<bool> rotate_console_log(const std::string& log_path, size_t max_bytes);

// Last `max_bytes` of the log, reaching into console.log.1 when console.log is shorter.
Result<std::string> read_console_tail(const std::string& log_path, size_t max_bytes);

}  // namespace strata::agent::qemu
