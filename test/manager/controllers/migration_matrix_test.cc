// The live-migration failure matrix (issue 10): each phase {prepare, mirror, ram,
// switchover, finish, confirm} x each fault {manager killed, source agent killed, target
// agent killed, source fails the phase, target fails the phase} x storage {shared, local}
// x TLS {on, off}, against two real AgentServices (gRPC on UNIX sockets) over in-memory
// hypervisors with the scriptable migration driver (memory_migration.h), a real
// VmController and ConnectionManager on a SimulatedClock and SQLite in memory.
// After the fault and its recovery (restarts, controller passes until the task ends) it
// checks the rule: the VM runs on exactly one host (the source unless the target resumed
// it), the store names that host, the other host holds no copy and no migration state,
// the task ended (with a reason on failure), and a second migration then succeeds.
// A killed manager is its VmController and ConnectionManager stopped while a call is in
// flight, its agent connections cut (a UNIX-socket relay in front of each agent), and a
// new pair made over the same store. A killed agent is its AgentService gone while QEMU
// (the in-memory hypervisor and its migration state) stays; recover() runs at its restart.
// Run: ctest -R MigrationMatrix
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "../../agent/service/memory_migration.h"
#include "../../agent/service/served_agent.h"
#include "strata/common/clock_wait.h"
#include "strata/manager/agents/connection_manager.h"
#include "strata/manager/controllers/vm_controller.h"
#include "strata/manager/vms/vm_service.h"

namespace strata::manager {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using agent::testing::MemoryHypervisor;
using agent::testing::MemoryMigration;
using agent::testing::MemoryMigrationNet;
using agent::testing::ServedAgent;
using Step = MemoryMigration::Step;

// A UNIX-socket relay between the manager and one agent: cut() breaks every connection
// open through it (the manager's calls fail as when the manager process dies; the agent
// sees its streams end), and later connections pass again.
class SocketRelay {
 public:
  SocketRelay(std::string listen_path, std::string target_path) : target_(std::move(target_path)) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof(a.sun_path), "%s", listen_path.c_str());
    ::unlink(listen_path.c_str());
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
          ::listen(fd_, 64) == 0;
    if (ok_) acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~SocketRelay() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    cut();
    for (auto& t : pipes_) t.join();
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }
  void cut() {
    std::lock_guard lock(mu_);
    for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
  }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int in = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (in < 0) continue;
      int out = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::snprintf(a.sun_path, sizeof(a.sun_path), "%s", target_.c_str());
      if (out < 0 || ::connect(out, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        ::close(in);
        if (out >= 0) ::close(out);
        continue;
      }
      std::lock_guard lock(mu_);
      open_.push_back(in);
      open_.push_back(out);
      pipes_.emplace_back([this, in, out] { pipe(in, out); });
    }
  }
  void pipe(int a, int b) {
    char buf[16384];
    pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    while (!stop_) {
      if (::poll(p, 2, 20) <= 0) continue;
      bool done = false;
      for (int i = 0; i < 2 && !done; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = ::read(p[i].fd, buf, sizeof(buf));
        if (n <= 0) {
          done = true;
          break;
        }
        for (ssize_t off = 0; off < n && !done;) {
          ssize_t w = ::send(p[1 - i].fd, buf + off, size_t(n - off), MSG_NOSIGNAL);
          if (w <= 0) done = true;
          off += w;
        }
      }
      if (done) break;
    }
    std::lock_guard lock(mu_);
    ::shutdown(a, SHUT_RDWR);
    ::shutdown(b, SHUT_RDWR);
    std::erase(open_, a);
    std::erase(open_, b);
    ::close(a);
    ::close(b);
  }

  std::string target_;
  int fd_ = -1;
  bool ok_ = false;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> open_;
  std::vector<std::thread> pipes_;
};

enum class Phase { prepare, mirror, ram, switchover, finish, confirm };
enum class Fault { kill_manager, kill_source, kill_target, source_fails, target_fails, cancel };

struct Case {
  Phase phase;
  Fault fault;
  bool local;  // local disks (mirrored over NBD) or shared storage
  bool tls;
};

const char* name_of(Phase p) {
  switch (p) {
    case Phase::prepare:
      return "Prepare";
    case Phase::mirror:
      return "Mirror";
    case Phase::ram:
      return "Ram";
    case Phase::switchover:
      return "Switchover";
    case Phase::finish:
      return "Finish";
    case Phase::confirm:
      return "Confirm";
  }
  return "?";
}
const char* name_of(Fault f) {
  switch (f) {
    case Fault::kill_manager:
      return "ManagerKilled";
    case Fault::kill_source:
      return "SourceKilled";
    case Fault::kill_target:
      return "TargetKilled";
    case Fault::source_fails:
      return "SourceFails";
    case Fault::target_fails:
      return "TargetFails";
    case Fault::cancel:
      return "Cancelled";
  }
  return "?";
}

