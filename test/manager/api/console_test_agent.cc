// A real AgentService (in-memory driver) in a process of its own, for the console relay
// test (console_relay_test.cc): that test counts the threads of its own process, which
// must be the manager's alone. Usage: console_test_agent DIR COUNT. Serves on unix:DIR/agent.sock
// with VMs c0..c<COUNT-1> defined and running, each with a VNC display on DIR/vnc.sock: a
// stand-in for QEMU's VNC listener that greets each client with "RFB 003.008\n" and echoes
// what it reads. Prints "ready" when serving; stops the service (so open streams end the
// way the manager sees an agent going away) when its stdin closes.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include "agent/service/memory_hypervisor.h"
#include "agent/service/served_agent.h"

namespace {

void serve_vnc(const std::string& path) {
  ::unlink(path.c_str());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, 128) != 0) {
    std::perror("vnc socket");
    std::exit(2);
  }
  std::thread([fd] {
    for (;;) {
      int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      std::thread([c] {
        if (::write(c, "RFB 003.008\n", 12) == 12) {
          char buf[4096];
          for (;;) {
            ssize_t n = ::read(c, buf, sizeof(buf));
            if (n <= 0 || ::write(c, buf, static_cast<size_t>(n)) != n) break;
          }
        }
        ::close(c);
      }).detach();
    }
  }).detach();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace strata;
  if (argc != 3) {
    std::cerr << "usage: console_test_agent DIR COUNT\n";
    return 2;
  }
  const std::string dir = argv[1];
  const int count = std::stoi(argv[2]);
  agent::testing::MemoryHypervisor hv;
  hv.vnc_socket = dir + "/vnc.sock";
  serve_vnc(hv.vnc_socket);
  for (int i = 0; i < count; ++i) {
    model::VmSpec spec;
    spec.name = "c" + std::to_string(i);
    spec.kernel_boot = model::KernelBoot{"vmlinuz", "", ""};
    if (!hv.define(spec) || !hv.start(spec.name)) {
      std::cerr << "cannot define " << spec.name << "\n";
      return 1;
    }
  }
  agent::service::AgentServiceOptions opts;
  opts.state_dir = dir + "/state";
  opts.agent_version = "test";
  opts.hostname = "h1";
  opts.accelerator = "tcg";
  opts.inventory = [] {
    agent::v1::HostInventory inv;
    inv.set_hostname("h1");
    inv.set_accelerator("tcg");
    inv.set_cpu_threads(4);
    inv.set_memory_total_bytes(4096ull << 20);
    inv.set_inventory_json("{}");
    return Result<agent::v1::HostInventory>(inv);
  };
  auto served = agent::testing::ServedAgent::start(hv, opts, dir + "/agent.sock");
  if (!served) {
    std::cerr << served.error().to_string() << "\n";
    return 1;
  }
  std::cout << "ready" << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  (*served)->stop();
  return 0;
}
