// A scriptable MigrationDriver for MemoryHypervisor (memory_hypervisor.h), for tests of the
// manager's migration orchestration and its recovery (the failure matrix,
// test/manager/controllers/migration_matrix_test.cc). It models what the QEMU driver
// (src/agent/hypervisor/qemu/vm_migrate.cc, vm_recover.cc) does, at the level the manager
// sees it:
//   begin        source: the spec; the VM must exist
//   prepare      target: an incoming VM defined and paused, listening on a fresh URI
//   migrate_out  source: mirror (local disks, over the target's NBD), ram, switchover (the
//                source pauses, the target has received everything: completed)
//   finish       target: resumes the incoming VM
//   confirm      source: removes its paused copy;  cancel: resumes it
//   abort        target: removes the incoming VM
// Any step can be made to fail (on either side: the target's part of mirror, ram and
// switchover is its NBD server and incoming stream) or to hang until release(), so a test
// can kill something exactly there. The state lives here, beside the hypervisor, not in the
// AgentService: it survives an agent restart as QEMU outlives its agent. agent_died() is the
// agent process going away: hung calls return (unavailable, never remembered by the request
// log) and QEMU's own work goes on; agent_restarted() (called by MemoryHypervisor::recover)
// is what a new agent's recover() finds: the VMs are re-attached but the migration jobs, in
// the old agent's memory, are gone:
//   - an incoming VM is taken back by finish or abort (adopt_incoming_locked);
//   - an outgoing migration is no longer the agent's: confirm and cancel answer "not
//     migrating out" (failed_precondition), and a new migrate_out first clears what QEMU
//     still holds (clear_stale_migration_out): cancels a running copy (the target's stream
//     fails: its QEMU exits), removes stale mirrors, and resumes a completed (paused) source;
//     the target no longer listens then, so that new copy fails.
// Post-copy, at the level the manager sees it: migrate_out with a post-copy policy stops at
// postcopy_ready; switchover_out pauses the source and lets the target finish; confirm_out
// answers unavailable while the stream is broken (break_postcopy: both sides
// postcopy-paused); prepare_recover_incoming listens on a fresh URI and resume_out
// reconnects to it, which mends the stream.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "memory_hypervisor.h"
#include "strata/agent/migration.h"