// Every combination that exists: no mirror without local disks, no source part in finish
// (the target resumes), no target part in confirm (the source removes its copy).
std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (Phase p : {Phase::prepare, Phase::mirror, Phase::ram, Phase::switchover, Phase::finish,
                  Phase::confirm})
    for (Fault f : {Fault::kill_manager, Fault::kill_source, Fault::kill_target,
                    Fault::source_fails, Fault::target_fails})
      for (bool local : {false, true})
        for (bool tls : {true, false}) {
          if (p == Phase::mirror && !local) continue;
          if (p == Phase::finish && f == Fault::source_fails) continue;
          if (p == Phase::confirm && f == Fault::target_fails) continue;
          out.push_back({p, f, local, tls});
        }
  return out;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  return std::string(name_of(c.phase)) + "_" + name_of(c.fault) + "_" +
         (c.local ? "Local" : "Shared") + "_" + (c.tls ? "Tls" : "Plain");
}

// One host: its hypervisor and migration state (QEMU: outlive the agent), its agent, and
// the relay the manager reaches it through.
struct Host {
  std::string name, id;
  fs::path state_dir, socket, relay_socket;
  MemoryHypervisor hv;
  MemoryMigrationNet* net = nullptr;
  std::unique_ptr<MemoryMigration> mig;
  std::unique_ptr<ServedAgent> agent;
  std::unique_ptr<SocketRelay> relay;
};

class MigrationMatrixTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-mm-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = store::open_store("sqlite::memory:", store::StoreOptions{clock_, 1});
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
    events_ = std::make_unique<EventLog>(*store_);
    tasks_ = std::make_unique<TaskTracker>(*store_);
    auto sched = sched::Scheduler::create({});
    ASSERT_TRUE(sched);
    placement_ = std::make_unique<PlacementService>(*store_, std::move(*sched));
    for (int i = 0; i < 2; ++i) {
      auto& h = hosts_[i];
      h.name = "h" + std::to_string(i + 1);
      h.state_dir = dir_ / h.name / "state";
      h.socket = dir_ / (h.name + ".sock");
      h.relay_socket = dir_ / (h.name + "-mgr.sock");
      fs::create_directories(h.state_dir);
      h.mig = std::make_unique<MemoryMigration>(h.hv, net_);
      ASSERT_NO_FATAL_FAILURE(start_agent(h));
      h.relay = std::make_unique<SocketRelay>(h.relay_socket.string(), h.socket.string());
      ASSERT_TRUE(h.relay->ok());
      store::HostRecord r;
      r.name = h.name;
      r.address = "unix:" + h.relay_socket.string();
      r.state = "up";
      r.accelerator = "tcg";
      r.cpu_threads = 8;
      r.memory_mib = 8192;
      auto made = store_->create_host(r);
      ASSERT_TRUE(made) << made.error().to_string();
      h.id = made->id;
    }
    ASSERT_TRUE(placement_->load());
    ASSERT_NO_FATAL_FAILURE(make_vm());
    start_manager();
  }
  void TearDown() override {
    for (auto& h : hosts_) h.mig->release();  // a failed test may have left a call hung
    stop_manager();
    for (auto& h : hosts_) {
      h.agent.reset();
      h.relay.reset();
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start_agent(Host& h) {
    (void)h.hv.recover();  // as serve.cc does at every start
    agent::service::AgentServiceOptions opts;
    opts.state_dir = h.state_dir.string();
    opts.agent_version = "test";
    opts.hostname = h.name;
    opts.accelerator = "tcg";
    std::error_code ec;
    fs::remove(h.socket, ec);
    auto served = ServedAgent::start(h.hv, opts, h.socket.string());
    ASSERT_TRUE(served) << served.error().to_string();
    h.agent = std::move(*served);
  }
  // The agent process is killed: its hung calls end unanswered; QEMU stays.
  void kill_agent(Host& h) {
    h.mig->agent_died();
    h.agent.reset();
    h.relay->cut();
  }

  void start_manager() {
    ConnectionConfig cc;
    cc.heartbeat.interval = 2s;
    cc.heartbeat.miss_threshold = 2;
    cc.heartbeat.rpc_timeout = 200ms;
    cc.startup_wait = 0ms;
    agents_ = std::make_unique<ConnectionManager>(*store_, *events_, clock_, cc);
    ControllerConfig cfg;
    cfg.workers = 2;
    cfg.resync_interval = 10s;
    cfg.retry_base = 500ms;
    cfg.retry_max = 4s;
    controller_ = std::make_unique<VmController>(*store_, *agents_, *tasks_, *events_, *placement_,
                                                 clock_, cfg);
    agents_->set_callbacks(
        {[this](const std::string& h, Liveness l) { controller_->on_host_state(h, l); },
         [this](const std::string& h, const pb::VmEvent& e) { controller_->on_vm_event(h, e); },
         nullptr, nullptr});
    controller_->start();
    (void)agents_->start();
  }
  void stop_manager() {
    if (controller_) controller_->stop();
    if (agents_) agents_->stop();
    controller_.reset();
    agents_.reset();
  }
  // The manager process is killed while a call is in flight: it acts no more (stop() is
  // asked first, so no new pass begins), and its connections break under the call.
  void kill_manager() {
    std::atomic<bool> stopped{false};
    std::thread stopper([&] {
      controller_->stop();
      stopped = true;
    });
    while (!stopped) {
      for (auto& h : hosts_) h.relay->cut();
      std::this_thread::sleep_for(2ms);
    }
    stopper.join();
    agents_->stop();
    controller_.reset();
    agents_.reset();
  }

  void make_vm() {
    VmDocument doc;
    doc.spec.name = "vm1";
    doc.spec.vcpus = 1;
    doc.spec.memory_mib = 256;
    model::DiskSpec disk;
    disk.name = "root";
    disk.boot = true;
    disk.size_bytes = 1 << 30;
    if (GetParam().local)
      disk.base_image = "base";
    else
      disk.datastore = "shared";
    doc.spec.disks.push_back(disk);
    auto defined = hosts_[0].hv.define(doc.spec);
    ASSERT_TRUE(defined) << defined.error().to_string();
    ASSERT_TRUE(hosts_[0].hv.start("vm1"));
    doc.spec = defined->spec;
    store::VmRecord vm;
    vm.name = "vm1";
    vm.host_id = hosts_[0].id;
    vm.desired_state = "running";
    vm.spec = encode(doc);
    VmStatusDoc st;
    st.state = st.agent_state = "running";
    vm.status = encode(st);
    auto made = store_->create_vm(vm);
    ASSERT_TRUE(made) << made.error().to_string();
    vm_id_ = made->id;
  }

  // Records a migration to the VM's other host, as VmService::migrate does (intent + task).
  std::string start_migration(int64_t seq) {
    auto task = tasks_->create(TaskKind::vm_migrate, "vm", vm_id_);
    EXPECT_TRUE(task);
    if (!task) return {};
    // Compare-and-set, as the service does: the controller may write the VM's status now.
    for (int attempt = 0; attempt < 50; ++attempt) {
      auto vm = store_->get_vm(vm_id_);
      auto doc = vm ? decode_vm_document(vm->spec) : Result<VmDocument>(not_found("vm"));
      EXPECT_TRUE(vm && doc);
      if (!vm || !doc) return {};
      doc->migration.target_host_id = *vm->host_id == hosts_[0].id ? hosts_[1].id : hosts_[0].id;
      doc->migration.task_id = task->id;
      doc->migration.seq = seq;
      doc->migration.tls = GetParam().tls;
      doc->migration.postcopy = postcopy_;
      vm->spec = encode(*doc);
      auto u = store_->update_vm(*vm);
      if (u) {
        controller_->enqueue_vm(vm_id_);
        return task->id;
      }
      EXPECT_EQ(u.error().code, ErrorCode::conflict) << u.error().to_string();
      if (u.error().code != ErrorCode::conflict) return {};
    }
    ADD_FAILURE() << "the migration intent was never recorded";
    return {};
  }

  // Moves simulated time on (heartbeats, backoff, resync) until done(); false after ~20 s
  // of real time (a hang guard, not a timing assertion).
  template <typename F>
  bool pump(F done) {
    for (int i = 0; i < 20000; ++i) {
      if (done()) return true;
      clock_->advance(250ms);
      std::this_thread::sleep_for(1ms);
    }
    return done();
  }
  bool task_ended(const std::string& id) {
    auto t = store_->get_task(id);
    return t && (t->state == "succeeded" || t->state == "failed");
  }
  size_t events_named(const std::string& type) {
    auto list = store_->list_events(0, 10000);
    size_t n = 0;
    if (list)
      for (const auto& e : *list) n += e.action == type;
    return n;
  }
  bool runs(Host& h) {
    auto s = h.hv.status("vm1");
    return s && s->state == model::VmState::running;
  }
  bool settled(const std::string& task) {
    if (!task_ended(task)) return false;
    auto vm = store_->get_vm(vm_id_);
    if (!vm || !vm->host_id) return false;
    Host& on = *vm->host_id == hosts_[0].id ? hosts_[0] : hosts_[1];
    Host& other = &on == &hosts_[0] ? hosts_[1] : hosts_[0];
    return runs(on) && !other.hv.status("vm1") && other.mig->incoming() == 0 &&
           other.mig->outgoing() == 0 && on.mig->incoming() == 0 && on.mig->outgoing() == 0;
  }

  // Where the fault strikes: the host whose driver step blocks or fails.
  struct Where {
    Host* host;
    Step step;
  };
  Where hang_point(const Case& c) {
    Host& src = hosts_[0];
    Host& dst = hosts_[1];
    switch (c.phase) {
      case Phase::prepare:
        return c.fault == Fault::kill_source ? Where{&src, Step::begin}
                                             : Where{&dst, Step::prepare};
      case Phase::mirror:
        return {&src, Step::mirror};
      case Phase::ram:
        return {&src, Step::ram};
      case Phase::switchover:
        return {&src, Step::switchover};
      case Phase::finish:
        return {&dst, Step::finish};
      case Phase::confirm:
        return {&src, Step::confirm};
    }
    return {&src, Step::begin};
  }
  Where fail_point(const Case& c) {
    Host& side = c.fault == Fault::source_fails ? hosts_[0] : hosts_[1];
    switch (c.phase) {
      case Phase::prepare:
        return {&side, c.fault == Fault::source_fails ? Step::begin : Step::prepare};
      case Phase::mirror:
        return {&side, Step::mirror};
      case Phase::ram:
        return {&side, Step::ram};
      case Phase::switchover:
        return {&side, Step::switchover};
      case Phase::finish:
        return {&side, Step::finish};
      case Phase::confirm:
        return {&side, Step::confirm};
    }
    return {&side, Step::begin};
  }

  fs::path dir_;
  std::shared_ptr<SimulatedClock> clock_ = std::make_shared<SimulatedClock>();
  store::StorePtr store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<TaskTracker> tasks_;
  std::unique_ptr<PlacementService> placement_;
  MemoryMigrationNet net_;
  Host hosts_[2];
  std::unique_ptr<ConnectionManager> agents_;
  std::unique_ptr<VmController> controller_;
  std::string vm_id_;
  bool postcopy_ = false;  // the migrations start_migration records ask for post-copy
};

TEST_P(MigrationMatrixTest, EndsOnExactlyOneHost) {
  const Case c = GetParam();
  Host& src = hosts_[0];
  Host& dst = hosts_[1];
  const bool kill = c.fault == Fault::kill_manager || c.fault == Fault::kill_source ||
                    c.fault == Fault::kill_target;
  Where where{};
  if (kill) {
    where = hang_point(c);
    where.host->mig->hang_at(where.step);
  } else {
    where = fail_point(c);
    where.host->mig->fail_at(where.step,
                             Error{ErrorCode::failed_precondition, "injected failure", {}});
  }
  const std::string task = start_migration(1);
  ASSERT_FALSE(task.empty());

  if (kill) {
    ASSERT_TRUE(pump([&] { return where.host->mig->wait_hung(where.step, 1ms); }))
        << "the migration never reached the phase";
    switch (c.fault) {
      case Fault::kill_manager:
        kill_manager();
        where.host->mig->release();  // the agent finishes what it was doing, unheard
        start_manager();
        break;
      case Fault::kill_source:
      case Fault::kill_target: {
        Host& victim = c.fault == Fault::kill_source ? src : dst;
        kill_agent(victim);
        if (where.host != &victim) where.host->mig->release();
        // Down for a while: heartbeats miss, the controller retries meanwhile.
        for (int i = 0; i < 40; ++i) {
          clock_->advance(250ms);
          std::this_thread::sleep_for(1ms);
        }
        ASSERT_NO_FATAL_FAILURE(start_agent(victim));
        break;
      }
      default:
        break;
    }
  }

  const bool ok = pump([&] { return settled(task); });
  auto t = store_->get_task(task);
  ASSERT_TRUE(t);
  auto vm = store_->get_vm(vm_id_);
  ASSERT_TRUE(vm && vm->host_id);
  EXPECT_TRUE(ok) << "not settled: task " << t->state << " \"" << t->message << "\"; h1 "
                  << (src.hv.status("vm1") ? model::to_string(src.hv.status("vm1")->state) : "none")
                  << ", h2 "
                  << (dst.hv.status("vm1") ? model::to_string(dst.hv.status("vm1")->state) : "none")
                  << ", record on " << (*vm->host_id == src.id ? "h1" : "h2");
  ASSERT_TRUE(t->state == "succeeded" || t->state == "failed") << t->state << ": " << t->message;
  // The source unless the target resumed the guest: a success is on the target, a failure
  // on the source.
  Host& on = t->state == "succeeded" ? dst : src;
  Host& other = t->state == "succeeded" ? src : dst;
  EXPECT_EQ(*vm->host_id, on.id) << t->message;
  EXPECT_TRUE(runs(on)) << "the VM does not run on " << on.name << "; task: " << t->message;
  EXPECT_FALSE(other.hv.status("vm1")) << other.name << " still holds a copy; " << t->message;
  EXPECT_EQ(other.mig->incoming() + other.mig->outgoing(), 0u);
  EXPECT_EQ(on.mig->incoming() + on.mig->outgoing(), 0u);
  EXPECT_FALSE(decode_vm_document(vm->spec)->migration.active());
  if (t->state == "failed") {
    EXPECT_FALSE(t->message.empty());
  }
  // A phase failed before the target could resume: the migration cannot have succeeded.
  if (!kill && c.phase != Phase::finish && c.phase != Phase::confirm) {
    EXPECT_EQ(t->state, "failed") << t->message;
  }

  // A second migration, nothing scripted, succeeds.
  src.mig->clear_scripts();
  dst.mig->clear_scripts();
  const std::string first_host = *vm->host_id;
  const std::string again = start_migration(2);
  ASSERT_FALSE(again.empty());
  EXPECT_TRUE(pump([&] { return settled(again); }));
  auto t2 = store_->get_task(again);
  ASSERT_TRUE(t2);
  EXPECT_EQ(t2->state, "succeeded") << t2->message;
  auto vm2 = store_->get_vm(vm_id_);
  ASSERT_TRUE(vm2 && vm2->host_id);
  EXPECT_NE(*vm2->host_id, first_host);
}

INSTANTIATE_TEST_SUITE_P(MigrationMatrix, MigrationMatrixTest, ::testing::ValuesIn(all_cases()),
                         case_name);

// Post-copy recovery at manager level (docs/internals/migration.md, "Post-copy"): the stream
// breaks after the switch-over, while the source's confirm waits for the last page (the
// confirm is held, the stream broken, the confirm let go: it answers "broken").
class PostcopyRecoveryTest : public MigrationMatrixTest {
 protected:
  // Starts a post-copy migration and breaks its stream once the target runs the guest.
  std::string start_and_break() {
    postcopy_ = true;
    hosts_[0].mig->hang_at(Step::confirm);
    const std::string task = start_migration(1);
    EXPECT_FALSE(task.empty());
    EXPECT_TRUE(pump([&] { return hosts_[0].mig->wait_hung(Step::confirm, 1ms); }))
        << "the migration never reached its confirm";
    EXPECT_TRUE(runs(hosts_[1])) << "the target does not run the guest after the switch-over";
    hosts_[0].mig->break_postcopy("vm1");
    return task;
  }
  std::string task_message(const std::string& id) {
    auto t = store_->get_task(id);
    return t ? t->message : "";
  }
};

TEST_P(PostcopyRecoveryTest, ABrokenStreamIsRecoveredAndTheMigrationSucceeds) {
  Host& src = hosts_[0];
  Host& dst = hosts_[1];
  // The first attempt's target fails to listen: the second one, after the backoff, works.
  dst.mig->fail_at(Step::recover, Error{ErrorCode::unavailable, "injected failure", {}}, 1);
  src.mig->hang_at(Step::resume);
  const std::string task = start_and_break();
  ASSERT_FALSE(task.empty());
  src.mig->release();
  ASSERT_TRUE(pump([&] { return src.mig->wait_hung(Step::resume, 1ms); }));
  EXPECT_NE(task_message(task).find("post-copy stream broken, recovering (attempt 2)"),
            std::string::npos)
      << task_message(task);
  src.mig->release();
  ASSERT_TRUE(pump([&] { return settled(task); })) << task_message(task);
  auto t = store_->get_task(task);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->state, "succeeded") << t->message;
  auto result = nlohmann::json::parse(t->result);
  EXPECT_EQ(result.value("postcopy_recoveries", -1), 2) << t->result;
  EXPECT_TRUE(result.value("postcopy", false));
  auto vm = store_->get_vm(vm_id_);
  ASSERT_TRUE(vm && vm->host_id);
  EXPECT_EQ(*vm->host_id, dst.id);
  EXPECT_TRUE(runs(dst));
  EXPECT_FALSE(src.hv.status("vm1")) << "the source kept its copy after the last page";
  EXPECT_EQ(events_named("vm.migration.recovered"), 1u);
  EXPECT_EQ(events_named("vm.migration.recovery_failed"), 0u);
}

