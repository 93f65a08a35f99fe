// An in-memory Hypervisor for testing the *service layer* (mapping, validation, natural
// idempotency, request-id deduplication, streams). It counts driver calls so tests can
// prove a repeated request did not act twice. The QEMU driver itself is exercised by the
// qemu-labelled integration tests, never through this.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>

#include "strata/agent/hypervisor.h"
#include "strata/model/validation.h"

namespace strata::agent::testing {

class MemoryHypervisor final : public Hypervisor {
 public:
  std::map<std::string, int> calls;  // method -> count (written under the lock: see count())
  // `calls[method]` read under the lock, for a test polling while the service runs.
  int count(const std::string& method) const {
    std::lock_guard lock(mu_);
    auto it = calls.find(method);
    return it == calls.end() ? 0 : it->second;
  }
  std::optional<Error> fail_next;    // returned (once) by the next mutating call
  // Runs at the start of define(), without the lock: a test blocks here to hold a define
  // in progress (the way qemu-img holds the QEMU driver's define job).
  std::function<void()> define_gate;
  // Reported as every VM's VNC socket (its spec's vnc permitting), as the QEMU driver does.
  std::string vnc_socket;

  // Live migration: off unless a MemoryMigration (memory_migration.h) attaches itself.
  MigrationDriver* migration_driver = nullptr;
  MigrationDriver* migration() override { return migration_driver; }
  // Run by recover(): what a restarted agent finds (memory_migration.h).
  std::function<void()> on_recover;
  // Run (under the lock) when a VM is undefined: its QEMU's state goes with it.
  std::function<void(const std::string&)> on_undefine;

  Status recover() override {
    if (on_recover) on_recover();
    return {};
  }

