// Typed QMP monitor (see qemu_monitor.h). Every reply goes through a parse_* function that
// checks each field it reads with the json's type predicates before reading it, so a
// reply of an unexpected shape becomes an Error, never a nlohmann exception.
#include "qemu_monitor.h"

#include <algorithm>

#include "strata/common/log.h"

namespace strata::agent::qemu {

using nlohmann::json;

namespace {

tl::unexpected<Error> bad_reply(const std::string& what, const std::string& why) {
  return internal_error("malformed QMP reply to " + what + ": " + why);
}

// Typed field readers: `required` ones fail on absence, all fail on a wrong type.
Result<const json*> field(const json& obj, const char* name, const std::string& what,
                          bool required) {
  if (!obj.is_object()) return bad_reply(what, "not an object");
  auto it = obj.find(name);
  if (it == obj.end()) {
    if (required) return bad_reply(what, std::string("missing \"") + name + "\"");
    return nullptr;
  }
  return &*it;
}

Result<std::string> get_string(const json& obj, const char* name, const std::string& what) {
  auto f = field(obj, name, what, true);
  if (!f) return tl::unexpected(f.error());
  if (!(*f)->is_string()) return bad_reply(what, std::string("\"") + name + "\" is not a string");
  return (*f)->get<std::string>();
}

Result<std::string> get_opt_string(const json& obj, const char* name, const std::string& what) {
  auto f = field(obj, name, what, false);
  if (!f) return tl::unexpected(f.error());
  if (!*f) return std::string();
  if (!(*f)->is_string()) return bad_reply(what, std::string("\"") + name + "\" is not a string");
  return (*f)->get<std::string>();
}

Result<bool> get_bool(const json& obj, const char* name, const std::string& what,
                      std::optional<bool> dflt = std::nullopt) {
  auto f = field(obj, name, what, !dflt);
  if (!f) return tl::unexpected(f.error());
  if (!*f) return *dflt;
  if (!(*f)->is_boolean()) return bad_reply(what, std::string("\"") + name + "\" is not a bool");
  return (*f)->get<bool>();
}

Result<int64_t> get_int(const json& obj, const char* name, const std::string& what) {
  auto f = field(obj, name, what, true);
  if (!f) return tl::unexpected(f.error());
  if (!(*f)->is_number_integer())
    return bad_reply(what, std::string("\"") + name + "\" is not an integer");
  return (*f)->get<int64_t>();
}

Result<std::optional<uint64_t>> get_opt_u64(const json& obj, const char* name,
                                            const std::string& what) {
  auto f = field(obj, name, what, false);
  if (!f) return tl::unexpected(f.error());
  if (!*f) return std::optional<uint64_t>();
  if (!(*f)->is_number_unsigned())
    return bad_reply(what, std::string("\"") + name + "\" is not an unsigned integer");
  return std::optional<uint64_t>((*f)->get<uint64_t>());
}

Result<uint64_t> get_u64(const json& obj, const char* name, const std::string& what) {
  auto v = get_opt_u64(obj, name, what);
  if (!v) return tl::unexpected(v.error());
  if (!*v) return bad_reply(what, std::string("missing \"") + name + "\"");
  return **v;
}

Result<std::optional<int64_t>> get_opt_int(const json& obj, const char* name,
                                           const std::string& what) {
  auto f = field(obj, name, what, false);
  if (!f) return tl::unexpected(f.error());
  if (!*f) return std::optional<int64_t>();
  if (!(*f)->is_number_integer())
    return bad_reply(what, std::string("\"") + name + "\" is not an integer");
  return std::optional<int64_t>((*f)->get<int64_t>());
}

Result<double> get_opt_number(const json& obj, const char* name, const std::string& what) {
  auto f = field(obj, name, what, false);
  if (!f) return tl::unexpected(f.error());
  if (!*f) return 0.0;
  if (!(*f)->is_number()) return bad_reply(what, std::string("\"") + name + "\" is not a number");
  return (*f)->get<double>();
}

Result<uint64_t> get_u64_or0(const json& obj, const char* name, const std::string& what) {
  auto v = get_opt_u64(obj, name, what);
  if (!v) return tl::unexpected(v.error());
  return v->value_or(0);
}

Result<const json*> get_array(const json& v, const std::string& what) {
  if (!v.is_array()) return bad_reply(what, "not an array");
  return &v;
}

}  // namespace

Result<QmpGreeting> parse_greeting(const json& qmp) {
  const std::string what = "greeting";
  auto version = field(qmp, "version", what, true);
  if (!version) return tl::unexpected(version.error());
  auto q = field(**version, "qemu", what, true);
  if (!q) return tl::unexpected(q.error());
  QmpGreeting g;
  for (auto [name, out] :
       {std::pair{"major", &g.major}, {"minor", &g.minor}, {"micro", &g.micro}}) {
    auto v = get_int(**q, name, what);
    if (!v) return tl::unexpected(v.error());
    *out = *v;
  }
  auto pkg = get_opt_string(**version, "package", what);
  if (!pkg) return tl::unexpected(pkg.error());
  g.package = *pkg;
  auto caps = field(qmp, "capabilities", what, true);
  if (!caps) return tl::unexpected(caps.error());
  if (!(*caps)->is_array()) return bad_reply(what, "\"capabilities\" is not an array");
  for (auto& c : **caps) {
    if (!c.is_string()) return bad_reply(what, "a capability is not a string");
    g.capabilities.push_back(c.get<std::string>());
  }
  return g;
}

Result<StatusInfo> parse_status(const json& ret) {
  const std::string what = "query-status";
  StatusInfo s;
  auto status = get_string(ret, "status", what);
  if (!status) return tl::unexpected(status.error());
  auto running = get_bool(ret, "running", what);
  if (!running) return tl::unexpected(running.error());
  s.status = *status;
  s.running = *running;
  return s;
}

Result<std::vector<BlockStatsInfo>> parse_blockstats(const json& ret) {
  const std::string what = "query-blockstats";
  auto arr = get_array(ret, what);
  if (!arr) return tl::unexpected(arr.error());
  std::vector<BlockStatsInfo> out;
  for (auto& dev : ret) {
    BlockStatsInfo b;
    auto device = get_opt_string(dev, "device", what);
    if (!device) return tl::unexpected(device.error());
    auto node = get_opt_string(dev, "node-name", what);
    if (!node) return tl::unexpected(node.error());
    auto stats = field(dev, "stats", what, true);
    if (!stats) return tl::unexpected(stats.error());
    auto rd = get_u64(**stats, "rd_bytes", what);
    if (!rd) return tl::unexpected(rd.error());
    auto wr = get_u64(**stats, "wr_bytes", what);
    if (!wr) return tl::unexpected(wr.error());
    b.device = *device;
    b.node_name = *node;
    b.rd_bytes = *rd;
    b.wr_bytes = *wr;
    out.push_back(std::move(b));
  }
  return out;
}

Result<std::vector<CpuInfoFast>> parse_cpus_fast(const json& ret) {
  const std::string what = "query-cpus-fast";
  auto arr = get_array(ret, what);
  if (!arr) return tl::unexpected(arr.error());
  std::vector<CpuInfoFast> out;
  for (auto& cpu : ret) {
    CpuInfoFast c;
    auto index = get_int(cpu, "cpu-index", what);
    if (!index) return tl::unexpected(index.error());
    auto tid = get_int(cpu, "thread-id", what);
    if (!tid) return tl::unexpected(tid.error());
    auto path = get_string(cpu, "qom-path", what);
    if (!path) return tl::unexpected(path.error());
    auto target = get_string(cpu, "target", what);
    if (!target) return tl::unexpected(target.error());
    c.cpu_index = *index;
    c.thread_id = *tid;
    c.qom_path = *path;
    c.target = *target;
    out.push_back(std::move(c));
  }
  return out;
}

Result<MemorySizeSummary> parse_memory_size_summary(const json& ret) {
  const std::string what = "query-memory-size-summary";
  MemorySizeSummary m;
  auto base = get_u64(ret, "base-memory", what);
  if (!base) return tl::unexpected(base.error());
  auto plugged = get_opt_u64(ret, "plugged-memory", what);
  if (!plugged) return tl::unexpected(plugged.error());
  m.base_memory = *base;
  m.plugged_memory = *plugged;
  return m;
}

Result<BalloonInfo> parse_balloon(const json& ret) {
  auto actual = get_u64(ret, "actual", "query-balloon");
  if (!actual) return tl::unexpected(actual.error());
  return BalloonInfo{*actual};
}

Result<std::vector<MachineInfo>> parse_machines(const json& ret) {
  const std::string what = "query-machines";
  auto arr = get_array(ret, what);
  if (!arr) return tl::unexpected(arr.error());
  std::vector<MachineInfo> out;
  for (auto& m : ret) {
    MachineInfo i;
    auto name = get_string(m, "name", what);
    if (!name) return tl::unexpected(name.error());
    auto alias = get_opt_string(m, "alias", what);
    if (!alias) return tl::unexpected(alias.error());
    auto dflt = get_bool(m, "is-default", what, false);
    if (!dflt) return tl::unexpected(dflt.error());
    auto cpu_max = get_int(m, "cpu-max", what);
    if (!cpu_max) return tl::unexpected(cpu_max.error());
    auto deprecated = get_bool(m, "deprecated", what, false);
    if (!deprecated) return tl::unexpected(deprecated.error());
    i.name = *name;
    i.alias = *alias;
    i.is_default = *dflt;
    i.cpu_max = *cpu_max;
    i.deprecated = *deprecated;
    out.push_back(std::move(i));
  }
  return out;
}

Result<MigrationInfo> parse_migrate_info(const json& ret) {
  const std::string what = "query-migrate";
  if (!ret.is_object()) return bad_reply(what, "not an object");
  MigrationInfo info;
  auto status = get_opt_string(ret, "status", what);  // absent before any migration
  if (!status) return tl::unexpected(status.error());
  info.status = status->empty() ? "none" : *status;
  for (auto [name, out] : {std::pair{"expected-downtime", &info.expected_downtime_ms},
                           {"downtime", &info.downtime_ms},
                           {"total-time", &info.total_time_ms},
                           {"cpu-throttle-percentage", &info.cpu_throttle_percentage}}) {
    auto v = get_opt_int(ret, name, what);
    if (!v) return tl::unexpected(v.error());
    *out = *v;
  }
  auto err = get_opt_string(ret, "error-desc", what);
  if (!err) return tl::unexpected(err.error());
  info.error_desc = *err;
  auto ram = field(ret, "ram", what, false);
  if (!ram) return tl::unexpected(ram.error());
  if (*ram) {
    for (auto [name, out] : {std::pair{"total", &info.ram_total},
                             {"transferred", &info.ram_transferred},
                             {"remaining", &info.ram_remaining},
                             {"dirty-pages-rate", &info.dirty_pages_rate},
                             {"page-size", &info.page_size},
                             {"dirty-sync-count", &info.dirty_sync_count}}) {
      auto v = get_u64_or0(**ram, name, what);
      if (!v) return tl::unexpected(v.error());
      *out = *v;
    }
    auto mbps = get_opt_number(**ram, "mbps", what);
    if (!mbps) return tl::unexpected(mbps.error());
    info.mbps = *mbps;
  }
  auto addrs = field(ret, "socket-address", what, false);
  if (!addrs) return tl::unexpected(addrs.error());
  if (*addrs) {
    if (!(*addrs)->is_array()) return bad_reply(what, "\"socket-address\" is not an array");
    for (auto& a : **addrs) {
      auto type = get_string(a, "type", what);
      if (!type) return tl::unexpected(type.error());
      if (*type != "inet") continue;
      auto host = get_string(a, "host", what);
      if (!host) return tl::unexpected(host.error());
      auto port = get_string(a, "port", what);
      if (!port) return tl::unexpected(port.error());
      info.socket_addresses.emplace_back(*host, *port);
    }
  }
  return info;
}

Result<std::vector<BlockJobInfo>> parse_block_jobs(const json& ret) {
  const std::string what = "query-block-jobs";
  auto arr = get_array(ret, what);
  if (!arr) return tl::unexpected(arr.error());
  std::vector<BlockJobInfo> out;
  for (auto& j : ret) {
    BlockJobInfo b;
    auto type = get_string(j, "type", what);
    if (!type) return tl::unexpected(type.error());
    auto device = get_string(j, "device", what);
    if (!device) return tl::unexpected(device.error());
    auto len = get_u64(j, "len", what);
    if (!len) return tl::unexpected(len.error());
    auto offset = get_u64(j, "offset", what);
    if (!offset) return tl::unexpected(offset.error());
    auto ready = get_bool(j, "ready", what);
    if (!ready) return tl::unexpected(ready.error());
    auto status = get_string(j, "status", what);
    if (!status) return tl::unexpected(status.error());
    auto error = get_opt_string(j, "error", what);
    if (!error) return tl::unexpected(error.error());
    b.type = *type;
    b.device = *device;
    b.len = *len;
    b.offset = *offset;
    b.ready = *ready;
    b.status = *status;
    b.error = *error;
    out.push_back(std::move(b));
  }
  return out;
}

Result<std::vector<BlockNodeInfo>> parse_named_block_nodes(const json& ret) {
  const std::string what = "query-named-block-nodes";
  auto arr = get_array(ret, what);
  if (!arr) return tl::unexpected(arr.error());
  std::vector<BlockNodeInfo> out;
  for (auto& n : ret) {
    BlockNodeInfo b;
    auto node = get_string(n, "node-name", what);
    if (!node) return tl::unexpected(node.error());
    auto drv = get_string(n, "drv", what);
    if (!drv) return tl::unexpected(drv.error());
    auto file = get_string(n, "file", what);
    if (!file) return tl::unexpected(file.error());
    auto backing = get_opt_string(n, "backing_file", what);
    if (!backing) return tl::unexpected(backing.error());
    b.node_name = *node;
    b.drv = *drv;
    b.file = *file;
    b.backing_file = *backing;
    if (auto it = n.find("dirty-bitmaps"); it != n.end()) {
      if (!it->is_array()) return bad_reply(what, "\"dirty-bitmaps\" is not an array");
      for (auto& bm : *it) {
        DirtyBitmapInfo d;
        // "name" is optional: a block job's own bitmap (a running mirror's) has none. Such
        // a bitmap is QEMU's, not ours, and is left out.
        auto name = get_opt_string(bm, "name", what);
        if (!name) return tl::unexpected(name.error());
        auto count = get_u64(bm, "count", what);
        if (!count) return tl::unexpected(count.error());
        auto gran = get_u64(bm, "granularity", what);
        if (!gran) return tl::unexpected(gran.error());
        auto rec = get_bool(bm, "recording", what);
        if (!rec) return tl::unexpected(rec.error());
        auto busy = get_bool(bm, "busy", what);
        if (!busy) return tl::unexpected(busy.error());
        auto pers = get_bool(bm, "persistent", what);
        if (!pers) return tl::unexpected(pers.error());
        // Present (true) only for a bitmap QEMU found marked in-use when it opened the image.
        auto inc = get_bool(bm, "inconsistent", what, false);
        if (!inc) return tl::unexpected(inc.error());
        d.name = *name;
        d.count = *count;
        d.granularity = *gran;
        d.recording = *rec;
        d.busy = *busy;
        d.persistent = *pers;
        d.inconsistent = *inc;
        if (!d.name.empty()) b.dirty_bitmaps.push_back(std::move(d));
      }
    }
    out.push_back(std::move(b));
  }
  return out;
}

json to_json(const MigrationParameters& p) {
  json j = json::object();
  if (p.downtime_limit_ms) j["downtime-limit"] = *p.downtime_limit_ms;
  if (p.max_bandwidth) j["max-bandwidth"] = *p.max_bandwidth;
  if (p.max_postcopy_bandwidth) j["max-postcopy-bandwidth"] = *p.max_postcopy_bandwidth;
  if (p.tls_creds) j["tls-creds"] = *p.tls_creds;
  if (p.tls_hostname) j["tls-hostname"] = *p.tls_hostname;
  return j;
}

Result<MonitorEvent> parse_monitor_event(const QmpMessage& m) {
  if (m.kind != QmpKind::event) return internal_error("not a QMP event");
  MonitorEvent e;
  e.name = m.event;
  e.timestamp_us = m.timestamp_us;
  const std::string what = "event " + m.event;
  auto guest_reason = [&]() -> Status {
    auto guest = get_bool(m.payload, "guest", what);
    if (!guest) return tl::unexpected(guest.error());
    auto reason = get_string(m.payload, "reason", what);
    if (!reason) return tl::unexpected(reason.error());
    e.guest = *guest;
    e.reason = *reason;
    return {};
  };
  if (m.event == "SHUTDOWN") {
    e.kind = MonitorEventKind::shutdown;
    if (auto s = guest_reason(); !s) return tl::unexpected(s.error());
  } else if (m.event == "RESET") {
    e.kind = MonitorEventKind::reset;
    if (auto s = guest_reason(); !s) return tl::unexpected(s.error());
  } else if (m.event == "POWERDOWN") {
    e.kind = MonitorEventKind::powerdown;
  } else if (m.event == "STOP") {
    e.kind = MonitorEventKind::stop;
  } else if (m.event == "RESUME") {
    e.kind = MonitorEventKind::resume;
  } else if (m.event == "GUEST_PANICKED") {
    e.kind = MonitorEventKind::guest_panicked;
    auto action = get_string(m.payload, "action", what);
    if (!action) return tl::unexpected(action.error());
    e.action = *action;
  } else if (m.event == "WATCHDOG") {
    e.kind = MonitorEventKind::watchdog;
    auto action = get_string(m.payload, "action", what);
    if (!action) return tl::unexpected(action.error());
    e.action = *action;
  } else if (m.event == "MIGRATION") {
    e.kind = MonitorEventKind::migration;
    auto status = get_string(m.payload, "status", what);
    if (!status) return tl::unexpected(status.error());
    e.status = *status;
  } else if (m.event == "BLOCK_JOB_READY" || m.event == "BLOCK_JOB_COMPLETED" ||
             m.event == "BLOCK_JOB_CANCELLED") {
    e.kind = m.event == "BLOCK_JOB_READY"       ? MonitorEventKind::block_job_ready
             : m.event == "BLOCK_JOB_COMPLETED" ? MonitorEventKind::block_job_completed
                                                : MonitorEventKind::block_job_cancelled;
    auto type = get_string(m.payload, "type", what);
    if (!type) return tl::unexpected(type.error());
    auto device = get_string(m.payload, "device", what);
    if (!device) return tl::unexpected(device.error());
    auto len = get_u64(m.payload, "len", what);
    if (!len) return tl::unexpected(len.error());
    auto offset = get_u64(m.payload, "offset", what);
    if (!offset) return tl::unexpected(offset.error());
    auto error = get_opt_string(m.payload, "error", what);
    if (!error) return tl::unexpected(error.error());
    e.job_type = *type;
    e.job = *device;
    e.len = *len;
    e.offset = *offset;
    e.error = *error;
  } else if (m.event == "BLOCK_JOB_ERROR") {
    e.kind = MonitorEventKind::block_job_error;
    auto device = get_string(m.payload, "device", what);
    if (!device) return tl::unexpected(device.error());
    auto op = get_string(m.payload, "operation", what);
    if (!op) return tl::unexpected(op.error());
    auto action = get_string(m.payload, "action", what);
    if (!action) return tl::unexpected(action.error());
    e.job = *device;
    e.error = *op;
    e.action = *action;
  }
  return e;
}

Result<std::unique_ptr<QemuMonitor>> QemuMonitor::connect(const std::string& socket_path,
                                                          std::chrono::milliseconds timeout,
                                                          EventCallback on_event,
                                                          EofCallback on_eof,
                                                          std::function<bool()> keep_trying) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto client = QmpClient::connect(
      socket_path, timeout,
      [on_event = std::move(on_event)](const QmpMessage& m) {
        auto e = parse_monitor_event(m);
        if (!e) {
          logger("agent.qmp")->warn("dropping malformed QMP event error={}", e.error().message);
          return;
        }
        if (on_event) on_event(*e);
      },
      std::move(on_eof), std::move(keep_trying));
  if (!client) return tl::unexpected(client.error());
  auto greeting = parse_greeting((*client)->greeting());
  if (!greeting) return tl::unexpected(greeting.error());
  std::unique_ptr<QemuMonitor> mon(new QemuMonitor(std::move(*client), std::move(*greeting)));
  auto left = std::max(std::chrono::milliseconds(1000),
                       std::chrono::duration_cast<std::chrono::milliseconds>(
                           deadline - std::chrono::steady_clock::now()));
  if (auto s = mon->qmp_capabilities(left); !s) return tl::unexpected(s.error());
  return mon;
}

