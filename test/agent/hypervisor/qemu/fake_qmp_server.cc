// Fake QEMU monitor (see fake_qmp_server.h).
#include "fake_qmp_server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace strata::agent::qemu::testing {

using nlohmann::json;

std::vector<ScenarioStep> parse_scenario(const std::string& text, const std::string& name) {
  std::vector<ScenarioStep> out;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    ScenarioStep s;
    s.line = n;
    if (line == "! hangup") {
      s.kind = ScenarioStep::hangup;
    } else if (line == "! stall") {
      s.kind = ScenarioStep::stall;
    } else if (line == "! client-closes") {
      s.kind = ScenarioStep::client_closes;
    } else if (line.size() > 2 && (line[0] == '<' || line[0] == '>') && line[1] == ' ') {
      s.kind = line[0] == '<' ? ScenarioStep::send : ScenarioStep::expect;
      s.msg = json::parse(line.substr(2), nullptr, false);
      if (s.msg.is_discarded() || !s.msg.is_object()) {
        ADD_FAILURE() << name << ":" << n << ": not a JSON object";
        continue;
      }
    } else {
      ADD_FAILURE() << name << ":" << n << ": unknown step: " << line;
      continue;
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<ScenarioStep> load_scenario(const std::string& name) {
  std::ifstream in(std::string(STRATA_TEST_SRC_DIR) + "/transcripts/" + name);
  if (!in) ADD_FAILURE() << "cannot read scenario " << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_scenario(ss.str(), name);
}

FakeQmpServer::FakeQmpServer(std::string socket_path, std::vector<ScenarioStep> steps, bool report)
    : path_(std::move(socket_path)), steps_(std::move(steps)), report_(report) {
  ::unlink(path_.c_str());
  listen_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path_.c_str(), sizeof(a.sun_path) - 1);
  if (::bind(listen_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::listen(listen_.get(), 1) != 0)
    fail(std::string("cannot listen on ") + path_ + ": " + std::strerror(errno));
  int p[2];
  if (::pipe2(p, O_CLOEXEC) == 0) {
    wake_[0].reset(p[0]);
    wake_[1].reset(p[1]);
  }
  thread_ = std::thread([this] { run(); });
}

FakeQmpServer::~FakeQmpServer() {
  char b = 1;
  [[maybe_unused]] auto n = ::write(wake_[1].get(), &b, 1);
  if (thread_.joinable()) thread_.join();
  ::unlink(path_.c_str());
  if (report_) check();
}

std::vector<std::string> FakeQmpServer::failures() {
  std::lock_guard lk(mu_);
  return failures_;
}

void FakeQmpServer::fail(const std::string& why) {
  std::lock_guard lk(mu_);
  failures_.push_back(why);
}

bool FakeQmpServer::check() {
  std::lock_guard lk(mu_);
  for (size_t i = reported_ ? failures_.size() : 0; i < failures_.size(); ++i)
    ADD_FAILURE() << "fake QMP server: " << failures_[i];
  reported_ = true;
  return failures_.empty();
}

bool FakeQmpServer::wait_done(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return done_; });
}

bool FakeQmpServer::read_line(int fd, std::string& buf, std::string& line) {
  for (;;) {
    if (auto nl = buf.find('\n'); nl != std::string::npos) {
      line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      return true;
    }
    pollfd p[2] = {{fd, POLLIN, 0}, {wake_[0].get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (p[1].revents) return false;
    char tmp[4096];
    ssize_t n = ::read(fd, tmp, sizeof(tmp));
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
  }
}

void FakeQmpServer::run() {
  size_t i = 0;
  auto finish = [&] {
    std::lock_guard lk(mu_);
    done_ = true;
    cv_.notify_all();
  };
  while (i < steps_.size()) {
    pollfd p[2] = {{listen_.get(), POLLIN, 0}, {wake_[0].get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 || p[1].revents) return;
    Fd conn(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) continue;
    std::string buf;
    json last_id;
    std::map<std::string, json> id_of;  // the last id read per command name
    bool open = true;
    for (; open && i < steps_.size(); ++i) {
      const ScenarioStep& s = steps_[i];
      const std::string at = "step at line " + std::to_string(s.line);
      switch (s.kind) {
        case ScenarioStep::send: {
          json m = s.msg;
          if (m.contains("for")) {  // the reply to an earlier command, out of order
            m["id"] = id_of[m["for"].get<std::string>()];
            m.erase("for");
          } else if (m.contains("return") || m.contains("error")) {
            m["id"] = last_id;
          }
          if (!write_all(conn.get(), m.dump() + "\n", std::chrono::seconds(5))) open = false;
          break;
        }
        case ScenarioStep::expect: {
          std::string line;
          if (!read_line(conn.get(), buf, line)) {
            fail(at + ": the client closed before sending " + s.msg.dump());
            return finish();
          }
          ++commands_;
          json got = json::parse(line, nullptr, false);
          if (got.is_discarded() || !got.is_object()) {
            fail(at + ": not JSON from the client: " + line);
            return finish();
          }
          last_id = got.value("id", json());
          const std::string name = got.value("execute", got.value("exec-oob", ""));
          id_of[name] = last_id;
          json want_args = s.msg.value("arguments", json());
          json got_args = got.value("arguments", json());
          if (got.value("execute", "") != s.msg.value("execute", "") ||
              got.value("exec-oob", "") != s.msg.value("exec-oob", "") || got_args != want_args) {
            fail(at + ": unexpected command " + line + ", the scenario expects " + s.msg.dump());
            json err = {
                {"error", {{"class", "GenericError"}, {"desc", "fake: unexpected command"}}},
                {"id", last_id}};
            (void)write_all(conn.get(), err.dump() + "\n", std::chrono::seconds(5));
            return finish();
          }
          break;
        }
        case ScenarioStep::hangup:
          open = false;
          break;
        case ScenarioStep::client_closes: {
          std::string line;
          if (read_line(conn.get(), buf, line)) {
            fail(at + ": unexpected command " + line +
                 ", the scenario expects the client to close");
            return finish();
          }
          open = false;
          break;
        }
        case ScenarioStep::stall: {
          finish();
          pollfd w{wake_[0].get(), POLLIN, 0};
          while (::poll(&w, 1, -1) < 0 && errno == EINTR) {
          }
          return;
        }
      }
    }
    if (i < steps_.size()) continue;  // hung up: the rest is for the next connection
    finish();
    if (!open) return;
    // The scenario is over but QEMU would still be there: any further command is a failure.
    std::string line;
    if (read_line(conn.get(), buf, line)) fail("unexpected command after the scenario: " + line);
    return;
  }
  finish();
}

}  // namespace strata::agent::qemu::testing