  Result<VmStatus> define(const model::VmSpec& spec) override {
    if (define_gate) define_gate();
    std::lock_guard lock(mu_);
    ++calls["define"];
    if (auto e = take_failure()) return tl::unexpected(*e);
    if (vms_.contains(spec.name)) {
      return make_error(ErrorCode::already_exists, "vm " + spec.name + " exists");
    }
    auto done = model::complete(spec, [] { return uint64_t{0x1234567890abcdefull}; });
    if (!done) return tl::unexpected(done.error());
    VmStatus s;
    s.spec = *done;
    s.accelerator = "tcg";
    vms_[spec.name] = s;
    emit(spec.name, model::VmState::defined, "defined");
    return s;
  }
  // A clone: the source must exist and be stopped; the clone's disks become blank disks of
  // the source's sizes (the memory driver keeps no data). progress: 0, half, all.
  Result<VmStatus> clone(const std::string& source, const model::VmSpec& spec, bool linked,
                         const CloneProgressCallback& progress) override {
    model::VmSpec made = spec;
    {
      std::lock_guard lock(mu_);
      ++calls[linked ? "clone_linked" : "clone_full"];
      if (auto e = take_failure()) return tl::unexpected(*e);
      auto it = vms_.find(source);
      if (it == vms_.end()) return not_found("vm " + source + " not found");
      if (it->second.pid)
        return make_error(ErrorCode::failed_precondition, "vm " + source + " is running");
      for (auto& d : made.disks) {
        d.base_image.clear();
        if (d.size_bytes == 0) d.size_bytes = 1 << 20;
      }
    }
    if (progress) {
      progress(0, 2);
      progress(1, 2);
      progress(2, 2);
    }
    return define(made);
  }
  Status start(const std::string& name) override {
    return transition("start", name, model::VmState::running, 4242);
  }
  Status shutdown(const std::string& name, std::chrono::milliseconds) override {
    return transition("shutdown", name, model::VmState::stopped, 0);
  }
  Status force_off(const std::string& name) override {
    return transition("force_off", name, model::VmState::stopped, 0);
  }
  // The CD-ROM: records the medium in the VM's spec (no kind check: the store's checks
  // are the QEMU driver's, tested with real guests).
  Status change_cdrom(const std::string& name, const std::string& image) override {
    std::lock_guard lock(mu_);
    ++calls["change_cdrom"];
    if (auto e = take_failure()) return tl::unexpected(*e);
    auto it = vms_.find(name);
    if (it == vms_.end()) return not_found("vm " + name + " not found");
    it->second.spec.cdrom = image;
    return {};
  }
  // Grow only, against the size the spec records (the QEMU driver asks the disk itself).
  Result<uint64_t> resize_disk(const std::string& name, const std::string& disk,
                               uint64_t size_bytes) override {
    std::lock_guard lock(mu_);
    ++calls["resize_disk"];
    if (auto e = take_failure()) return tl::unexpected(*e);
    auto it = vms_.find(name);
    if (it == vms_.end()) return not_found("vm " + name + " not found");
    for (auto& d : it->second.spec.disks) {
      if (d.name != disk) continue;
      if (d.readonly) return make_error(ErrorCode::failed_precondition, "read-only", "disk");
      if (size_bytes < d.size_bytes)
        return invalid_argument("size_bytes", "disks only grow");
      d.size_bytes = size_bytes;
      return size_bytes;
    }
    return make_error(ErrorCode::not_found, "no disk " + disk, "disk");
  }
  // Hot-plug: the next free slot of 4 (the QEMU driver's layout is tested with real guests).
  Result<model::DiskSpec> attach_disk(const std::string& name,
                                      const model::DiskSpec& disk) override {
    std::lock_guard lock(mu_);
    ++calls["attach_disk"];
    if (auto e = take_failure()) return tl::unexpected(*e);
    auto it = vms_.find(name);
    if (it == vms_.end()) return not_found("vm " + name + " not found");
    auto& spec = it->second.spec;
    for (const auto& d : spec.disks)
      if (d.name == disk.name) return d;
    model::DiskSpec d = disk;
    d.hotplug_slot = free_slot(spec);
    if (d.hotplug_slot == 0) return make_error(ErrorCode::failed_precondition, "no free slot");
    spec.disks.push_back(d);
    return d;
  }
  Status detach_disk(const std::string& name, const std::string& disk) override {
    std::lock_guard lock(mu_);
    ++calls["detach_disk"];
    if (auto e = take_failure()) return tl::unexpected(*e);
    auto it = vms_.find(name);
    if (it == vms_.end()) return not_found("vm " + name + " not found");
    std::erase_if(it->second.spec.disks, [&](const model::DiskSpec& d) { return d.name == disk; });
    return {};
  }
  Result<model::NicSpec> attach_nic(const std::string& name, const model::NicSpec& nic) override {
    std::lock_guard lock(mu_);
    ++calls["attach_nic"];
    if (auto e = take_failure()) return tl::unexpected(*e);
    auto it = vms_.find(name);
    if (it == vms_.end()) return not_found("vm " + name + " not found");
    auto& spec = it->second.spec;
    for (const auto& n : spec.nics)
      if (n.mac == nic.mac) return n;
    model::NicSpec n = nic;
    n.hotplug_slot = free_slot(spec);
    if (n.hotplug_slot == 0) return make_error(ErrorCode::failed_precondition, "no free slot");
    spec.nics.push_back(n);
    return n;
  }
  Status detach_nic(const std::string& name, const std::string& mac) override {
    std::lock_guard lock(mu_);
    ++calls["detach_nic"];
    if (auto e = take_failure()) return tl::unexpected(*e);
    auto it = vms_.find(name);
    if (it == vms_.end()) return not_found("vm " + name + " not found");
    std::erase_if(it->second.spec.nics, [&](const model::NicSpec& n) { return n.mac == mac; });
    return {};
  }
  static uint32_t free_slot(const model::VmSpec& spec) {
    for (uint32_t k = 1; k <= 4; ++k) {
      bool used = false;
      for (const auto& d : spec.disks) used = used || d.hotplug_slot == k;
      for (const auto& n : spec.nics) used = used || n.hotplug_slot == k;
      if (!used) return k;
    }
    return 0;
  }
  std::map<std::string, std::string> uefi_vars;  // VM -> its variables (UEFI VMs)
  Result<std::string> read_uefi_vars(const std::string& name) override {
    std::lock_guard lock(mu_);
    ++calls["read_uefi_vars"];
    auto it = vms_.find(name);
    if (it == vms_.end()) return not_found("vm " + name + " not found");
    if (it->second.spec.firmware != model::Firmware::uefi)
      return make_error(ErrorCode::failed_precondition, "VM " + name + " boots with BIOS");
    return uefi_vars[name];
  }
  Status write_uefi_vars(const std::string& name, const std::string& vars) override {
    std::lock_guard lock(mu_);
    ++calls["write_uefi_vars"];
    if (auto e = take_failure()) return tl::unexpected(*e);
    auto it = vms_.find(name);
    if (it == vms_.end()) return not_found("vm " + name + " not found");
    if (it->second.spec.firmware != model::Firmware::uefi)
      return make_error(ErrorCode::failed_precondition, "VM " + name + " boots with BIOS");
    uefi_vars[name] = vars;
    return {};
  }
  Status reboot(const std::string& name) override {
    return transition("reboot", name, model::VmState::running, 4243);
  }
  Status pause(const std::string& name) override {
    return transition("pause", name, model::VmState::paused, 4242);
  }
  Status resume(const std::string& name) override {
    return transition("resume", name, model::VmState::running, 4242);
  }
  using Hypervisor::undefine;
  Status undefine(const std::string& name, bool delete_shared_disks) override {
    if (delete_shared_disks) ++calls["undefine_shared"];
    std::lock_guard lock(mu_);
    ++calls["undefine"];
    if (auto e = take_failure()) return tl::unexpected(*e);
    auto it = vms_.find(name);
    if (it == vms_.end()) return not_found("vm " + name + " not found");
    if (it->second.pid) {
      return make_error(ErrorCode::failed_precondition, "vm " + name + " is running");
    }
    vms_.erase(it);
    if (on_undefine) on_undefine(name);
    return {};
  }
  Result<VmStatus> status(const std::string& name) const override {
    std::lock_guard lock(mu_);
    auto it = vms_.find(name);
    if (it == vms_.end()) return not_found("vm " + name + " not found");
    VmStatus s = it->second;
    if (s.spec.vnc) s.vnc_socket = vnc_socket;
    return s;
  }
  std::vector<VmStatus> list() const override {
    std::lock_guard lock(mu_);
    std::vector<VmStatus> out;
    for (const auto& [_, s] : vms_) out.push_back(s);
    return out;
  }
  Result<VmStats> stats(const std::string& name) const override {
    auto s = status(name);
    if (!s) return tl::unexpected(s.error());
    VmStats st;
    st.cpu_time_ns = 1000;
    st.rss_bytes = 4096;
    return st;
  }
  Result<std::string> console_tail(const std::string& name, size_t max_bytes) const override {
    std::lock_guard lock(mu_);
    if (!vms_.contains(name)) return not_found("vm " + name + " not found");
    std::string c = console_[name];
    return c.size() > max_bytes ? c.substr(c.size() - max_bytes) : c;
  }
  Result<ConsoleSubscriptionPtr> console_subscribe(
      const std::string& name, std::function<void(std::string_view)> on_data) override {
    std::lock_guard lock(mu_);
    if (!vms_.contains(name)) return not_found("vm " + name + " not found");
    subscribers_[name].push_back(std::move(on_data));
    return std::make_unique<ConsoleSubscription>();
  }
  Status console_write(const std::string& name, std::string_view data) override {
    std::lock_guard lock(mu_);
    ++calls["console_write"];
    if (!vms_.contains(name)) return not_found("vm " + name + " not found");
    // Echo, like a guest shell would.
    console_[name] += data;
    for (auto& cb : subscribers_[name]) cb(data);
    return {};
  }
  Result<std::string> guest_agent(const std::string& name, const std::string&,
                                  std::chrono::milliseconds) override {
    std::lock_guard lock(mu_);
    if (!vms_.contains(name)) return not_found("vm " + name + " not found");
    return std::string(R"({"return":{}})");
  }
  // Snapshots: a list per VM; revert needs the VM stopped, like the QEMU driver.
  Result<SnapshotInfo> snapshot_create(const std::string& name, const std::string& snap) override {
    std::lock_guard lock(mu_);
    ++calls["snapshot_create"];
    if (auto e = take_failure()) return tl::unexpected(*e);
    auto it = vms_.find(name);
    if (it == vms_.end()) return not_found("vm " + name + " not found");
    auto& list = snapshots_[name];
    for (auto& s : list)
      if (s.name == snap) return make_error(ErrorCode::already_exists, "snapshot " + snap + " exists");
    std::string parent;
    for (auto& s : list) {
      if (s.current) parent = s.name;
      s.current = false;
    }
    SnapshotInfo info{snap, parent, 1000 + int64_t(list.size()), "crash",
                      std::string(model::to_string(it->second.state)), true};
    list.push_back(info);
    return info;
  }
  Result<std::vector<SnapshotInfo>> snapshot_list(const std::string& name) const override {
    std::lock_guard lock(mu_);
    if (!vms_.contains(name)) return not_found("vm " + name + " not found");
    auto it = snapshots_.find(name);
    return it == snapshots_.end() ? std::vector<SnapshotInfo>{} : it->second;
  }
  Status snapshot_revert(const std::string& name, const std::string& snap) override {
    std::lock_guard lock(mu_);
    ++calls["snapshot_revert"];
    if (auto e = take_failure()) return tl::unexpected(*e);
    auto it = vms_.find(name);
    if (it == vms_.end()) return not_found("vm " + name + " not found");
    if (it->second.pid)
      return make_error(ErrorCode::failed_precondition, "vm " + name + " is running");
    auto& list = snapshots_[name];
    bool found = false;
    for (auto& s : list) found = found || s.name == snap;
    if (!found) return not_found("no snapshot " + snap);
    for (auto& s : list) s.current = s.name == snap;
    return {};
  }
  Status snapshot_delete(const std::string& name, const std::string& snap,
                         const SnapshotProgressCallback& progress) override {
    std::lock_guard lock(mu_);
    ++calls["snapshot_delete"];
    if (auto e = take_failure()) return tl::unexpected(*e);
    if (!vms_.contains(name)) return not_found("vm " + name + " not found");
    auto& list = snapshots_[name];
    auto s = std::find_if(list.begin(), list.end(), [&](auto& x) { return x.name == snap; });
    if (s == list.end()) return not_found("no snapshot " + snap);
    for (auto& c : list)
      if (c.parent == snap) c.parent = s->parent;
    list.erase(s);
    if (progress) progress(1, 1);
    return {};
  }
  void watch(VmEventCallback cb) override {
    std::lock_guard lock(mu_);
    watchers_.push_back(std::move(cb));
  }
  // HA leases: the last grant, and the named VMs defined here come back in force.
  std::chrono::milliseconds last_lease{0};
  std::vector<std::string> renew_ha_leases(const std::vector<std::string>& vms,
                                           std::chrono::milliseconds lease) override {
    std::lock_guard lock(mu_);
    ++calls["renew_ha_leases"];
    last_lease = lease;
    std::vector<std::string> out;
    for (const auto& v : vms)
      if (vms_.contains(v)) out.push_back(v);
    return out;
  }