Status QemuMonitor::run_void(const char* command, std::chrono::milliseconds timeout,
                             const json& arguments, QmpExec how) {
  auto r = client_->execute(command, arguments, timeout, how);
  if (!r) return tl::unexpected(r.error());
  if (!r->is_object() || !r->empty()) return bad_reply(command, "expected {}");
  return {};
}

Status QemuMonitor::qmp_capabilities(std::chrono::milliseconds timeout) {
  // Out-of-band only when QEMU offers it (a monitor on a chardev without its own I/O thread
  // does not, and QEMU refuses to enable what it did not offer).
  const auto& caps = greeting_.capabilities;
  const bool oob = std::find(caps.begin(), caps.end(), "oob") != caps.end();
  json args = oob ? json{{"enable", json::array({"oob"})}} : json(nullptr);
  if (auto s = run_void("qmp_capabilities", timeout, args); !s)
    return tl::unexpected(s.error().wrap("qmp_capabilities"));
  client_->set_oob_enabled(oob);
  return {};
}

Result<StatusInfo> QemuMonitor::query_status(std::chrono::milliseconds timeout) {
  return client_->execute("query-status", nullptr, timeout).and_then(parse_status);
}

Status QemuMonitor::cont(std::chrono::milliseconds timeout) { return run_void("cont", timeout); }
Status QemuMonitor::stop(std::chrono::milliseconds timeout) { return run_void("stop", timeout); }
Status QemuMonitor::system_powerdown(std::chrono::milliseconds timeout) {
  return run_void("system_powerdown", timeout);
}
Status QemuMonitor::system_reset(std::chrono::milliseconds timeout) {
  return run_void("system_reset", timeout);
}
Status QemuMonitor::quit(std::chrono::milliseconds timeout) { return run_void("quit", timeout); }