// The target's guest is gone (its VM removed) while the stream is broken: nothing can bring
// the memory together again; the task ends failed with today's lost-guest outcome.
TEST_P(PostcopyRecoveryTest, ATargetThatIsGoneLosesTheGuest) {
  Host& src = hosts_[0];
  Host& dst = hosts_[1];
  const std::string task = start_and_break();
  ASSERT_FALSE(task.empty());
  (void)dst.hv.force_off("vm1");
  ASSERT_TRUE(dst.hv.undefine("vm1", false));
  src.mig->release();
  ASSERT_TRUE(pump([&] { return task_ended(task); })) << task_message(task);
  auto t = store_->get_task(task);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->state, "failed");
  EXPECT_NE(t->message.find("the guest is lost"), std::string::npos) << t->message;
  auto vm = store_->get_vm(vm_id_);
  ASSERT_TRUE(vm && vm->host_id);
  EXPECT_EQ(*vm->host_id, src.id);
  EXPECT_FALSE(decode_vm_document(vm->spec)->migration.active());
  EXPECT_EQ(events_named("vm.migration.recovery_failed"), 1u);
  EXPECT_EQ(events_named("vm.migration.recovered"), 0u);
}

// The manager dies while the target prepares the first recovery; the restarted manager
// goes on from the record (attempt 1 was made: the next is attempt 2) and the migration
// succeeds.
TEST_P(PostcopyRecoveryTest, AManagerRestartedMidRecoveryGoesOn) {
  Host& src = hosts_[0];
  Host& dst = hosts_[1];
  dst.mig->hang_at(Step::recover);
  const std::string task = start_and_break();
  ASSERT_FALSE(task.empty());
  src.mig->release();
  ASSERT_TRUE(pump([&] { return dst.mig->wait_hung(Step::recover, 1ms); }));
  EXPECT_NE(task_message(task).find("post-copy stream broken, recovering (attempt 1)"),
            std::string::npos)
      << task_message(task);
  kill_manager();
  dst.mig->release();  // the target listens, unheard: no source ever connects to it
  start_manager();
  ASSERT_TRUE(pump([&] { return settled(task); })) << task_message(task);
  auto t = store_->get_task(task);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->state, "succeeded") << t->message;
  EXPECT_EQ(nlohmann::json::parse(t->result).value("postcopy_recoveries", -1), 2) << t->result;
  auto vm = store_->get_vm(vm_id_);
  ASSERT_TRUE(vm && vm->host_id);
  EXPECT_EQ(*vm->host_id, dst.id);
  EXPECT_FALSE(src.hv.status("vm1"));
}

