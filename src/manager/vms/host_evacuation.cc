// Maintenance evacuation passes (see host_evacuation.h). Each pass reads the host's VMs,
// starts migrations through the VM service (the one place a migration is decided) up to
// the parallel limit, and writes what it knows into the task's result:
//   {"total": N, "moved": [..], "attempts": {vm: n}, "stays": {vm: reason}}
#include "strata/manager/vms/host_evacuation.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "strata/common/clock_wait.h"
#include "strata/common/log.h"
#include "strata/manager/controllers/vm_document.h"

namespace strata::manager {

namespace {

using nlohmann::json;

const std::string kKind(task_kind_name(TaskKind::host_evacuate));
constexpr const char* kEvacuateActor = "controller:evacuate";

bool runs(const std::string& state) { return state == "running" || state == "paused"; }

}  // namespace

HostEvacuator::HostEvacuator(store::Store& store, VmService& vms, EventLog& events,
                             ClockPtr clock, EvacuationConfig config)
    : store_(store), vms_(vms), events_(events), clock_(std::move(clock)), config_(config),
      thread_(clock_, config_.interval, [this] { tick(); }) {}

HostEvacuator::~HostEvacuator() { stop(); }

Result<store::TaskRecord> HostEvacuator::evacuate(const std::string& host_name,
                                                  const std::string& actor, bool partial) {
  if (!partial) {
    auto host = store_.get_host_by_name(host_name);
    if (!host) return tl::unexpected(host.error());
    auto plan = vms_.placement().plan_host_down({host->id}, false, {}, /*running_only=*/true);
    if (!plan) return tl::unexpected(plan.error());
    if (!plan->stays.empty()) {
      return make_error(ErrorCode::failed_precondition,
                        fmt::format("{} cannot be emptied: {} of its running VMs would not fit "
                                    "on the other hosts: {}. Nothing changed; evacuate with "
                                    "partial=true (strata host evacuate --partial) to move what "
                                    "fits",
                                    host_name, plan->stays.size(), plan->stays_text()),
                        "host");
    }
  }
  store::TaskRecord out;
  store::EventRecord audit;
  bool created = false;
  // Heartbeats bump the host's version all the time: a lost compare-and-swap reruns.
  auto st = store_.transaction_retrying([&](store::Store& tx) -> Status {
    created = false;  // each run starts over
    auto host = tx.get_host_by_name(host_name);
    if (!host) return tl::unexpected(host.error());
    store::TaskListOptions o;
    o.target_id = host->id;
    auto tasks = tx.list_tasks(o);
    if (!tasks) return tl::unexpected(tasks.error());
    for (const auto& t : *tasks)
      if (t.kind == kKind && !task_is_terminal(t.state)) {
        out = t;  // already evacuating
        return {};
      }
    if (host->state != "maintenance") {
      host->state = "maintenance";
      if (auto u = tx.update_host(*host); !u) return tl::unexpected(u.error());
    }
    auto task =
        create_task_in(tx, TaskKind::host_evacuate, "host", host->id, "evacuating " + host->name);
    if (!task) return tl::unexpected(task.error());
    auto ev = EventLog::append_in(tx, actor, kKind, "host/" + host->name, "ok",
                                  "maintenance on; evacuating");
    if (!ev) return tl::unexpected(ev.error());
    out = *task;
    audit = *ev;
    created = true;
    return {};
  });
  if (!st) return tl::unexpected(st.error());
  if (created) {
    events_.published(audit);
    thread_.kick();  // a pass now, not at the next interval
  }
  return out;
}

void HostEvacuator::tick() {
  for (const char* state : {"pending", "running"}) {
    store::TaskListOptions o;
    o.state = state;
    auto tasks = store_.list_tasks(o);
    if (!tasks) return;
    for (auto& t : *tasks)
      if (t.kind == kKind) pass(t);
  }
}

void HostEvacuator::pass(store::TaskRecord task) {
  auto log = logger("manager.evacuate");
  json result = json::parse(task.result, nullptr, false);
  if (!result.is_object()) result = json::object();
  auto end = [&](bool ok, const std::string& message) {
    task.state = ok ? "succeeded" : "failed";
    task.progress = 100;
    task.message = message;
    task.result = result.dump();
    if (auto u = store_.update_task(task); !u) {
      log->warn("evacuation task not ended task={} error={}", task.id, u.error().to_string());
      return;
    }
    events_.append(kEvacuateActor, kKind, "host/" + task.target_id, ok ? "ok" : "error", message);
    log->info("evacuation ended host={} ok={} {}", task.target_id, ok, message);
  };

  auto host = store_.get_host(task.target_id);
  if (!host) {
    if (host.error().code == ErrorCode::not_found) end(false, "the host was deleted");
    return;
  }
  if (host->state != "maintenance") {
    end(false, "cancelled: maintenance was turned off (migrations already started finish)");
    return;
  }
  store::VmListOptions vo;
  vo.host_id = host->id;
  auto vms = store_.list_vms(vo);
  if (!vms) return;

  json& attempts = result["attempts"];
  if (!attempts.is_object()) attempts = json::object();
  json& stays = result["stays"];
  if (!stays.is_object()) stays = json::object();
  json& moved = result["moved"];
  if (!moved.is_array()) moved = json::array();
  if (!result.contains("total")) result["total"] = vms->size();

  std::set<std::string> here;
  int in_flight = 0;
  std::vector<std::string> candidates;
  for (const auto& vm : *vms) {
    here.insert(vm.name);
    if (vm.deletion_requested) continue;
    auto doc = decode_vm_document(vm.spec);
    if (!doc) continue;
    if (doc->migration.active()) {
      ++in_flight;
      continue;
    }
    const std::string state = decode_vm_status(vm.status).state;
    if (!runs(state) || vm.desired_state != "running") {
      // A stopped VM moves cold (VmService::migrate: its local disks are copied).
      const bool stopped = vm.desired_state != "running" &&
                           (state == "stopped" || state == "crashed" || state == "defined");
      if (!stopped) {
        stays[vm.name] = fmt::format("{} (neither running nor stopped: not moved)", state);
        continue;
      }
    }
    const int tried = attempts.value(vm.name, 0);
    if (tried >= config_.max_attempts) {
      if (!stays.contains(vm.name)) {
        stays[vm.name] = fmt::format("{} migrations failed: {}", tried,
                                     decode_vm_status(vm.status).last_error);
      }
      continue;
    }
    candidates.push_back(vm.name);
  }
  // VMs we sent away that are no longer here moved.
  std::set<std::string> already(moved.begin(), moved.end());
  for (auto& [name, n] : attempts.items())
    if (!here.contains(name) && !already.contains(name)) moved.push_back(name);

  for (const auto& name : candidates) {
    if (in_flight >= config_.parallel) break;
    auto change = vms_.migrate(name, VmMigrateOptions{}, kEvacuateActor);
    if (change) {
      attempts[name] = attempts.value(name, 0) + 1;
      stays.erase(name);
      ++in_flight;
      log->info("evacuation migrates vm={} from host={}", name, host->name);
    } else if (change.error().code == ErrorCode::conflict) {
      ++in_flight;  // started by someone else meanwhile
    } else {
      // No host fits, or it cannot move: say why, do not retry it every pass.
      stays[name] = change.error().message;
      attempts[name] = config_.max_attempts;
    }
  }

  const int total = result.value("total", 0);
  const int done = static_cast<int>(moved.size());
  size_t running_left = 0;
  for (const auto& vm : *vms) {
    const std::string state = decode_vm_status(vm.status).state;
    if (runs(state) && !vm.deletion_requested) ++running_left;
  }
  if (in_flight == 0 && (candidates.empty() ||
                         std::all_of(candidates.begin(), candidates.end(), [&](auto& n) {
                           return attempts.value(n, 0) >= config_.max_attempts;
                         }))) {
    std::string stay_list;
    for (auto& [name, why] : stays.items())
      stay_list += fmt::format("{}{}: {}", stay_list.empty() ? "" : "; ", name,
                               why.get<std::string>());
    const std::string msg =
        fmt::format("{} VM{} moved off {}{}{}", done, done == 1 ? "" : "s", host->name,
                    stays.empty() ? "" : "; staying: ", stay_list);
    end(running_left == 0, msg);
    return;
  }
  task.state = "running";
  task.progress = total > 0 ? std::min(99, 100 * done / total) : 50;
  task.message = fmt::format("{} of {} moved, {} migrating", done, total, in_flight);
  task.result = result.dump();
  (void)store_.update_task(task);
}

void HostEvacuator::start() { thread_.start(); }

void HostEvacuator::stop() { thread_.stop(); }

}  // namespace strata::manager