namespace strata::agent::testing {

class MemoryMigration;

// The network between the fakes: who listens on which migration URI.
class MemoryMigrationNet {
 public:
  std::string listen(MemoryMigration* target, const std::string& host, const std::string& vm) {
    std::lock_guard lock(mu_);
    std::string uri = "tcp:" + host + ":" + std::to_string(next_port_++);
    listeners_[uri] = {target, vm};
    return uri;
  }
  void close(const std::string& uri) {
    std::lock_guard lock(mu_);
    listeners_.erase(uri);
  }
  std::optional<std::pair<MemoryMigration*, std::string>> find(const std::string& uri) {
    std::lock_guard lock(mu_);
    auto it = listeners_.find(uri);
    if (it == listeners_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::mutex mu_;
  int next_port_ = 49152;
  std::map<std::string, std::pair<MemoryMigration*, std::string>> listeners_;
};

class MemoryMigration final : public MigrationDriver {
 public:
  enum class Step {
    begin,
    prepare,
    mirror,
    ram,
    switchover,
    finish,
    confirm,
    cancel,
    abort,
    recover,  // prepare_recover_incoming (target)
    resume,   // resume_out (source)
  };
  static constexpr const char* kAgentDied = "the agent process died";

  MemoryMigration(MemoryHypervisor& hv, MemoryMigrationNet& net) : hv_(hv), net_(net) {
    hv_.migration_driver = this;
    hv_.on_recover = [this] { agent_restarted(); };
    // The migration state is the VM's QEMU's (in the QEMU driver, the Vm's): an undefine
    // that went around the driver (a stale copy forced off and removed) takes it along.
    // Never called while mu_ is held: this driver calls the hypervisor without it.
    hv_.on_undefine = [this](const std::string& name) { forget(name); };
  }
  ~MemoryMigration() override {
    hv_.migration_driver = nullptr;
    hv_.on_recover = nullptr;
    hv_.on_undefine = nullptr;
  }

  // Scripting. fail: the next `times` calls reaching `step` here fail with `e` (-1: all).
  void fail_at(Step step, Error e, int times = -1) {
    std::lock_guard lock(mu_);
    scripts_[step].fail = std::move(e);
    scripts_[step].fail_times = times;
  }
  // The next call reaching `step` here blocks until release() or agent_died().
  void hang_at(Step step) {
    std::lock_guard lock(mu_);
    scripts_[step].hang = true;
  }
  // Waits (real time, a hang guard) until a call hangs at `step`.
  bool wait_hung(Step step, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return scripts_[step].hung; });
  }
  // Forgets every scripted failure and hang.
  void clear_scripts() {
    std::lock_guard lock(mu_);
    for (auto& [_, sc] : scripts_) {
      sc.fail.reset();
      sc.hang = false;
    }
  }
  void release() {
    std::lock_guard lock(mu_);
    ++release_epoch_;
    cv_.notify_all();
  }
  // The agent process is gone (killed): calls hung here return now, as if they never
  // answered; what QEMU does by itself goes on (migrate_out: a copy whose RAM stream was
  // running completes without the agent; mirrors without a RAM stream stay as they are).
  void agent_died() {
    std::lock_guard lock(mu_);
    ++died_epoch_;
    cv_.notify_all();
  }
  // What a restarted agent's recover() finds: the jobs of the old process are gone.
  void agent_restarted() {
    std::lock_guard lock(mu_);
    for (auto& [_, o] : out_) o.job = false;
    for (auto& [_, i] : in_) i.job = false;
  }
  // The incoming and outgoing migrations this host's QEMUs still hold (tests: "cleaned").
  size_t incoming() const {
    std::lock_guard lock(mu_);
    return in_.size() + pc_.size();
  }
  size_t outgoing() const {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& [_, o] : out_) n += o.state != Out::State::none;
    return n;
  }

  // ---- MigrationDriver

  Result<MigrationSource> begin_migration(const std::string& name) const override {
    if (auto s = const_cast<MemoryMigration*>(this)->step(Step::begin); !s)
      return tl::unexpected(s.error());
    auto st = hv_.status(name);
    if (!st) return tl::unexpected(st.error());
    MigrationSource out;
    out.spec = st->spec;
    out.profile_json = "{}";
    return out;
  }

  Result<MigrationIncoming> prepare_incoming(const MigrationSource& vm,
                                             const std::string& listen_host) override {
    if (auto s = step(Step::prepare, /*before=*/true); !s) return tl::unexpected(s.error());
    const std::string& name = vm.spec.name;
    if (hv_.status(name)) return make_error(ErrorCode::already_exists, "VM exists: " + name);
    // QEMU -S -incoming defer: defined, its process paused until the stream has come.
    if (auto d = hv_.define(vm.spec); !d) return tl::unexpected(d.error());
    (void)hv_.start(name);
    (void)hv_.pause(name);
    MigrationIncoming out;
    out.migration_uri = net_.listen(this, listen_host, name);
    bool local = false;
    for (const auto& d : vm.spec.disks) local = local || d.datastore.empty();
    if (local) {
      out.nbd_host = listen_host;
      out.nbd_port = "10809";
    }
    out.tls = vm.tls;
    out.postcopy = vm.postcopy;
    {
      std::lock_guard lock(mu_);
      in_[name] = In{out.migration_uri, vm.tls, local};
      in_[name].postcopy = vm.postcopy;
    }
    // A hang here: QEMU runs and listens, the agent has not answered yet.
    if (auto s = step(Step::prepare, /*before=*/false); !s) return tl::unexpected(s.error());
    return out;
  }