INSTANTIATE_TEST_SUITE_P(PostcopyRecovery, PostcopyRecoveryTest,
                         ::testing::Values(Case{Phase::confirm, Fault::kill_manager, true, true},
                                           Case{Phase::confirm, Fault::kill_manager, false, false}),
                         case_name);

// The gaps the matrix above left (docs/internals/migration.md, "The failure matrix"), with
// exact expectations instead of the matrix's "either outcome, cleanly": an agent restarted
// in the middle of a step (MigrationRestart), and cancel at each phase (MigrationCancel).
// The parameter's storage and TLS are used; its phase only by the cancel cases.
class MigrationGapTest : public MigrationMatrixTest {
 protected:
  void SetUp() override {
    MigrationMatrixTest::SetUp();
    vms_ = std::make_unique<VmService>(*store_, *placement_, *events_, clock_,
                                       [this](const std::string& id) {
                                         if (controller_) controller_->enqueue_vm(id);
                                       });
    vms_->set_agents([this](const std::string& host_id) { return agents_->client(host_id); });
  }
  void TearDown() override {
    vms_.reset();
    MigrationMatrixTest::TearDown();
  }
  // Down for a while (heartbeats miss, the controller retries meanwhile), then back.
  void restart_agent(Host& h) {
    kill_agent(h);
    for (int i = 0; i < 40; ++i) {
      clock_->advance(250ms);
      std::this_thread::sleep_for(1ms);
    }
    ASSERT_NO_FATAL_FAILURE(start_agent(h));
  }
  // The migration ended where `on` runs the VM, alone: the record names it, the other host
  // holds no copy, neither holds migration state, the intent is cleared.
  void expect_only_on(const std::string& task, Host& on) {
    Host& other = &on == &hosts_[0] ? hosts_[1] : hosts_[0];
    auto vm = store_->get_vm(vm_id_);
    ASSERT_TRUE(vm && vm->host_id);
    EXPECT_EQ(*vm->host_id, on.id) << task_message(task);
    EXPECT_TRUE(runs(on)) << on.name << " does not run the VM; " << task_message(task);
    EXPECT_FALSE(other.hv.status("vm1")) << other.name << " holds a copy; " << task_message(task);
    EXPECT_EQ(hosts_[0].mig->incoming() + hosts_[0].mig->outgoing(), 0u);
    EXPECT_EQ(hosts_[1].mig->incoming() + hosts_[1].mig->outgoing(), 0u);
    EXPECT_FALSE(decode_vm_document(vm->spec)->migration.active());
  }
  // Nothing scripted any more: a migration back the other way succeeds.
  void expect_next_migration_succeeds() {
    hosts_[0].mig->clear_scripts();
    hosts_[1].mig->clear_scripts();
    auto before = store_->get_vm(vm_id_);
    ASSERT_TRUE(before && before->host_id);
    const std::string again = start_migration(2);
    ASSERT_FALSE(again.empty());
    EXPECT_TRUE(pump([&] { return settled(again); })) << task_message(again);
    auto t = store_->get_task(again);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->state, "succeeded") << t->message;
    auto after = store_->get_vm(vm_id_);
    ASSERT_TRUE(after && after->host_id);
    EXPECT_NE(*after->host_id, *before->host_id);
  }
  std::string task_message(const std::string& id) {
    auto t = store_->get_task(id);
    return t ? t->state + ": " + t->message : "no task";
  }
  std::unique_ptr<VmService> vms_;  // the REST and CLI path of cancel
};
class MigrationRestartTest : public MigrationGapTest {};
class MigrationRestartLocalTest : public MigrationGapTest {};  // local disks: a mirror
class MigrationCancelTest : public MigrationGapTest {};
class MigrationCancelWaitingTest : public MigrationGapTest {};