Result<std::vector<BlockStatsInfo>> QemuMonitor::query_blockstats(
    std::chrono::milliseconds timeout) {
  return client_->execute("query-blockstats", nullptr, timeout).and_then(parse_blockstats);
}

Result<std::vector<CpuInfoFast>> QemuMonitor::query_cpus_fast(std::chrono::milliseconds timeout) {
  return client_->execute("query-cpus-fast", nullptr, timeout).and_then(parse_cpus_fast);
}

Result<MemorySizeSummary> QemuMonitor::query_memory_size_summary(
    std::chrono::milliseconds timeout) {
  return client_->execute("query-memory-size-summary", nullptr, timeout)
      .and_then(parse_memory_size_summary);
}

Result<BalloonInfo> QemuMonitor::query_balloon(std::chrono::milliseconds timeout) {
  return client_->execute("query-balloon", nullptr, timeout).and_then(parse_balloon);
}

Result<std::vector<MachineInfo>> QemuMonitor::query_machines(std::chrono::milliseconds timeout) {
  return client_->execute("query-machines", nullptr, timeout).and_then(parse_machines);
}

Status QemuMonitor::migrate_set_capabilities(
    const std::vector<std::pair<std::string, bool>>& caps, std::chrono::milliseconds timeout) {
  json list = json::array();
  for (auto& [name, state] : caps) list.push_back({{"capability", name}, {"state", state}});
  return run_void("migrate-set-capabilities", timeout, {{"capabilities", list}});
}

