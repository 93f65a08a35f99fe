// A fake QEMU monitor for tests: listens on a real UNIX socket and replays a recorded QMP
// scenario (transcripts/*.scenario, format in transcripts/record.py): sends the greeting,
// events and replies QEMU sent, in QEMU's order, and checks that each command the client
// sends is the one QEMU received. An unexpected command is a test failure (reported by
// check() / the destructor through gtest), answered with a QMP error and a hang-up.
// Steps left after a hang-up or a client-closes are served on the next connection (a
// re-attach, e.g. by a restarted agent).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "unix_socket.h"

namespace strata::agent::qemu::testing {

struct ScenarioStep {
  enum Kind { send, expect, hangup, stall, client_closes } kind = send;
  nlohmann::json msg;  // send: the line; expect: the command
  int line = 0;        // in the scenario file, for messages
};

// Parses a scenario; a malformed line fails the test (ADD_FAILURE) and is skipped.
std::vector<ScenarioStep> parse_scenario(const std::string& text, const std::string& name);
// Loads transcripts/<name> from the source tree.
std::vector<ScenarioStep> load_scenario(const std::string& name);

class FakeQmpServer {
 public:
  // `report` false: failures are only collected (failures()), for use outside a gtest
  // process (fake_qemu_main.cc).
  FakeQmpServer(std::string socket_path, std::vector<ScenarioStep> steps, bool report = true);
  ~FakeQmpServer();  // stops the server and reports failures (check())
  FakeQmpServer(const FakeQmpServer&) = delete;
  FakeQmpServer& operator=(const FakeQmpServer&) = delete;

  // True once every step ran (the scenario is exhausted), waiting up to `timeout`.
  bool wait_done(std::chrono::milliseconds timeout);
  // Number of commands received so far.
  int commands() const { return commands_.load(); }
  // Reports the failures collected so far as gtest failures; returns whether there were none.
  bool check();
  std::vector<std::string> failures();

 private:
  void run();
  void fail(const std::string& why);
  // Reads one line from `fd` (or returns false on EOF / stop).
  bool read_line(int fd, std::string& buf, std::string& line);

  std::string path_;
  std::vector<ScenarioStep> steps_;
  Fd listen_;
  Fd wake_[2];
  std::thread thread_;
  std::atomic<int> commands_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> failures_;
  bool done_ = false;
  bool reported_ = false;
  bool report_ = true;
};

}  // namespace strata::agent::qemu::testing
