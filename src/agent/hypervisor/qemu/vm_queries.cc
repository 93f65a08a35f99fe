// QemuHypervisor queries and channels: stats (/proc, QMP blockstats, tap counters),
// console tail/subscribe/write, and the qemu-guest-agent channel.
#include <poll.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "qemu_hypervisor.h"
#include "strata/common/json.h"
#include "strata/common/random.h"

namespace strata::agent::qemu {

using model::VmState;
using namespace std::chrono_literals;

namespace {

uint64_t read_u64(const std::string& path) {
  std::ifstream in(path);
  uint64_t v = 0;
  in >> v;
  return v;
}

}  // namespace

Result<VmStats> QemuHypervisor::stats(const std::string& name) const {
  auto t = target(name, {VmState::running, VmState::paused, VmState::shutting_down}, true);
  if (!t) return tl::unexpected(t.error());
  VmStats s;
  std::string proc = "/proc/" + std::to_string(t->pid);
  std::ifstream stat(proc + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return unavailable("QEMU process is gone");
  // Fields after the ")" closing the command name start at field 3 (state).
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::vector<std::string> f{std::istream_iterator<std::string>(rest), {}};
  if (f.size() > 12) {
    uint64_t ticks = std::stoull(f[11]) + std::stoull(f[12]);  // utime + stime
    s.cpu_time_ns = ticks * (1000000000ull / static_cast<uint64_t>(::sysconf(_SC_CLK_TCK)));
  }
  std::ifstream statm(proc + "/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  s.rss_bytes = resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  // A monitor that is closing (the VM shutting down) leaves the disk counters at zero, as
  // before; a reply of the wrong shape is a bug to report, not a zero.
  if (auto bs = t->qmp->query_blockstats(10s)) {
    for (auto& dev : *bs) {
      s.disk_read_bytes += dev.rd_bytes;
      s.disk_write_bytes += dev.wr_bytes;
    }
  } else if (bs.error().code == ErrorCode::internal) {
    return tl::unexpected(bs.error());
  }
  model::VmSpec spec;
  {
    std::lock_guard lk(mu_);
    if (auto v = find_locked(name)) spec = (*v)->spec;
  }
  for (auto& tap : taps_of(spec)) {
    if (tap.empty()) continue;
    // What the tap transmits, the guest receives.
    s.net_rx_bytes += read_u64("/sys/class/net/" + tap + "/statistics/tx_bytes");
    s.net_tx_bytes += read_u64("/sys/class/net/" + tap + "/statistics/rx_bytes");
  }
  return s;
}

Result<nlohmann::json> QemuHypervisor::qmp(const std::string& name, const std::string& command,
                                           const nlohmann::json& arguments,
                                           std::chrono::milliseconds timeout) {
  auto t = target(name, {VmState::running, VmState::paused, VmState::shutting_down}, true);
  if (!t) return tl::unexpected(t.error());
  return t->qmp->raw(command, arguments, timeout);
}

Result<std::string> QemuHypervisor::console_tail(const std::string& name, size_t max_bytes) const {
  std::string log;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    log = vm_files((*v)->dir).console_log;
  }
  return read_console_tail(log, max_bytes);
}

Result<ConsoleSubscriptionPtr> QemuHypervisor::console_subscribe(
    const std::string& name, std::function<void(std::string_view)> on_data) {
  std::lock_guard lk(mu_);
  auto v = find_locked(name);
  if (!v) return tl::unexpected(v.error());
  if (!(*v)->console || (*v)->console->closed())
    return make_error(ErrorCode::failed_precondition, "VM console is not connected");
  return (*v)->console->subscribe(std::move(on_data));
}

Status QemuHypervisor::console_write(const std::string& name, std::string_view data) {
  std::shared_ptr<ConsoleHub> hub;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    hub = (*v)->console;
  }
  if (!hub) return make_error(ErrorCode::failed_precondition, "VM console is not connected");
  return hub->write(data);
}

namespace {

// A guest agent's reply is written by the guest (a tenant): read with the strict, bounded
// parser, and every member checked for its type before it is read (nlohmann's value()
// throws on a string where a number is expected, and converting a number out of int64's
// range is undefined behaviour).
constexpr JsonLimits kGuestReplyLimits{.max_depth = 16, .max_values = 200000};

bool is_sync_reply(const std::string& line, int64_t sync_id) {
  auto j = parse_json(line, kGuestReplyLimits);
  if (!j || !j->is_object()) return false;
  auto ret = j->find("return");
  if (ret == j->end() || !ret->is_number_integer()) return false;
  if (ret->is_number_unsigned())
    return ret->get<uint64_t>() == static_cast<uint64_t>(sync_id);
  return ret->get<int64_t>() == sync_id;
}

}  // namespace

Result<std::string> QemuHypervisor::guest_agent(const std::string& name,
                                                const std::string& command_json,
                                                std::chrono::milliseconds timeout) {
  auto cmd = nlohmann::json::parse(command_json, nullptr, false);
  if (cmd.is_discarded() || !cmd.is_object() || !cmd.contains("execute"))
    return invalid_argument("command_json", "must be a JSON object with \"execute\"");
  if (auto t = target(name, {VmState::running, VmState::paused}, true); !t)
    return tl::unexpected(t.error());
  std::string sock;
  std::shared_ptr<std::mutex> qga_mu;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    sock = vm_files((*v)->dir).qga_socket;
    qga_mu = (*v)->qga_mu;
  }
  std::lock_guard one_at_a_time(*qga_mu);  // QEMU's chardev takes one client
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] {
    return std::max(0ms, std::chrono::duration_cast<std::chrono::milliseconds>(
                             deadline - std::chrono::steady_clock::now()));
  };
  auto fd = connect_unix(sock);
  if (!fd) return tl::unexpected(fd.error());
  // Reads one line; with `skip_to_ff`, first discards everything up to a 0xFF byte (the
  // delimiter guest-sync-delimited makes the agent send, flushing stale replies).
  std::string buf;
  auto read_line = [&](bool skip_to_ff) -> Result<std::string> {
    bool synced = !skip_to_ff;
    for (;;) {
      if (!synced) {
        if (auto p = buf.find('\xff'); p != std::string::npos) {
          buf.erase(0, p + 1);
          synced = true;
        } else {
          buf.clear();
        }
      }
      if (synced) {
        if (auto nl = buf.find('\n'); nl != std::string::npos) {
          std::string line = buf.substr(0, nl);
          buf.erase(0, nl + 1);
          if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
          return line;
        }
      }
      if (buf.size() > (16u << 20)) return internal_error("guest agent reply too large");
      auto r = wait_readable(fd->get(), left());
      if (!r) return tl::unexpected(r.error());
      if (!*r) return make_error(ErrorCode::deadline_exceeded, "guest agent did not answer");
      char tmp[4096];
      ssize_t n = ::read(fd->get(), tmp, sizeof(tmp));
      if (n <= 0) return unavailable("guest agent channel closed");
      buf.append(tmp, static_cast<size_t>(n));
    }
  };
  int64_t sync_id = static_cast<int64_t>(random_u64() & 0x7fffffff);
  nlohmann::json sync = {{"execute", "guest-sync-delimited"}, {"arguments", {{"id", sync_id}}}};
  if (auto s = write_all(fd->get(), sync.dump() + "\n", left()); !s)
    return tl::unexpected(s.error());
  for (;;) {
    auto line = read_line(true);
    if (!line) return tl::unexpected(line.error());
    if (is_sync_reply(*line, sync_id)) break;
  }
  if (auto s = write_all(fd->get(), cmd.dump() + "\n", left()); !s)
    return tl::unexpected(s.error());
  auto reply = read_line(false);
  if (!reply) return tl::unexpected(reply.error());
  auto j = parse_json(*reply, kGuestReplyLimits);
  if (!j || !j->is_object()) return internal_error("malformed guest agent reply");
  return *reply;
}

}  // namespace strata::agent::qemu