Status QemuMonitor::migrate_set_parameters(const MigrationParameters& params,
                                           std::chrono::milliseconds timeout) {
  return run_void("migrate-set-parameters", timeout, to_json(params));
}

Status QemuMonitor::migrate(const std::string& uri, std::chrono::milliseconds timeout) {
  return run_void("migrate", timeout, {{"uri", uri}});
}

Status QemuMonitor::migrate_incoming(const std::string& uri, std::chrono::milliseconds timeout) {
  return run_void("migrate-incoming", timeout, {{"uri", uri}});
}

Result<MigrationInfo> QemuMonitor::query_migrate(std::chrono::milliseconds timeout) {
  return client_->execute("query-migrate", nullptr, timeout).and_then(parse_migrate_info);
}

Status QemuMonitor::migrate_cancel(std::chrono::milliseconds timeout) {
  return run_void("migrate_cancel", timeout);
}

Status QemuMonitor::migrate_start_postcopy(std::chrono::milliseconds timeout) {
  return run_void("migrate-start-postcopy", timeout);
}

Status QemuMonitor::migrate_recover(const std::string& uri, std::chrono::milliseconds timeout) {
  return run_void("migrate-recover", timeout, {{"uri", uri}}, oob_if_enabled());
}

Status QemuMonitor::migrate_resume(const std::string& uri, std::chrono::milliseconds timeout) {
  return run_void("migrate", timeout, {{"uri", uri}, {"resume", true}});
}