  // The post-copy stream of `name` (this host its source) breaks: both ends wait.
  void break_postcopy(const std::string& name) {
    MemoryMigration* peer = nullptr;
    {
      std::lock_guard lock(mu_);
      auto it = out_.find(name);
      if (it == out_.end() || !it->second.switched) return;
      it->second.broken = true;
      peer = it->second.peer;
    }
    if (!peer) return;
    std::lock_guard lock(peer->mu_);
    if (auto it = peer->pc_.find(name); it != peer->pc_.end()) it->second.paused = true;
  }

  Result<MigrationOutcome> migrate_out(const std::string& name, const MigrationIncoming& target,
                                       const MigrationPolicy& policy,
                                       const MigrationProgressCallback& progress) override {
    if (policy.postcopy && !target.postcopy)
      return make_error(ErrorCode::failed_precondition,
                        "the target was not prepared for post-copy");
    auto st = hv_.status(name);
    if (!st) return tl::unexpected(st.error());
    if (st->state != model::VmState::running && st->state != model::VmState::paused)
      return make_error(ErrorCode::failed_precondition,
                        std::string("VM is ") + model::to_string(st->state));
    Out stale;
    {
      std::lock_guard lock(mu_);
      Out& o = out_[name];
      if (o.job)
        return make_error(ErrorCode::failed_precondition, "VM " + name + " is busy (migrate_out)");
      stale = o;
      o = Out{};
      o.job = true;
    }
    // A migration an earlier agent left in QEMU (clear_stale_migration_out).
    if (stale.state == Out::State::copying) fail_stream(stale.uri);
    if (stale.state == Out::State::completed) (void)hv_.resume(name);

    bool paused_here = false;
    bool streamed = false;  // the RAM stream began: its failure ends the target's QEMU
    auto fail = [&](Error e) -> Result<MigrationOutcome> {
      {
        std::lock_guard lock(mu_);
        out_.erase(name);
      }
      if (streamed) fail_stream(target.migration_uri);
      if (paused_here) (void)hv_.resume(name);
      e.message += "; migration cancelled, the VM keeps running on this host";
      return tl::unexpected(std::move(e));
    };
    // The agent died while QEMU copied: QEMU completes the RAM stream by itself (the
    // source pauses, the target has it all); a mirror without a RAM stream just stays.
    auto died = [&](Out::State at) -> Result<MigrationOutcome> {
      if (at == Out::State::copying) {
        if (!paused_here) (void)hv_.pause(name);
        complete_stream(target.migration_uri);
        std::lock_guard lock(mu_);
        out_[name].state = Out::State::completed;
      }
      return unavailable(kAgentDied);
    };
    auto peer = net_.find(target.migration_uri);
    if (!peer) return fail(unavailable("connection refused: " + target.migration_uri).value());
    auto [in_driver, in_name] = *peer;
    if (auto s = in_driver->accept(in_name, target.tls); !s) return fail(s.error());
    auto at = [&](Step which, Out::State state) -> Status {
      {
        std::lock_guard lock(mu_);
        out_[name].state = state;
        out_[name].uri = target.migration_uri;
        if (out_[name].interrupt) return unavailable("interrupted on request");
      }
      if (state == Out::State::copying && !streamed) {
        streamed = true;
        in_driver->start_stream(in_name);
      }
      if (auto s = step(which); !s) return s;
      return in_driver->step(which);  // the target's NBD server / incoming stream
    };
    const auto t0 = std::chrono::steady_clock::now();
    if (!target.nbd_host.empty()) {
      MigrationProgress p;
      p.phase = "mirror";
      p.disk_total = 1 << 20;
      if (progress) progress(p);
      if (auto s = at(Step::mirror, Out::State::mirroring); !s)
        return s.error().message == kAgentDied ? died(Out::State::mirroring) : fail(s.error());
    }
    MigrationProgress p;
    p.phase = "ram";
    p.ram_total = uint64_t(st->spec.memory_mib) << 20;
    p.ram_remaining = p.ram_total;
    if (progress) progress(p);
    if (auto s = at(Step::ram, Out::State::copying); !s)
      return s.error().message == kAgentDied ? died(Out::State::copying) : fail(s.error());
    if (policy.postcopy) {  // waits for switchover_out
      {
        std::lock_guard lock(mu_);
        out_[name].postcopy = true;
        out_[name].peer = in_driver;
      }
      MigrationOutcome ready;
      ready.postcopy_ready = true;
      ready.downtime_limit_ms = policy.downtime_start_ms;
      return ready;
    }
    // The switch-over: the source stops, the last state goes.
    const int64_t stop_at_us = wall_us();
    (void)hv_.pause(name);
    paused_here = true;
    if (auto s = at(Step::switchover, Out::State::copying); !s)
      return s.error().message == kAgentDied ? died(Out::State::copying) : fail(s.error());
    complete_stream(target.migration_uri);
    {
      std::lock_guard lock(mu_);
      out_[name].state = Out::State::completed;
    }
    MigrationOutcome outcome;
    outcome.stop_at_us = stop_at_us;
    outcome.qemu_downtime_ms = 1;
    outcome.total_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    outcome.ram_transferred = p.ram_total;
    outcome.downtime_limit_ms = policy.downtime_start_ms;
    return outcome;
  }

