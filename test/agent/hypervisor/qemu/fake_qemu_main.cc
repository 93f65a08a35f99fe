// A stand-in for qemu-system-x86_64 in driver tests without QEMU: started by the real shim
// with the argv the driver built, it writes -pidfile, listens on the serial socket (and
// discards what it gets), and serves the QMP socket with the scenario the test put in the
// VM folder (<vm dir>/fake-qmp.scenario, replayed by FakeQmpServer). When the scenario ends
// with a hang-up it exits 0, as QEMU does after a guest poweroff or quit; after `! stall` it
// waits to be killed. A command the scenario does not expect is written to
// <vm dir>/fake-qmp.failures (the test fails on it) and the exit code is 3.
// `-machine help` prints QEMU 7.2's recorded answer (transcripts/machine-help-7.2.txt).
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fake_qmp_server.h"

namespace {

using strata::agent::qemu::testing::FakeQmpServer;
using strata::agent::qemu::testing::parse_scenario;
using strata::agent::qemu::testing::ScenarioStep;

// "socket,id=qmp,path=/x,server=on" -> the value of `key` when id matches.
std::string chardev_path(const std::vector<std::string>& args, const std::string& id) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] != "-chardev") continue;
    const std::string& v = args[i + 1];
    if (v.find("id=" + id + ",") == std::string::npos) continue;
    auto p = v.find(",path=");
    if (p == std::string::npos) continue;
    auto e = v.find(',', p + 6);
    return v.substr(p + 6, e == std::string::npos ? std::string::npos : e - p - 6);
  }
  return "";
}

void serve_serial(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  ::unlink(path.c_str());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 4) != 0) return;
  std::thread([fd] {
    for (;;) {
      int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::thread([c] {
        char b[4096];
        while (::read(c, b, sizeof(b)) > 0) {
        }
        ::close(c);
      }).detach();
    }
  }).detach();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  if (args.size() == 3 && args[1] == "-machine" && args[2] == "help") {
    // The driver's machine-type probe: answer with QEMU 7.2's recorded output.
    std::ifstream in(std::string(STRATA_TEST_SRC_DIR) + "/transcripts/machine-help-7.2.txt");
    std::stringstream ss;
    ss << in.rdbuf();
    std::fputs(ss.str().c_str(), stdout);
    return in ? 0 : 2;
  }
  std::string pidfile;
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "-pidfile") pidfile = args[i + 1];
  std::string qmp = chardev_path(args, "qmp");
  if (pidfile.empty() || qmp.empty()) {
    std::fprintf(stderr, "fake qemu: no -pidfile or qmp chardev\n");
    return 2;
  }
  std::string dir = pidfile.substr(0, pidfile.rfind('/'));
  std::ifstream in(dir + "/fake-qmp.scenario");
  std::stringstream ss;
  ss << in.rdbuf();
  auto steps = parse_scenario(ss.str(), "fake-qmp.scenario");
  if (!in || steps.empty()) {
    std::fprintf(stderr, "fake qemu: no scenario in %s\n", dir.c_str());
    return 2;
  }
  std::ofstream(pidfile) << ::getpid() << "\n";
  if (auto serial = chardev_path(args, "serial0"); !serial.empty()) serve_serial(serial);
  FakeQmpServer fake(qmp, steps, false);
  fake.wait_done(std::chrono::hours(1));
  auto failures = fake.failures();
  if (!failures.empty()) {
    std::ofstream out(dir + "/fake-qmp.failures");
    for (auto& f : failures) out << f << "\n";
    std::fprintf(stderr, "fake qemu: %s\n", failures[0].c_str());
    return 3;
  }
  if (steps.back().kind == ScenarioStep::stall)
    for (;;) ::pause();
  return 0;
}