Status QemuMonitor::migrate_pause(std::chrono::milliseconds timeout) {
  return run_void("migrate-pause", timeout, nullptr, oob_if_enabled());
}

Status QemuMonitor::nbd_server_start(const std::string& host, const std::string& port,
                                     const std::string& tls_creds,
                                     std::chrono::milliseconds timeout) {
  nlohmann::json args = {
      {"addr", {{"type", "inet"}, {"data", {{"host", host}, {"port", port}}}}}};
  if (!tls_creds.empty()) args["tls-creds"] = tls_creds;
  return run_void("nbd-server-start", timeout, std::move(args));
}

Status QemuMonitor::object_add_tls_creds(const std::string& id, const std::string& dir,
                                         const std::string& endpoint, bool verify_peer,
                                         std::chrono::milliseconds timeout) {
  return run_void("object-add", timeout,
                  {{"qom-type", "tls-creds-x509"},
                   {"id", id},
                   {"dir", dir},
                   {"endpoint", endpoint},
                   {"verify-peer", verify_peer}});
}

Status QemuMonitor::object_del(const std::string& id, std::chrono::milliseconds timeout) {
  return run_void("object-del", timeout, {{"id", id}});
}

Status QemuMonitor::nbd_server_stop(std::chrono::milliseconds timeout) {
  return run_void("nbd-server-stop", timeout);
}