  Result<int64_t> finish_incoming(const std::string& name, std::chrono::milliseconds) override {
    if (auto s = step(Step::finish); !s) return tl::unexpected(s.error());
    if (!hv_.status(name)) return not_found("vm " + name + " not found");
    std::string uri;
    {
      std::lock_guard lock(mu_);
      auto it = in_.find(name);
      if (it == in_.end())
        return make_error(ErrorCode::failed_precondition, "VM " + name + " is not migrating in");
      it->second.job = true;  // an earlier agent's incoming VM: taken back
      if (it->second.failed) return make_error(ErrorCode::unavailable, "incoming migration failed");
      if (!it->second.received)
        return make_error(ErrorCode::deadline_exceeded, "incoming migration not completed");
      uri = it->second.uri;
      if (it->second.postcopy) pc_[name] = PostcopyIn{};  // the rest comes after the resume
      in_.erase(it);
    }
    net_.close(uri);
    if (auto s = hv_.resume(name); !s) return tl::unexpected(s.error());
    return wall_us();
  }

  Result<MigrationOutcome> switchover_out(const std::string& name) override {
    if (auto s = step(Step::switchover); !s) return tl::unexpected(s.error());
    std::string uri;
    {
      std::lock_guard lock(mu_);
      auto it = out_.find(name);
      if (it == out_.end() || !it->second.job || !it->second.postcopy)
        return make_error(ErrorCode::failed_precondition,
                          "VM " + name + " has no migration waiting for its switch-over");
      if (it->second.switched) return *it->second.switched;
      uri = it->second.uri;
    }
    MigrationOutcome out;
    out.stop_at_us = wall_us();
    out.postcopy = true;
    (void)hv_.pause(name);
    complete_stream(uri);  // the device state went: the target may resume
    std::lock_guard lock(mu_);
    out_[name].state = Out::State::completed;
    out_[name].switched = out;
    return out;
  }

  Result<std::string> prepare_recover_incoming(const std::string& name,
                                               const std::string& listen_host) override {
    if (auto s = step(Step::recover); !s) return tl::unexpected(s.error());
    if (!hv_.status(name)) return not_found("vm " + name + " not found");
    std::string old;
    {
      std::lock_guard lock(mu_);
      auto it = pc_.find(name);
      if (it == pc_.end() || !it->second.paused)
        return make_error(ErrorCode::failed_precondition,
                          "the incoming migration of " + name + " is not postcopy-paused");
      old = it->second.recover_uri;
    }
    if (!old.empty()) net_.close(old);  // QEMU replaces its listener
    std::string uri = net_.listen(this, listen_host, name);
    std::lock_guard lock(mu_);
    pc_[name].recover_uri = uri;
    return uri;
  }

