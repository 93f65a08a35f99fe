// Local agent child and self-enrollment for stratad --all-in-one.
#include "local_agent.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "strata/common/dir_lock.h"
#include "strata/common/log.h"
#include "strata/common/process.h"
#include "strata/enroll/enroll_client.h"
#include "strata/manager/agents/agent_client.h"
#include "strata/manager/auth/tokens.h"

extern char** environ;

namespace strata::manager {

namespace fs = std::filesystem;

std::string default_agent_binary() {
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto sibling = self.parent_path() / "strata-agent";
    if (fs::exists(sibling)) return sibling.string();
  }
  return find_executable("strata-agent");
}

LocalAgent::~LocalAgent() { stop(); }

namespace {

// strata-agent's lock file in its state folder and its exit code when another agent holds
// it (kAgentLockFile and kExitLocked in strata/agent/service/agent_cli.h; the manager does
// not link the agent's libraries). test/e2e/crash_restart.sh checks both ends agree.
constexpr const char* kAgentLockFile = "agent.lock";
constexpr int kAgentExitLocked = 7;
constexpr auto kStartTimeout = std::chrono::seconds(120);

}  // namespace

Status LocalAgent::start(const std::string& binary, const std::string& data_dir,
                         const std::string& accel, const std::vector<std::string>& datastores) {
  std::string state = data_dir + "/agent";
  fs::create_directories(state);
  fs::create_directories(data_dir + "/images");
  address_ = "unix:" + state + "/agent.sock";
  lock_path_ = state + "/" + kAgentLockFile;
  log_ = data_dir + "/agent.log";
  // Adopt the agent that holds the folder, else start one. Twice more if the folder changes
  // hands meanwhile (our child lost the lock to another starter, or the adopted agent quit).
  Status last = internal_error("not started");
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto holder = lock_holder(lock_path_);
    if (!holder) return tl::unexpected(holder.error().wrap("local agent lock"));
    last = *holder ? adopt(**holder) : spawn(binary, state, data_dir, accel, datastores);
    if (last || last.error().code != ErrorCode::conflict) return last;
    logger("manager")->warn("local agent: {}; trying again", last.error().message);
  }
  return last;
}

Status LocalAgent::spawn(const std::string& binary, const std::string& state,
                         const std::string& data_dir, const std::string& accel,
                         const std::vector<std::string>& datastores) {
  if (binary.empty() || !fs::exists(binary))
    return make_error(ErrorCode::failed_precondition,
                      "strata-agent not found (next to stratad or in PATH); use --agent-binary");
  adopted_ = false;
  std::vector<std::string> argv = {binary, "serve", "--state-dir", state, "--images",
                                   data_dir + "/images", "--listen", address_, "--accel", accel};
  for (const auto& ds : datastores) {
    argv.emplace_back("--datastore");
    argv.push_back(ds);
  }
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0640);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  int rc = posix_spawn(&pid_, binary.c_str(), &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    pid_ = -1;
    return internal_error(fmt::format("cannot start {}: {}", binary, std::strerror(rc)));
  }
  logger("manager")->info("local agent started pid={} log={}", pid_, log_);
  return wait_healthy([this]() -> Status {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return {};
    pid_ = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == kAgentExitLocked)
      return make_error(ErrorCode::conflict, "another strata-agent took " + lock_path_);
    return internal_error(fmt::format("strata-agent exited during start-up; see {}", log_));
  });
}

Status LocalAgent::adopt(int pid) {
  // The pid is written just after the lock is taken: a holder seen an instant too early
  // reads as 0.
  for (int i = 0; i < 20 && pid == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto h = lock_holder(lock_path_);
    if (h && !*h) return make_error(ErrorCode::conflict, "the local agent holding the lock exited");
    if (h && *h) pid = **h;
  }
  adopted_ = true;
  pid_ = pid;
  logger("manager")->info(
      "local agent still running from a previous stratad: adopting it pid={} socket={}", pid,
      address_);
  return wait_healthy([this]() -> Status {
    auto h = lock_holder(lock_path_);
    if (h && !*h) {
      pid_ = -1;
      return make_error(ErrorCode::conflict, "the adopted local agent exited");
    }
    return {};
  });
}

Status LocalAgent::wait_healthy(const std::function<Status()>& alive) {
  AgentClient client(address_);
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto st = alive(); !st) return st;
    auto h = client.health(std::chrono::milliseconds(1000));
    if (h && h->serving()) return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return make_error(ErrorCode::deadline_exceeded,
                    fmt::format("strata-agent did not answer within {} s; see {}",
                                kStartTimeout.count(), log_));
}

Status LocalAgent::enroll(store::Store& store, const std::string& api_url,
                          const enroll::TlsTrust& trust, const std::string& name) {
  if (auto existing = store.get_host_by_name(name)) {
    if (existing->address == address_) return {};
    existing->address = address_;
    if (auto u = store.update_host(*existing); !u) return tl::unexpected(u.error());
    return {};
  }
  auto secret = generate_secret("stj_");
  if (!secret) return tl::unexpected(secret.error());
  store::JoinTokenRecord jt;
  jt.secret_hash = sha256_hex(*secret);
  jt.expires_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count() +
                  600000;
  if (auto c = store.create_join_token(jt); !c) return tl::unexpected(c.error());
  // A UNIX socket address: no CSR, the channel stays plaintext behind the socket's mode.
  enroll::EnrollRequest req;
  req.manager_url = api_url;
  req.trust = trust;
  req.join_token = *secret;
  req.name = name;
  req.address = address_;
  AgentClient client(address_);
  if (auto inv = client.inventory()) {
    auto j = nlohmann::json::parse(inv->inventory_json(), nullptr, false);
    if (!j.is_discarded() && j.is_object()) req.inventory = j;
    req.inventory["accelerator"] = inv->accelerator();
    req.inventory["cpu_threads"] = inv->cpu_threads();
    req.inventory["memory_total_bytes"] = inv->memory_total_bytes();
  }
  auto host = enroll::enroll_host(req);
  if (!host) return tl::unexpected(host.error());
  return {};
}

void LocalAgent::stop() {
  if (pid_ <= 0) return;
  if (adopted_) {
    // Not our child: no waitpid. The lock says whether that pid still is the agent (a
    // recycled pid would not hold it) and when it has exited.
    auto holds = [&] {
      auto h = lock_holder(lock_path_);
      return h && *h && **h == pid_;
    };
    auto wait_released = [&](int tenths) {
      for (int i = 0; i < tenths; ++i) {
        if (!holds()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      return !holds();
    };
    if (holds()) {
      kill(pid_, SIGTERM);
      if (!wait_released(100) && holds()) {
        kill(pid_, SIGKILL);
        wait_released(50);
      }
    }
    pid_ = -1;
    return;
  }
  kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace strata::manager