Status QemuMonitor::block_export_add_nbd(const std::string& id, const std::string& node_name,
                                         const std::string& name, bool writable,
                                         std::chrono::milliseconds timeout) {
  return run_void("block-export-add", timeout,
                  {{"type", "nbd"},
                   {"id", id},
                   {"node-name", node_name},
                   {"name", name},
                   {"writable", writable}});
}

Status QemuMonitor::blockdev_add_nbd(const std::string& node_name, const std::string& host,
                                     const std::string& port, const std::string& export_name,
                                     const std::string& tls_creds,
                                     std::chrono::milliseconds timeout) {
  nlohmann::json args = {{"driver", "nbd"},
                         {"node-name", node_name},
                         {"server", {{"type", "inet"}, {"host", host}, {"port", port}}},
                         {"export", export_name}};
  if (!tls_creds.empty()) args["tls-creds"] = tls_creds;
  return run_void("blockdev-add", timeout, std::move(args));
}

Status QemuMonitor::blockdev_change_medium(const std::string& id, const std::string& filename,
                                           std::chrono::milliseconds timeout) {
  return run_void(
      "blockdev-change-medium", timeout,
      {{"id", id}, {"filename", filename}, {"format", "raw"}, {"read-only-mode", "read-only"}});
}

Status QemuMonitor::eject(const std::string& id, std::chrono::milliseconds timeout) {
  return run_void("eject", timeout, {{"id", id}, {"force", true}});
}

Result<std::vector<BlockDeviceInfo>> parse_query_block(const json& r) {
  auto bad = [](const std::string& why) { return bad_reply("query-block", why); };
  if (!r.is_array()) return bad("expected an array");
  std::vector<BlockDeviceInfo> out;
  for (const auto& d : r) {
    if (!d.is_object()) return bad("entry is not an object");
    BlockDeviceInfo b;
    auto q = d.find("qdev");
    if (q == d.end() || !q->is_string()) return bad("qdev");
    b.qdev = q->get<std::string>();
    auto rm = d.find("removable");
    if (rm == d.end() || !rm->is_boolean()) return bad("removable");
    b.removable = rm->get<bool>();
    if (auto t = d.find("tray_open"); t != d.end()) {
      if (!t->is_boolean()) return bad("tray_open");
      b.tray_open = t->get<bool>();
    }
    if (auto in = d.find("inserted"); in != d.end()) {
      if (!in->is_object()) return bad("inserted");
      auto f = in->find("file");
      if (f == in->end() || !f->is_string() || f->get<std::string>().empty())
        return bad("inserted.file");
      b.file = f->get<std::string>();
      if (auto n = in->find("node-name"); n != in->end()) {
        if (!n->is_string()) return bad("inserted.node-name");
        b.node_name = n->get<std::string>();
      }
      if (auto img = in->find("image"); img != in->end()) {
        if (!img->is_object()) return bad("inserted.image");
        auto vs = img->find("virtual-size");
        if (vs == img->end() || !vs->is_number_unsigned())
          return bad("inserted.image.virtual-size");
        b.virtual_size = vs->get<uint64_t>();
      }
    }
    out.push_back(std::move(b));
  }
  return out;
}

