// A per-test temporary folder under /tmp that never outlives its guests: on destruction
// it SIGKILLs every process whose command line names the folder (QEMU and its shim run
// detached from the test, so a failed test would otherwise leave them running), then
// removes the folder. Folders left by a test process that died (crash, ctest timeout) are
// swept the same way the next time a TestRoot with the same prefix is made.
// Header-only: integration tests include it directly.
#pragma once

#include <signal.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace strata::integration {

namespace detail {

// Field 22 of /proc/<pid>/stat (start time in clock ticks): with the pid it identifies a
// process even after pid reuse. Empty when the process does not exist.
inline std::string proc_start_time(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return "";
  auto close = stat.rfind(')');  // the comm field may contain spaces
  if (close == std::string::npos) return "";
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && (rest >> field); ++i) {
    if (i == 22) return field;
  }
  return "";
}

inline std::string proc_cmdline(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Pids (other than ours) whose argv mentions `dir`.
inline std::vector<int> processes_naming(const std::string& dir) {
  std::vector<int> pids;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string n = e.path().filename().string();
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) continue;
    int pid = std::stoi(n);
    if (pid == ::getpid()) continue;
    if (proc_cmdline(pid).find(dir) != std::string::npos) pids.push_back(pid);
  }
  return pids;
}

// SIGKILLs them and waits (bounded) until they are gone. Returns how many were found.
inline size_t kill_processes_naming(const std::string& dir) {
  auto pids = processes_naming(dir);
  for (int pid : pids) ::kill(pid, SIGKILL);
  for (int i = 0; i < 100 && !processes_naming(dir).empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return pids.size();
}

}  // namespace detail

class TestRoot {
  struct Key {};  // only make() constructs

 public:
  // Makes /tmp/<prefix>-XXXXXX after sweeping stale folders of that prefix; null on failure
  // (errno describes it).
  static std::unique_ptr<TestRoot> make(const std::string& prefix) {
    sweep_stale(prefix);
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) return nullptr;
    // QEMU runs as strata-qemu (see strata/agent/qemu_user.h): it must pass through to the
    // VM and image folders below (search only; mkdtemp makes 0700).
    ::chmod(buf.data(), 0711);
    auto r = std::make_unique<TestRoot>(Key{}, buf.data());
    std::ofstream(r->path_ + "/owner")
        << ::getpid() << " " << detail::proc_start_time(::getpid()) << "\n";
    return r;
  }

  TestRoot(Key, std::string path) : path_(std::move(path)) {}
  ~TestRoot() {
    detail::kill_processes_naming(path_);
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TestRoot(const TestRoot&) = delete;
  TestRoot& operator=(const TestRoot&) = delete;

  const std::string& path() const { return path_; }
  // Processes still naming the folder right now (a clean test ends with none).
  std::vector<int> live_processes() const { return detail::processes_naming(path_); }

  // Removes /tmp/<prefix>-* folders whose owner process is gone, killing their guests.
  static void sweep_stale(const std::string& prefix) {
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator("/tmp", ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind(prefix + "-", 0) != 0 || !e.is_directory(ec)) continue;
      std::ifstream in(e.path() / "owner");
      int pid = 0;
      std::string start;
      if (!(in >> pid >> start)) continue;  // being made right now, or not ours
      if (pid > 0 && detail::proc_start_time(pid) == start) continue;  // owner alive
      detail::kill_processes_naming(e.path().string());
      std::filesystem::remove_all(e.path(), ec);
    }
  }

 private:
  std::string path_;
};

}  // namespace strata::integration