// Each storage x TLS, named so.
const auto kStorageAndTls =
    ::testing::Values(Case{Phase::prepare, Fault::kill_target, false, true},
                      Case{Phase::prepare, Fault::kill_target, false, false},
                      Case{Phase::prepare, Fault::kill_target, true, true},
                      Case{Phase::prepare, Fault::kill_target, true, false});
const auto kLocalAndTls = ::testing::Values(Case{Phase::mirror, Fault::kill_source, true, true},
                                            Case{Phase::mirror, Fault::kill_source, true, false});
std::string storage_name(const ::testing::TestParamInfo<Case>& info) {
  return std::string(info.param.local ? "Local" : "Shared") + "_" +
         (info.param.tls ? "Tls" : "Plain");
}

// The target's agent dies while it prepares, its incoming QEMU already listening (the
// QEMU outlives it), and comes back: its new process finds that VM and refuses the
// manager's retry (already_exists). The manager aborts the leftover and prepares again,
// and the migration succeeds; nothing of the first attempt stays on the target.
TEST_P(MigrationRestartTest, TargetRestartedWhilePreparingIsPreparedAgain) {
  Host& dst = hosts_[1];
  dst.mig->hang_at(Step::prepare);
  const std::string task = start_migration(1);
  ASSERT_FALSE(task.empty());
  ASSERT_TRUE(pump([&] { return dst.mig->wait_hung(Step::prepare, 1ms); }));
  ASSERT_NO_FATAL_FAILURE(restart_agent(dst));
  ASSERT_TRUE(pump([&] { return settled(task); })) << task_message(task);
  EXPECT_EQ(store_->get_task(task)->state, "succeeded") << task_message(task);
  ASSERT_NO_FATAL_FAILURE(expect_only_on(task, dst));
  ASSERT_NO_FATAL_FAILURE(expect_next_migration_succeeds());
}