Result<std::vector<BlockDeviceInfo>> QemuMonitor::query_block(std::chrono::milliseconds timeout) {
  auto r = client_->execute("query-block", nullptr, timeout);
  if (!r) return tl::unexpected(r.error());
  return parse_query_block(*r);
}

Status QemuMonitor::block_resize(const std::string& node_name, uint64_t size,
                                 std::chrono::milliseconds timeout) {
  return run_void("block_resize", timeout, {{"node-name", node_name}, {"size", size}});
}

Status QemuMonitor::blockdev_add_disk(const std::string& file_node, const std::string& format_node,
                                      const std::string& filename, const std::string& format,
                                      bool readonly, std::chrono::milliseconds timeout) {
  if (auto s = run_void("blockdev-add", timeout,
                        {{"driver", "file"},
                         {"node-name", file_node},
                         {"filename", filename},
                         {"read-only", readonly}});
      !s)
    return s;
  if (auto s = run_void("blockdev-add", timeout,
                        {{"driver", format},
                         {"node-name", format_node},
                         {"file", file_node},
                         {"read-only", readonly}});
      !s) {
    (void)blockdev_del(file_node, timeout);
    return s;
  }
  return {};
}

Status QemuMonitor::device_add_virtio_blk(const std::string& id, const std::string& bus,
                                          const std::string& drive, const std::string& serial,
                                          std::chrono::milliseconds timeout) {
  return run_void("device_add", timeout,
                  {{"driver", "virtio-blk-pci"},
                   {"id", id},
                   {"bus", bus},
                   {"drive", drive},
                   {"serial", serial}});
}

Status QemuMonitor::device_add_virtio_net(const std::string& id, const std::string& bus,
                                          const std::string& netdev, const std::string& mac,
                                          std::chrono::milliseconds timeout) {
  return run_void(
      "device_add", timeout,
      {{"driver", "virtio-net-pci"}, {"id", id}, {"bus", bus}, {"netdev", netdev}, {"mac", mac}});
}

Status QemuMonitor::device_del(const std::string& id, std::chrono::milliseconds timeout) {
  return run_void("device_del", timeout, {{"id", id}});
}

Result<std::vector<std::string>> parse_qom_children(const json& r) {
  auto bad = [](const std::string& why) { return bad_reply("qom-list", why); };
  if (!r.is_array()) return bad("expected an array");
  std::vector<std::string> out;
  for (const auto& p : r) {
    if (!p.is_object()) return bad("entry is not an object");
    auto n = p.find("name");
    auto t = p.find("type");
    if (n == p.end() || !n->is_string() || t == p.end() || !t->is_string())
      return bad("name or type");
    if (t->get<std::string>().starts_with("child<")) out.push_back(n->get<std::string>());
  }
  return out;
}

Result<std::vector<std::string>> QemuMonitor::peripheral_ids(std::chrono::milliseconds timeout) {
  return client_->execute("qom-list", {{"path", "/machine/peripheral"}}, timeout)
      .and_then(parse_qom_children);
}

Status QemuMonitor::getfd(const std::string& fdname, int fd, std::chrono::milliseconds timeout) {
  auto r = client_->execute_with_fd("getfd", {{"fdname", fdname}}, fd, timeout);
  if (!r) return tl::unexpected(r.error());
  return {};
}

Status QemuMonitor::closefd(const std::string& fdname, std::chrono::milliseconds timeout) {
  return run_void("closefd", timeout, {{"fdname", fdname}});
}

Status QemuMonitor::netdev_add_tap(const std::string& id, const std::string& fdname,
                                   std::chrono::milliseconds timeout) {
  return run_void("netdev_add", timeout, {{"type", "tap"}, {"id", id}, {"fd", fdname}});
}

Status QemuMonitor::netdev_add_user(const std::string& id, std::chrono::milliseconds timeout) {
  return run_void("netdev_add", timeout, {{"type", "user"}, {"id", id}});
}

Status QemuMonitor::netdev_del(const std::string& id, std::chrono::milliseconds timeout) {
  return run_void("netdev_del", timeout, {{"id", id}});
}

Status QemuMonitor::blockdev_del(const std::string& node_name, std::chrono::milliseconds timeout) {
  return run_void("blockdev-del", timeout, {{"node-name", node_name}});
}

Status QemuMonitor::blockdev_mirror(const std::string& job_id, const std::string& device,
                                    const std::string& target, const std::string& sync,
                                    std::chrono::milliseconds timeout) {
  return run_void("blockdev-mirror", timeout,
                  {{"job-id", job_id}, {"device", device}, {"target", target}, {"sync", sync}});
}

Result<std::vector<BlockJobInfo>> QemuMonitor::query_block_jobs(
    std::chrono::milliseconds timeout) {
  return client_->execute("query-block-jobs", nullptr, timeout).and_then(parse_block_jobs);
}

Status QemuMonitor::block_job_cancel(const std::string& job_id, bool force,
                                     std::chrono::milliseconds timeout) {
  return run_void("block-job-cancel", timeout, {{"device", job_id}, {"force", force}});
}

