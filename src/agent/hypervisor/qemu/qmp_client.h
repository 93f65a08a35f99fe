// QMP client over a UNIX socket, the transport under QemuMonitor (qemu_monitor.h): connects
// (waiting for QEMU to create the socket), reads the greeting, runs commands with a timeout
// (in-band or out-of-band) and delivers events, all untyped. One reader thread per
// connection; callbacks run on it and must not call execute() synchronously. The driver
// uses QemuMonitor, never this.
//
// Replies are matched to their command by id, never by order: with out-of-band (OOB)
// enabled QEMU answers an exec-oob command at once, before the in-band commands queued
// ahead of it, so replies arrive out of order.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
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
  // unavailable once the connection is closed; deadline_exceeded after `timeout`. `how`
  // oob sends it with exec-oob: only once set_oob_enabled(true) (the caller negotiated
  // "oob" in qmp_capabilities) and only for QEMU's allow-oob commands; otherwise
  // failed_precondition without sending anything.
  Result<nlohmann::json> execute(const std::string& command,
                                 const nlohmann::json& arguments = nullptr,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30),
                                 QmpExec how = QmpExec::in_band);
  // As execute (in-band), with `pass_fd` sent along (SCM_RIGHTS) for commands that take one
  // (getfd).
  Result<nlohmann::json> execute_with_fd(const std::string& command,
                                         const nlohmann::json& arguments, int pass_fd,
                                         std::chrono::milliseconds timeout);
  bool closed() const;
  const nlohmann::json& greeting() const { return greeting_; }
  // Set by the monitor once qmp_capabilities enabled "oob" on this connection.
  void set_oob_enabled(bool on);
  bool oob_enabled() const;
  // In-band commands QEMU has not answered yet, those whose caller gave up included
  // (QEMU still runs them). For tests and logs.
  int in_band_unanswered() const;

  // QEMU 7.2 queues at most 8 in-band commands per monitor and, once that queue is full,
  // stops reading the socket, out-of-band commands included. A hung in-band command
  // (a query-migrate behind a vCPU that waits for a post-copy page under QEMU's main lock)
  // plus a poller retrying every few seconds would fill it and cut off the very exec-oob
  // that can unblock QEMU. So at most this many in-band commands are outstanding at QEMU;
  // a further one waits here (within its own timeout) for an answer to come back.
  static constexpr int kMaxInBandUnanswered = 5;

 private:
  QmpClient(Fd fd, EventCallback on_event, EofCallback on_eof);
  void reader_loop();
  void dispatch(const QmpMessage& m);
  void close_locked(const std::string& why);
  Result<nlohmann::json> run(const std::string& command, const nlohmann::json& arguments,
                             int pass_fd, std::chrono::milliseconds timeout, QmpExec how);

  struct Pending {
    bool in_band = true;
    std::optional<Result<nlohmann::json>> result;  // set by the reader thread
  };

  Fd fd_;
  Fd wake_[2];
  EventCallback on_event_;
  EofCallback on_eof_;
  nlohmann::json greeting_;  // written once, before connect() returns

  // Lock rules (also in docs/internals/qemu-driver.md, "Locks"):
  // - mu_ guards the fields below it. It is held only to read or change them: never across
  //   a socket read or write, never while calling a callback. Callers wait for their reply
  //   on cv_ (which releases mu_), so a caller whose in-band command hangs in QEMU holds no
  //   lock: an exec-oob command is sent and its reply matched and delivered meanwhile.
  // - write_mu_ serializes writes to the socket so two commands' lines never interleave. It
  //   is held for one line's write only (QEMU keeps reading the socket: see
  //   kMaxInBandUnanswered), never while waiting for a reply, never together with mu_.
  // - The reader thread takes mu_ only (to file a reply), never write_mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  bool have_greeting_ = false;
  bool oob_ = false;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Pending> pending_;  // sent (or being sent), caller still waiting
  // In-band commands whose caller timed out: QEMU will still answer them, in order.
  std::set<uint64_t> abandoned_;
  int in_band_unanswered_ = 0;  // in-band entries of pending_ + abandoned_
  std::mutex write_mu_;
  std::thread reader_;
};
using QmpClientPtr = std::unique_ptr<QmpClient>;

}  // namespace strata::agent::qemu