// The same twice: the second prepare dies too (its VM left behind as well); the next
// attempt replaces it. A manager's retry after each restart replays the remembered
// answers and goes on from the attempt that has none.
TEST_P(MigrationRestartTest, TargetRestartedTwiceWhilePreparingIsPreparedAgain) {
  Host& dst = hosts_[1];
  dst.mig->hang_at(Step::prepare);
  const std::string task = start_migration(1);
  ASSERT_FALSE(task.empty());
  ASSERT_TRUE(pump([&] { return dst.mig->wait_hung(Step::prepare, 1ms); }));
  dst.mig->hang_at(Step::prepare);  // the retry hangs in the same place
  ASSERT_NO_FATAL_FAILURE(restart_agent(dst));
  ASSERT_TRUE(pump([&] { return dst.mig->wait_hung(Step::prepare, 1ms); })) << task_message(task);
  ASSERT_NO_FATAL_FAILURE(restart_agent(dst));
  ASSERT_TRUE(pump([&] { return settled(task); })) << task_message(task);
  EXPECT_EQ(store_->get_task(task)->state, "succeeded") << task_message(task);
  ASSERT_NO_FATAL_FAILURE(expect_only_on(task, dst));
}

// A VM of the same name that runs on the target (not migrating in) is not the leftover of
// a prepare: the manager's abort is refused, the migration fails on it and that VM runs on.
TEST_P(MigrationRestartTest, ASameNamedVmOnTheTargetIsLeftAlone) {
  Host& src = hosts_[0];
  Host& dst = hosts_[1];
  auto spec = src.hv.status("vm1");
  ASSERT_TRUE(spec);
  ASSERT_TRUE(dst.hv.define(spec->spec));
  ASSERT_TRUE(dst.hv.start("vm1"));
  const std::string task = start_migration(1);
  ASSERT_FALSE(task.empty());
  ASSERT_TRUE(pump([&] { return task_ended(task); })) << task_message(task);
  auto t = store_->get_task(task);
  EXPECT_EQ(t->state, "failed");
  EXPECT_NE(t->message.find("VM exists"), std::string::npos) << t->message;
  EXPECT_TRUE(runs(src));
  EXPECT_TRUE(runs(dst)) << "the target's own VM was removed";
  EXPECT_EQ(*store_->get_vm(vm_id_)->host_id, src.id);
}

// The source's agent dies while the memory copies and comes back. QEMU went on without it
// (memory_migration.h: the copy completed, the source paused); the new process no longer
// has the job, so the manager's retry of the copy cannot switch over: the source's QEMU is
// cleared and the guest runs there again, the target is aborted, the task says why.
TEST_P(MigrationRestartTest, SourceRestartedMidRamCopyKeepsTheVmOnTheSource) {
  Host& src = hosts_[0];
  src.mig->hang_at(Step::ram);
  const std::string task = start_migration(1);
  ASSERT_FALSE(task.empty());
  ASSERT_TRUE(pump([&] { return src.mig->wait_hung(Step::ram, 1ms); }));
  ASSERT_NO_FATAL_FAILURE(restart_agent(src));
  ASSERT_TRUE(pump([&] { return settled(task); })) << task_message(task);
  auto t = store_->get_task(task);
  EXPECT_EQ(t->state, "failed");
  EXPECT_NE(t->message.find("the VM runs on its host"), std::string::npos) << t->message;
  ASSERT_NO_FATAL_FAILURE(expect_only_on(task, src));
  ASSERT_NO_FATAL_FAILURE(expect_next_migration_succeeds());
}

// The same during the disk mirror (local disks): no RAM stream ran yet, the target still
// listens, and the retried copy goes on from the start: the migration succeeds.
TEST_P(MigrationRestartLocalTest, SourceRestartedMidMirrorCopiesAgain) {
  Host& src = hosts_[0];
  Host& dst = hosts_[1];
  src.mig->hang_at(Step::mirror);
  const std::string task = start_migration(1);
  ASSERT_FALSE(task.empty());
  ASSERT_TRUE(pump([&] { return src.mig->wait_hung(Step::mirror, 1ms); }));
  ASSERT_NO_FATAL_FAILURE(restart_agent(src));
  ASSERT_TRUE(pump([&] { return settled(task); })) << task_message(task);
  EXPECT_EQ(store_->get_task(task)->state, "succeeded") << task_message(task);
  ASSERT_NO_FATAL_FAILURE(expect_only_on(task, dst));
}

INSTANTIATE_TEST_SUITE_P(MigrationRestart, MigrationRestartTest, kStorageAndTls, storage_name);
INSTANTIATE_TEST_SUITE_P(MigrationRestart, MigrationRestartLocalTest, kLocalAndTls, storage_name);