  Status resume_out(const std::string& name, const std::string& recover_uri) override {
    if (auto s = step(Step::resume); !s) return s;
    {
      std::lock_guard lock(mu_);
      auto it = out_.find(name);
      if (it == out_.end() || !it->second.job || !it->second.switched)
        return make_error(ErrorCode::failed_precondition, "VM " + name + " is not migrating out");
      if (!it->second.broken) return {};  // streams already
    }
    auto peer = net_.find(recover_uri);
    if (!peer || peer->second != name) return unavailable("connection refused: " + recover_uri);
    {
      std::lock_guard lock(peer->first->mu_);
      auto it = peer->first->pc_.find(name);
      if (it == peer->first->pc_.end() || !it->second.paused)
        return unavailable("connection refused: " + recover_uri);
      it->second.paused = false;
      it->second.recover_uri.clear();
    }
    net_.close(recover_uri);
    std::lock_guard lock(mu_);
    out_[name].broken = false;
    return {};
  }

  Status pause_out(const std::string& name) override {
    break_postcopy(name);
    return {};
  }

  Status abort_incoming(const std::string& name) override {
    if (auto s = step(Step::abort); !s) return s;
    if (!hv_.status(name)) return not_found("vm " + name + " not found");
    std::string uri;
    {
      std::lock_guard lock(mu_);
      auto it = in_.find(name);
      if (it == in_.end())
        return make_error(ErrorCode::failed_precondition, "VM " + name + " is not migrating in");
      uri = it->second.uri;
      in_.erase(it);
    }
    net_.close(uri);
    (void)hv_.force_off(name);
    return hv_.undefine(name, false);
  }

  Status confirm_out(const std::string& name) override {
    if (auto s = step(Step::confirm); !s) return s;
    if (!hv_.status(name)) return not_found("vm " + name + " not found");
    MemoryMigration* peer = nullptr;
    {
      std::lock_guard lock(mu_);
      auto it = out_.find(name);
      if (it == out_.end() || !it->second.job)
        return make_error(ErrorCode::failed_precondition, "VM " + name + " is not migrating out");
      if (it->second.state != Out::State::completed)
        return make_error(ErrorCode::failed_precondition, "VM " + name + " has not switched over");
      if (it->second.broken)
        return make_error(ErrorCode::unavailable,
                          "the post-copy stream of " + name +
                              " is postcopy-paused: the guest on the target still needs pages "
                              "only this host holds, so its QEMU is kept");
      peer = it->second.switched ? it->second.peer : nullptr;
      out_.erase(it);
    }
    if (peer) {  // the last page went: the target's migration completed
      std::lock_guard lock(peer->mu_);
      peer->pc_.erase(name);
    }
    (void)hv_.force_off(name);
    return hv_.undefine(name, false);
  }

  Status cancel_out(const std::string& name) override {
    if (auto s = step(Step::cancel); !s) return s;
    if (!hv_.status(name)) return not_found("vm " + name + " not found");
    {
      std::lock_guard lock(mu_);
      auto it = out_.find(name);
      if (it == out_.end() || !it->second.job)
        return make_error(ErrorCode::failed_precondition, "VM " + name + " is not migrating out");
      out_.erase(it);
    }
    auto st = hv_.status(name);
    if (st && st->state == model::VmState::paused) return hv_.resume(name);
    return {};
  }

  Status interrupt_out(const std::string& name) override {
    std::lock_guard lock(mu_);
    auto it = out_.find(name);
    if (it == out_.end() || !it->second.job || it->second.state == Out::State::completed)
      return make_error(ErrorCode::failed_precondition, "VM " + name + " is not migrating out");
    it->second.interrupt = true;
    return {};
  }