Status QemuMonitor::blockdev_add_qcow2_overlay(const std::string& node_name,
                                               const std::string& filename,
                                               std::chrono::milliseconds timeout) {
  return run_void("blockdev-add", timeout,
                  {{"driver", "qcow2"},
                   {"node-name", node_name},
                   {"file", {{"driver", "file"}, {"filename", filename}}},
                   {"backing", nullptr}});
}

Status QemuMonitor::blockdev_snapshot(const std::string& node, const std::string& overlay,
                                      std::chrono::milliseconds timeout) {
  return run_void("blockdev-snapshot", timeout, {{"node", node}, {"overlay", overlay}});
}

Status QemuMonitor::block_stream(const std::string& job_id, const std::string& device,
                                 const std::string& base_node,
                                 std::chrono::milliseconds timeout) {
  json args = {{"job-id", job_id}, {"device", device}};
  if (!base_node.empty()) args["base-node"] = base_node;
  return run_void("block-stream", timeout, args);
}

Result<std::vector<BlockNodeInfo>> QemuMonitor::query_named_block_nodes(
    std::chrono::milliseconds timeout) {
  return client_->execute("query-named-block-nodes", {{"flat", true}}, timeout)
      .and_then(parse_named_block_nodes);
}

Status QemuMonitor::blockdev_add_qcow2_fleece(const std::string& node_name,
                                              const std::string& filename,
                                              const std::string& backing_node,
                                              std::chrono::milliseconds timeout) {
  return run_void("blockdev-add", timeout,
                  {{"driver", "qcow2"},
                   {"node-name", node_name},
                   {"file", {{"driver", "file"}, {"filename", filename}}},
                   {"backing", backing_node}});
}

json to_json(const TransactionAction& a) {
  switch (a.kind) {
    case TransactionAction::Kind::blockdev_backup:
      return {{"type", "blockdev-backup"},
              {"data",
               {{"job-id", a.name},
                {"device", a.node},
                {"target", a.target},
                {"sync", a.sync},
                {"auto-finalize", true},
                {"auto-dismiss", true}}}};
    case TransactionAction::Kind::bitmap_add:
      return {{"type", "block-dirty-bitmap-add"},
              {"data", {{"node", a.node}, {"name", a.name}, {"persistent", a.persistent}}}};
    case TransactionAction::Kind::bitmap_disable:
      return {{"type", "block-dirty-bitmap-disable"},
              {"data", {{"node", a.node}, {"name", a.name}}}};
  }
  return json::object();
}

Status QemuMonitor::transaction(const std::vector<TransactionAction>& actions,
                                std::chrono::milliseconds timeout) {
  json list = json::array();
  for (auto& a : actions) list.push_back(to_json(a));
  return run_void("transaction", timeout, {{"actions", list}});
}

Status QemuMonitor::block_dirty_bitmap_add(const std::string& node, const std::string& name,
                                           bool persistent, std::chrono::milliseconds timeout) {
  return run_void("block-dirty-bitmap-add", timeout,
                  {{"node", node}, {"name", name}, {"persistent", persistent}});
}

Status QemuMonitor::block_dirty_bitmap_remove(const std::string& node, const std::string& name,
                                              std::chrono::milliseconds timeout) {
  return run_void("block-dirty-bitmap-remove", timeout, {{"node", node}, {"name", name}});
}

Status QemuMonitor::block_dirty_bitmap_enable(const std::string& node, const std::string& name,
                                              std::chrono::milliseconds timeout) {
  return run_void("block-dirty-bitmap-enable", timeout, {{"node", node}, {"name", name}});
}

Status QemuMonitor::block_dirty_bitmap_merge(const std::string& node, const std::string& target,
                                             const std::vector<std::string>& sources,
                                             std::chrono::milliseconds timeout) {
  return run_void("block-dirty-bitmap-merge", timeout,
                  {{"node", node}, {"target", target}, {"bitmaps", sources}});
}

Status QemuMonitor::nbd_server_start_unix(const std::string& path,
                                          std::chrono::milliseconds timeout) {
  return run_void("nbd-server-start", timeout,
                  {{"addr", {{"type", "unix"}, {"data", {{"path", path}}}}}});
}

Status QemuMonitor::block_export_add_nbd_readonly(const std::string& id,
                                                  const std::string& node_name,
                                                  const std::string& name,
                                                  const std::vector<std::string>& bitmaps,
                                                  std::chrono::milliseconds timeout) {
  json args = {{"type", "nbd"},
               {"id", id},
               {"node-name", node_name},
               {"name", name},
               {"writable", false}};
  if (!bitmaps.empty()) args["bitmaps"] = bitmaps;
  return run_void("block-export-add", timeout, std::move(args));
}

Status QemuMonitor::block_export_del(const std::string& id, std::chrono::milliseconds timeout) {
  return run_void("block-export-del", timeout, {{"id", id}, {"mode", "hard"}});
}

Result<json> QemuMonitor::raw(const std::string& command, const json& arguments,
                              std::chrono::milliseconds timeout) {
  return client_->execute(command, arguments, timeout);
}

}  // namespace strata::agent::qemu