// Cancel (VmService::cancel_migration, the REST and CLI path) at each phase: the migration
// hangs in the phase, is cancelled, then let go. Up to the switch-over decision the VM
// stays on its source, running, the target is given up and the task fails "cancelled by
// <actor>" (tasks have no cancelled state: failed with the reason); once the target may
// resume (finish) the cancel is refused and the migration completes; after it ended, the
// cancel is refused as "not migrating".
std::vector<Case> cancel_cases() {
  std::vector<Case> out;
  for (Phase p : {Phase::prepare, Phase::mirror, Phase::ram, Phase::switchover, Phase::finish,
                  Phase::confirm})
    for (bool local : {false, true})
      for (bool tls : {true, false}) {
        if (p == Phase::mirror && !local) continue;
        out.push_back({p, Fault::cancel, local, tls});
      }
  return out;
}

TEST_P(MigrationCancelTest, KeepsTheVmOnTheSourceOrIsRefused) {
  const Case c = GetParam();
  Host& src = hosts_[0];
  Host& dst = hosts_[1];
  const Where where = hang_point(c);
  where.host->mig->hang_at(where.step);
  const std::string task = start_migration(1);
  ASSERT_FALSE(task.empty());
  ASSERT_TRUE(pump([&] { return where.host->mig->wait_hung(where.step, 1ms); }))
      << "the migration never reached the phase";
  auto cancel = vms_->cancel_migration("vm1", "user:alice");
  const bool refused = c.phase == Phase::finish || c.phase == Phase::confirm;
  if (refused) {
    ASSERT_FALSE(cancel) << "a cancel after the switch-over decision was accepted";
    EXPECT_EQ(cancel.error().code, ErrorCode::failed_precondition);
    EXPECT_NE(cancel.error().message.find(c.phase == Phase::finish ? "too late to cancel"
                                                                   : "not migrating"),
              std::string::npos)
        << cancel.error().message;
    EXPECT_EQ(events_named("vm.migrate_cancel"), 0u);
  } else {
    ASSERT_TRUE(cancel) << cancel.error().to_string();
    EXPECT_EQ(cancel->task.id, task);
    // Asked again: the same answer, recorded once.
    auto again = vms_->cancel_migration("vm1", "user:bob");
    ASSERT_TRUE(again) << again.error().to_string();
    EXPECT_EQ(events_named("vm.migrate_cancel"), 1u);
  }
  where.host->mig->release();
  ASSERT_TRUE(pump([&] { return settled(task); })) << task_message(task);
  auto t = store_->get_task(task);
  ASSERT_TRUE(t);
  if (refused) {
    EXPECT_EQ(t->state, "succeeded") << t->message;
    ASSERT_NO_FATAL_FAILURE(expect_only_on(task, dst));
  } else {
    EXPECT_EQ(t->state, "failed");
    EXPECT_EQ(t->message, "cancelled by user:alice; the VM runs on its host");
    ASSERT_NO_FATAL_FAILURE(expect_only_on(task, src));
  }
  ASSERT_NO_FATAL_FAILURE(expect_next_migration_succeeds());
}

// A migration waits for its target (its agent down) and is cancelled: it ends at once on
// its source, without waiting for the target to come back; nothing was asked of it.
TEST_P(MigrationCancelWaitingTest, CancelledWhileItWaitsForTheTarget) {
  Host& src = hosts_[0];
  Host& dst = hosts_[1];
  kill_agent(dst);
  ASSERT_TRUE(pump([&] { return agents_->liveness(dst.id) != Liveness::up; }));
  const std::string task = start_migration(1);
  ASSERT_FALSE(task.empty());
  ASSERT_TRUE(pump([&] {
    auto t = store_->get_task(task);
    return t && t->message.find("waiting for both hosts") != std::string::npos;
  })) << task_message(task);
  auto cancel = vms_->cancel_migration("vm1", "user:alice");
  ASSERT_TRUE(cancel) << cancel.error().to_string();
  ASSERT_TRUE(pump([&] { return task_ended(task); })) << task_message(task);
  auto t = store_->get_task(task);
  EXPECT_EQ(t->state, "failed");
  EXPECT_EQ(t->message, "cancelled by user:alice; the VM runs on its host");
  EXPECT_EQ(*store_->get_vm(vm_id_)->host_id, src.id);
  EXPECT_TRUE(runs(src));
  ASSERT_NO_FATAL_FAILURE(start_agent(dst));
  ASSERT_TRUE(pump([&] { return agents_->liveness(dst.id) == Liveness::up; }));
  ASSERT_NO_FATAL_FAILURE(expect_only_on(task, src));
  ASSERT_NO_FATAL_FAILURE(expect_next_migration_succeeds());
}

INSTANTIATE_TEST_SUITE_P(MigrationCancel, MigrationCancelTest, ::testing::ValuesIn(cancel_cases()),
                         case_name);
INSTANTIATE_TEST_SUITE_P(MigrationCancel, MigrationCancelWaitingTest, kStorageAndTls, storage_name);

}  // namespace
}  // namespace strata::manager