 private:
  struct Script {
    std::optional<Error> fail;
    int fail_times = 0;
    bool hang = false;
    bool hung = false;
  };
  struct Out {
    enum class State { none, mirroring, copying, completed } state = State::none;
    bool job = false;  // the agent's migrate_out job owns it (false after an agent restart)
    bool interrupt = false;
    std::string uri;
    bool postcopy = false;                     // a post-copy policy (waits for switchover_out)
    MemoryMigration* peer = nullptr;           // the target's driver (post-copy)
    std::optional<MigrationOutcome> switched;  // switchover_out's answer
    bool broken = false;                       // the post-copy stream is paused
  };
  // A target that resumed a post-copy guest: its incoming stream until the last page.
  struct PostcopyIn {
    bool paused = false;      // the stream broke
    std::string recover_uri;  // where prepare_recover_incoming listens
  };
  struct In {
    std::string uri;
    bool tls = false;
    bool nbd = false;
    bool job = true;         // false: prepared by an earlier agent process
    bool streaming = false;  // a source connected
    bool received = false;   // the stream completed: it can resume
    bool failed = false;     // the stream broke: QEMU quit its incoming migration
    bool postcopy = false;   // prepared for post-copy
  };

  static int64_t wall_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  void forget(const std::string& name) {
    std::string uri;
    {
      std::lock_guard lock(mu_);
      out_.erase(name);
      pc_.erase(name);
      if (auto it = in_.find(name); it != in_.end()) {
        uri = it->second.uri;
        in_.erase(it);
      }
    }
    if (!uri.empty()) net_.close(uri);
  }

  // A scripted step: fails, hangs (until release or agent_died), or passes. A prepare's
  // failure comes before anything is made (before), its hang after QEMU listens.
  Status step(Step which, std::optional<bool> before = std::nullopt) {
    std::unique_lock lock(mu_);
    Script& s = scripts_[which];
    if (!before || *before) {
      if (s.fail && s.fail_times != 0) {
        if (s.fail_times > 0) --s.fail_times;
        return tl::unexpected(*s.fail);
      }
    }
    if (before && *before) return {};
    if (!s.hang) return {};
    s.hang = false;
    s.hung = true;
    cv_.notify_all();
    const uint64_t released = release_epoch_, died = died_epoch_;
    cv_.wait(lock, [&] { return release_epoch_ != released || died_epoch_ != died; });
    s.hung = false;
    if (died_epoch_ != died) return unavailable(kAgentDied);
    return {};
  }

  // The target's side of a source connecting.
  Status accept(const std::string& name, bool tls) {
    std::lock_guard lock(mu_);
    auto it = in_.find(name);
    if (it == in_.end() || it->second.failed || it->second.received || it->second.streaming)
      return unavailable("connection refused");
    if (it->second.tls != tls) return unavailable("TLS handshake failed");
    return {};
  }
  void start_stream(const std::string& name) {
    std::lock_guard lock(mu_);
    if (auto it = in_.find(name); it != in_.end()) it->second.streaming = true;
  }
  void complete_stream(const std::string& uri) {
    auto peer = net_.find(uri);
    if (!peer) return;
    std::lock_guard lock(peer->first->mu_);
    if (auto it = peer->first->in_.find(peer->second); it != peer->first->in_.end())
      it->second.received = true;
  }
  // A stream that breaks: the incoming QEMU quits (QEMU exits when its incoming migration
  // fails); the agent still holds the VM, stopped, until it is aborted.
  void fail_stream(const std::string& uri) {
    auto peer = net_.find(uri);
    if (!peer) return;
    {
      std::lock_guard lock(peer->first->mu_);
      if (auto it = peer->first->in_.find(peer->second); it != peer->first->in_.end())
        it->second.failed = true;
    }
    (void)peer->first->hv_.force_off(peer->second);
  }

  MemoryHypervisor& hv_;
  MemoryMigrationNet& net_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<Step, Script> scripts_;
  uint64_t release_epoch_ = 0, died_epoch_ = 0;
  std::map<std::string, Out> out_;
  std::map<std::string, In> in_;
  std::map<std::string, PostcopyIn> pc_;
};

}  // namespace strata::agent::testing
