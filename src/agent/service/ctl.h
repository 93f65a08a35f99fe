// `strata-agent ctl`: a debug client for a running agent. Each command returns a process
// exit code (agent_cli.h); output is a table for people or JSON (-o json) for scripts.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace strata::agent::cli {

struct CtlGlobal {
  std::string socket = "/var/lib/strata-agent/agent.sock";
  std::string address;  // HOST:PORT; overrides socket
  std::string output = "table";
  int timeout_s = 30;
  std::string request_id;  // for mutating commands; random when empty
};

struct DefineFlags {
  std::string spec_file;
  std::string name, uuid, machine, kernel, initrd, cmdline;
  uint32_t vcpus = 0;
  std::string memory;  // MiB, or with a K/M/G/T suffix
  std::vector<std::string> disks, nics, labels;
  bool no_vnc = false;
  bool start = false;
};

int ctl_inventory(const CtlGlobal& g);
int ctl_metrics(const CtlGlobal& g);
int ctl_health(const CtlGlobal& g);
int ctl_vm_list(const CtlGlobal& g, const std::vector<std::string>& labels);
int ctl_vm_show(const CtlGlobal& g, const std::string& name);
int ctl_vm_define(const CtlGlobal& g, const DefineFlags& f);
// action: start | shutdown | force-off | reboot | pause | resume | undefine
int ctl_vm_action(const CtlGlobal& g, const std::string& action, const std::string& name,
                  int timeout_s);
int ctl_vm_console(const CtlGlobal& g, const std::string& name, bool follow,
                   const std::string& write, bool write_given, uint32_t bytes);
int ctl_vm_guest_agent(const CtlGlobal& g, const std::string& name, const std::string& json,
                       int timeout_s);
int ctl_events(const CtlGlobal& g, const std::string& vm, bool current);
int ctl_image_list(const CtlGlobal& g);

}  // namespace strata::agent::cli