  // The memory driver keeps no data, so it cannot back up or restore: it records the
  // repository key each request carried (an encrypted repository's key reaches the agent
  // only in the gRPC request) and refuses as any Hypervisor without backups.
  Result<BackupOutcome> backup(const std::string& vm, const BackupRequest& req,
                               const BackupProgressCallback& progress) override {
    std::function<Result<BackupOutcome>(const BackupProgressCallback&)> script;
    {
      std::lock_guard lock(mu_);
      ++calls["backup"];
      last_repo_key_ = req.repo_key;
      script = backup_script;
    }
    if (script) return script(progress);
    return Hypervisor::backup(vm, req, progress);
  }
  Status restore_disks(const std::string& vm, const std::string& repo, const std::string& backup_id,
                       const std::string& repo_key,
                       const BackupProgressCallback& progress) override {
    {
      std::lock_guard lock(mu_);
      ++calls["restore_disks"];
      last_repo_key_ = repo_key;
    }
    return Hypervisor::restore_disks(vm, repo, backup_id, repo_key, progress);
  }
  // Set by a test: backups run this (reporting progress as it likes) instead of refusing.
  std::function<Result<BackupOutcome>(const BackupProgressCallback&)> backup_script;
  std::string last_repo_key() const {
    std::lock_guard lock(mu_);
    return last_repo_key_;
  }

 private:
  std::string last_repo_key_;
  std::optional<Error> take_failure() {
    auto e = fail_next;
    fail_next.reset();
    return e;
  }
  Status transition(const char* what, const std::string& name, model::VmState to, int pid) {
    std::lock_guard lock(mu_);
    ++calls[what];
    if (auto e = take_failure()) return tl::unexpected(*e);
    auto it = vms_.find(name);
    if (it == vms_.end()) return not_found("vm " + name + " not found");
    it->second.state = to;
    it->second.pid = pid;
    emit(name, to, what);
    return {};
  }
  void emit(const std::string& name, model::VmState s, const std::string& detail) {
    for (auto& cb : watchers_) cb(VmEvent{name, s, detail, 1});
  }

  mutable std::mutex mu_;
  std::map<std::string, VmStatus> vms_;
  mutable std::map<std::string, std::string> console_;
  std::map<std::string, std::vector<std::function<void(std::string_view)>>> subscribers_;
  std::vector<VmEventCallback> watchers_;
  std::map<std::string, std::vector<SnapshotInfo>> snapshots_;
};

}  // namespace strata::agent::testing
