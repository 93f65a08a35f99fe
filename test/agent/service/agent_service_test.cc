// AgentService over a real gRPC server on a UNIX socket, with an in-memory driver: input
// validation before the driver, error mapping, natural idempotency, request-id
// deduplication (also across a service restart), and the two streams.
#include "strata/agent/service/agent_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>

#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "memory_hypervisor.h"
#include "served_agent.h"
#include "strata/agent/service/agent_client.h"

namespace strata::agent::service {
namespace {

namespace fs = std::filesystem;
using Stub = v1::AgentService::Stub;

class AgentServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-svc-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    start_server();
  }
  void TearDown() override {
    stop_server();
    fs::remove_all(dir_);
  }

  void start_server() {
    AgentServiceOptions opts;
    opts.state_dir = (dir_ / "state").string();
    opts.request_log_capacity = request_log_capacity_;
    opts.api_level = api_level_;
    opts.agent_version = "test";
    opts.hostname = "host-a";
    opts.accelerator = "tcg";
    opts.inventory = [] {
      v1::HostInventory inv;
      inv.set_hostname("host-a");
      inv.set_accelerator("tcg");
      inv.set_cpu_threads(2);
      inv.set_inventory_json(R"({"cpu":{"threads":2}})");
      return Result<v1::HostInventory>(inv);
    };
    auto served = testing::ServedAgent::start(hv_, opts, (dir_ / "agent.sock").string());
    ASSERT_TRUE(served) << served.error().to_string();
    agent_ = std::move(*served);
    client_ = std::make_unique<AgentClient>(agent_->address(), std::chrono::seconds(10));
  }
  void stop_server() {
    agent_.reset();
    client_.reset();
  }

  v1::DefineVmRequest define_req(const std::string& id, const std::string& name) {
    v1::DefineVmRequest r;
    r.set_request_id(id);
    r.mutable_spec()->set_name(name);
    r.mutable_spec()->mutable_kernel_boot()->set_kernel("vmlinuz");
    return r;
  }
  template <typename Req>
  Req named(const std::string& id, const std::string& name) {
    Req r;
    r.set_request_id(id);
    r.set_name(name);
    return r;
  }

  testing::MemoryHypervisor hv_;
  fs::path dir_;
  size_t request_log_capacity_ = 4096;
  uint32_t api_level_ = wire::kApiLevel;
  std::unique_ptr<testing::ServedAgent> agent_;
  std::unique_ptr<AgentClient> client_;
};

TEST_F(AgentServiceTest, DefineReturnsCompletedStatus) {
  auto r = client_->call(&Stub::DefineVm, define_req("r1", "web-1"));
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->vm().spec().name(), "web-1");
  EXPECT_EQ(r->vm().spec().uuid().size(), 36u);  // completed by the driver
  EXPECT_EQ(r->vm().state(), v1::VM_STATE_DEFINED);
}

// A driver without live migration answers every migration RPC, and the server stream,
// with an error instead of acting (the in-memory driver has none).
TEST_F(AgentServiceTest, MigrationRpcsOnADriverWithoutMigrationAreRefused) {
  ASSERT_TRUE(client_->call(&Stub::DefineVm, define_req("r1", "web-1")));
  v1::BeginMigrationRequest begin;
  begin.set_name("web-1");
  auto b = client_->call(&Stub::BeginMigration, begin);
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message.find("cannot migrate"), std::string::npos) << b.error().to_string();
  auto f = client_->call(&Stub::FinishMigration,
                         named<v1::FinishMigrationRequest>("f1", "web-1"));
  EXPECT_FALSE(f);
  auto c = client_->call(&Stub::ConfirmMigration,
                         named<v1::ConfirmMigrationRequest>("c1", "web-1"));
  EXPECT_FALSE(c);
  // The VM is untouched.
  v1::GetVmRequest get;
  get.set_name("web-1");
  auto vm = client_->call(&Stub::GetVm, get);
  ASSERT_TRUE(vm);
  EXPECT_EQ(vm->vm().state(), v1::VM_STATE_DEFINED);
}

// A manager killed (or timed out) while the agent defines a VM never learns that the VM
// exists; a restarted manager may already have deleted the record after finding no VM. The
// define is undone, and the request id is not remembered, so a live caller's retry defines.
TEST_F(AgentServiceTest, DefineWhoseCallerWentAwayIsUndone) {
  std::promise<void> caller_gone;
  std::shared_future<void> gone = caller_gone.get_future().share();
  hv_.define_gate = [gone] { gone.wait(); };
  std::thread release([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    v1::DefineVmResponse resp;
    auto st = client_->stub().DefineVm(&ctx, define_req("r1", "web-1"), &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    // The server's copy of the call ends at the same deadline; give its transport a moment
    // to mark it cancelled (the check runs after the driver returns).
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    caller_gone.set_value();
  });
  release.join();
  hv_.define_gate = nullptr;
  // The driver defines the VM, then the service undoes it (the handler runs on after the
  // caller left: wait for the undo, at most 10 s).
  for (int i = 0; i < 500 && hv_.count("undefine") == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(hv_.count("define"), 1);
  ASSERT_EQ(hv_.count("undefine"), 1);
  v1::GetVmRequest get_req;
  get_req.set_name("web-1");
  auto get = client_->call(&Stub::GetVm, get_req);
  ASSERT_FALSE(get);
  EXPECT_EQ(get.error().code, ErrorCode::not_found);
  // The same request id again is a new attempt (the outcome was not remembered).
  auto again = client_->call(&Stub::DefineVm, define_req("r1", "web-1"));
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(hv_.count("define"), 2);
}

TEST_F(AgentServiceTest, InvalidSpecIsRejectedWithFieldBeforeTheDriver) {
  auto req = define_req("r1", "Bad_Name");
  auto r = client_->call(&Stub::DefineVm, req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(r.error().field, "spec.name");
  EXPECT_EQ(hv_.calls["define"], 0);

  req = define_req("r2", "ok");
  req.mutable_spec()->set_vcpus(100000);
  r = client_->call(&Stub::DefineVm, req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "spec.vcpus");
  EXPECT_EQ(hv_.calls["define"], 0);

  // The raw gRPC status carries the field in its message too (for clients without details).
  grpc::ClientContext ctx;
  v1::DefineVmResponse resp;
  auto st = client_->stub().DefineVm(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message().rfind("spec.vcpus", 0), 0u) << st.error_message();
}

TEST_F(AgentServiceTest, MissingOrBadRequestIdIsInvalid) {
  auto r = client_->call(&Stub::StartVm, named<v1::StartVmRequest>("", "x"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "request_id");
  r = client_->call(&Stub::StartVm, named<v1::StartVmRequest>("a b", "x"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "request_id");
}

TEST_F(AgentServiceTest, RepeatedDefineReturnsTheOriginalWithoutActingTwice) {
  auto first = client_->call(&Stub::DefineVm, define_req("r1", "web-1"));
  ASSERT_TRUE(first);
  auto again = client_->call(&Stub::DefineVm, define_req("r1", "web-1"));
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(again->SerializeAsString(), first->SerializeAsString());
  EXPECT_EQ(hv_.calls["define"], 1);
  // A new request id for the same name is a new request: the name is taken.
  auto other = client_->call(&Stub::DefineVm, define_req("r2", "web-1"));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, ErrorCode::already_exists);
}

TEST_F(AgentServiceTest, ReusingARequestIdForDifferentContentIsRejected) {
  ASSERT_TRUE(client_->call(&Stub::DefineVm, define_req("r1", "web-1")));
  auto r = client_->call(&Stub::DefineVm, define_req("r1", "web-2"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(r.error().field, "request_id");
  auto s = client_->call(&Stub::StartVm, named<v1::StartVmRequest>("r1", "web-1"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().field, "request_id");
}

TEST_F(AgentServiceTest, LifecycleIsNaturallyIdempotent) {
  ASSERT_TRUE(client_->call(&Stub::DefineVm, define_req("d", "vm")));
  auto s1 = client_->call(&Stub::StartVm, named<v1::StartVmRequest>("s1", "vm"));
  ASSERT_TRUE(s1);
  EXPECT_EQ(s1->vm().state(), v1::VM_STATE_RUNNING);
  EXPECT_EQ(s1->vm().pid(), 4242);
  // Start on running: OK, driver not called again.
  auto s2 = client_->call(&Stub::StartVm, named<v1::StartVmRequest>("s2", "vm"));
  ASSERT_TRUE(s2);
  EXPECT_EQ(hv_.calls["start"], 1);

  ASSERT_TRUE(client_->call(&Stub::PauseVm, named<v1::PauseVmRequest>("p1", "vm")));
  ASSERT_TRUE(client_->call(&Stub::PauseVm, named<v1::PauseVmRequest>("p2", "vm")));
  EXPECT_EQ(hv_.calls["pause"], 1);
  ASSERT_TRUE(client_->call(&Stub::ResumeVm, named<v1::ResumeVmRequest>("u1", "vm")));
  ASSERT_TRUE(client_->call(&Stub::ResumeVm, named<v1::ResumeVmRequest>("u2", "vm")));
  EXPECT_EQ(hv_.calls["resume"], 1);

  auto sd = named<v1::ShutdownVmRequest>("sd1", "vm");
  sd.set_timeout_ms(1000);
  auto off = client_->call(&Stub::ShutdownVm, sd);
  ASSERT_TRUE(off);
  EXPECT_EQ(off->vm().state(), v1::VM_STATE_STOPPED);
  sd.set_request_id("sd2");
  ASSERT_TRUE(client_->call(&Stub::ShutdownVm, sd));
  ASSERT_TRUE(client_->call(&Stub::ForceOffVm, named<v1::ForceOffVmRequest>("f1", "vm")));
  EXPECT_EQ(hv_.calls["shutdown"], 1);
  EXPECT_EQ(hv_.calls["force_off"], 0);

  // Pause of a stopped VM is a precondition failure, not a silent OK.
  auto p = client_->call(&Stub::PauseVm, named<v1::PauseVmRequest>("p3", "vm"));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ErrorCode::failed_precondition);
  auto rb = client_->call(&Stub::RebootVm, named<v1::RebootVmRequest>("rb", "vm"));
  ASSERT_FALSE(rb);
  EXPECT_EQ(rb.error().code, ErrorCode::failed_precondition);
}

TEST_F(AgentServiceTest, UndefineMissingIsNotFoundUnlessRepeated) {
  ASSERT_TRUE(client_->call(&Stub::DefineVm, define_req("d", "vm")));
  ASSERT_TRUE(client_->call(&Stub::UndefineVm, named<v1::UndefineVmRequest>("u1", "vm")));
  // The same request again (a retry after a lost reply): OK, the original outcome.
  ASSERT_TRUE(client_->call(&Stub::UndefineVm, named<v1::UndefineVmRequest>("u1", "vm")));
  EXPECT_EQ(hv_.calls["undefine"], 1);
  auto r = client_->call(&Stub::UndefineVm, named<v1::UndefineVmRequest>("u2", "vm"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::not_found);
}

TEST_F(AgentServiceTest, RequestIdsSurviveAServiceRestart) {
  auto first = client_->call(&Stub::DefineVm, define_req("r1", "web-1"));
  ASSERT_TRUE(first);
  ASSERT_TRUE(client_->call(&Stub::UndefineVm, named<v1::UndefineVmRequest>("u1", "web-1")));
  stop_server();
  start_server();  // same state dir, same driver: a restarted agent
  auto again = client_->call(&Stub::DefineVm, define_req("r1", "web-1"));
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(again->SerializeAsString(), first->SerializeAsString());
  EXPECT_EQ(hv_.calls["define"], 1);  // not defined again although the name is free
  ASSERT_TRUE(client_->call(&Stub::UndefineVm, named<v1::UndefineVmRequest>("u1", "web-1")));
  EXPECT_EQ(hv_.calls["undefine"], 1);
}

TEST_F(AgentServiceTest, RememberedErrorsAreReturnedAgainButRetryableOnesAreNot) {
  // not_found is deterministic: remembered.
  auto a = client_->call(&Stub::StartVm, named<v1::StartVmRequest>("x1", "ghost"));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, ErrorCode::not_found);
  ASSERT_TRUE(client_->call(&Stub::DefineVm, define_req("d", "ghost")));
  auto b = client_->call(&Stub::StartVm, named<v1::StartVmRequest>("x1", "ghost"));
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, ErrorCode::not_found);
  EXPECT_EQ(hv_.calls["start"], 0);

  // unavailable is retryable: the same id runs again.
  hv_.fail_next = Error{ErrorCode::unavailable, "qemu busy", {}};
  auto c = client_->call(&Stub::StartVm, named<v1::StartVmRequest>("x2", "ghost"));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::unavailable);
  auto d = client_->call(&Stub::StartVm, named<v1::StartVmRequest>("x2", "ghost"));
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(hv_.calls["start"], 2);
}

TEST_F(AgentServiceTest, ReadsAndInfo) {
  ASSERT_TRUE(client_->call(&Stub::DefineVm, define_req("d1", "b-vm")));
  auto req = define_req("d2", "a-vm");
  (*req.mutable_spec()->mutable_labels())["tier"] = "web";
  ASSERT_TRUE(client_->call(&Stub::DefineVm, req));
  ASSERT_TRUE(client_->call(&Stub::StartVm, named<v1::StartVmRequest>("s", "a-vm")));

  auto list = client_->call(&Stub::ListVms, v1::ListVmsRequest{});
  ASSERT_TRUE(list);
  ASSERT_EQ(list->vms_size(), 2);
  EXPECT_EQ(list->vms(0).spec().name(), "a-vm");  // sorted
  v1::ListVmsRequest sel;
  (*sel.mutable_label_selector())["tier"] = "web";
  list = client_->call(&Stub::ListVms, sel);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->vms_size(), 1);

  v1::GetVmRequest get;
  get.set_name("nope");
  auto g = client_->call(&Stub::GetVm, get);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code, ErrorCode::not_found);
  get.set_name("NOPE!");
  g = client_->call(&Stub::GetVm, get);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code, ErrorCode::invalid_argument);

  auto m = client_->call(&Stub::GetMetrics, v1::GetMetricsRequest{});
  ASSERT_TRUE(m);
  ASSERT_EQ(m->vms_size(), 1);  // only the running one
  EXPECT_EQ(m->vms(0).name(), "a-vm");
  EXPECT_EQ(m->vms(0).stats().rss_bytes(), 4096u);

  auto inv = client_->call(&Stub::GetInventory, v1::GetInventoryRequest{});
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->inventory().cpu_threads(), 2u);

  auto h = client_->call(&Stub::Health, v1::HealthRequest{});
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->serving());
  EXPECT_EQ(h->vm_count(), 2u);
  EXPECT_EQ(h->accelerator(), "tcg");

  auto img = client_->call(&Stub::ListImages, v1::ListImagesRequest{});
  ASSERT_FALSE(img);  // no image store configured in this test
  EXPECT_EQ(img.error().code, ErrorCode::unavailable);
}

// The agent API level (strata/wire/api_level.h): Health says it. Served at level 1 (as an
// agent one version behind, `serve --api-level 1`), the agent behaves as one from before
// levels: no level in Health, no SwitchoverMigration (post-copy's RPC).
TEST_F(AgentServiceTest, HealthSaysTheApiLevelAndAnOlderLevelBehavesAsThatAgent) {
  auto h = client_->call(&Stub::Health, v1::HealthRequest{});
  ASSERT_TRUE(h);
  EXPECT_EQ(h->api_level(), wire::kApiLevel);
  v1::SwitchoverMigrationRequest sw;
  sw.set_request_id("sw-1");
  sw.set_name("a-vm");
  auto current = client_->call(&Stub::SwitchoverMigration, sw);
  ASSERT_FALSE(current);  // the method exists; this fake hypervisor does not migrate
  EXPECT_NE(current.error().message.find("cannot migrate"), std::string::npos)
      << current.error().to_string();

  stop_server();
  api_level_ = 1;
  start_server();
  h = client_->call(&Stub::Health, v1::HealthRequest{});
  ASSERT_TRUE(h);
  EXPECT_EQ(h->api_level(), 0u) << "level 1 predates the field";
  sw.set_request_id("sw-2");
  auto older = client_->call(&Stub::SwitchoverMigration, sw);
  ASSERT_FALSE(older);
  EXPECT_EQ(older.error().code, ErrorCode::internal) << "UNIMPLEMENTED, as from an older agent";
  EXPECT_NE(older.error().message.find("unknown method SwitchoverMigration"), std::string::npos)
      << older.error().to_string();
}

TEST_F(AgentServiceTest, ConsoleWriteTailAndStream) {
  ASSERT_TRUE(client_->call(&Stub::DefineVm, define_req("d", "vm")));
  auto w = named<v1::WriteConsoleRequest>("w1", "vm");
  w.set_data("hello\n");
  ASSERT_TRUE(client_->call(&Stub::WriteConsole, w));
  ASSERT_TRUE(client_->call(&Stub::WriteConsole, w));  // repeat: not written twice
  EXPECT_EQ(hv_.calls["console_write"], 1);

  v1::ConsoleTailRequest t;
  t.set_name("vm");
  auto tail = client_->call(&Stub::ConsoleTail, t);
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail->data(), "hello\n");

  grpc::ClientContext ctx;
  v1::StreamConsoleRequest sreq;
  sreq.set_name("vm");
  sreq.set_tail_bytes(100);
  auto reader = client_->stub().StreamConsole(&ctx, sreq);
  v1::ConsoleChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk));
  EXPECT_EQ(chunk.data(), "hello\n");
  w.set_request_id("w2");
  w.set_data("live");
  ASSERT_TRUE(client_->call(&Stub::WriteConsole, w));
  ASSERT_TRUE(reader->Read(&chunk));
  EXPECT_EQ(chunk.data(), "live");
  ctx.TryCancel();
  while (reader->Read(&chunk)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);

  w.set_request_id("w3");
  w.set_data(std::string(70000, 'x'));
  auto big = client_->call(&Stub::WriteConsole, w);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, ErrorCode::payload_too_large);
}

// A stand-in for QEMU's VNC listener: accepts one client, greets it, echoes what it reads
// prefixed with "echo:", and closes after `rounds` reads.
class FakeVncServer {
 public:
  explicit FakeVncServer(const std::string& path, int rounds = 1) : path_(path) {
    ::unlink(path.c_str());
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    thread_ = std::thread([this, rounds] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      (void)!::write(c, "RFB 003.008\n", 12);
      char buf[256];
      for (int i = 0; i < rounds; ++i) {
        ssize_t n = ::read(c, buf, sizeof(buf));
        if (n <= 0) break;
        std::string reply = "echo:" + std::string(buf, static_cast<size_t>(n));
        (void)!::write(c, reply.data(), reply.size());
      }
      ::close(c);
    });
  }
  ~FakeVncServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    ::unlink(path_.c_str());
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::thread thread_;
};

TEST_F(AgentServiceTest, DisplayRelaysTheVncSocketBothWays) {
  ASSERT_TRUE(client_->call(&Stub::DefineVm, define_req("d", "vm")));
  hv_.vnc_socket = (dir_ / "vnc.sock").string();
  auto refused = [&](const std::string& name) {
    grpc::ClientContext ctx;
    auto rw = client_->stub().StreamDisplay(&ctx);
    v1::DisplayChunk first;
    first.set_name(name);
    rw->Write(first);
    v1::DisplayChunk chunk;
    EXPECT_FALSE(rw->Read(&chunk));
    return rw->Finish();
  };
  // Not running yet: refused before any connection.
  auto st = refused("vm");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_NE(st.error_message().find("not running"), std::string::npos) << st.error_message();
  EXPECT_EQ(refused("nope").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(refused("Bad Name").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(client_->call(&Stub::StartVm, named<v1::StartVmRequest>("s", "vm")));
  // Running, but nobody listens on the socket: unavailable.
  EXPECT_EQ(refused("vm").error_code(), grpc::StatusCode::UNAVAILABLE);

  // Two sessions one after the other, each its own connection to the display.
  for (int session = 0; session < 2; ++session) {
    FakeVncServer server(hv_.vnc_socket);
    grpc::ClientContext ctx;
    auto rw = client_->stub().StreamDisplay(&ctx);
    v1::DisplayChunk first;
    first.set_name("vm");
    ASSERT_TRUE(rw->Write(first));
    v1::DisplayChunk chunk;
    ASSERT_TRUE(rw->Read(&chunk));
    EXPECT_EQ(chunk.data(), "RFB 003.008\n");
    v1::DisplayChunk in;
    in.set_data("RFB 003.008\n");
    ASSERT_TRUE(rw->Write(in));
    std::string got;
    while (got.size() < 17 && rw->Read(&chunk)) got += chunk.data();
    EXPECT_EQ(got, "echo:RFB 003.008\n");
    // The display closes its end: the stream ends.
    while (rw->Read(&chunk)) {
    }
    auto end = rw->Finish();
    EXPECT_TRUE(end.ok() || end.error_code() == grpc::StatusCode::CANCELLED) << end.error_message();
  }

  // A caller that goes away ends the display connection (the server's read sees EOF).
  {
    FakeVncServer server(hv_.vnc_socket, 100);
    grpc::ClientContext ctx;
    auto rw = client_->stub().StreamDisplay(&ctx);
    v1::DisplayChunk first;
    first.set_name("vm");
    ASSERT_TRUE(rw->Write(first));
    v1::DisplayChunk chunk;
    ASSERT_TRUE(rw->Read(&chunk));
    ASSERT_TRUE(rw->WritesDone());
    while (rw->Read(&chunk)) {
    }
    auto end = rw->Finish();
    EXPECT_TRUE(end.ok() || end.error_code() == grpc::StatusCode::CANCELLED) << end.error_message();
  }  // ~FakeVncServer joins its thread: it saw the connection close

  // A VM without a display (spec vnc false).
  auto req = define_req("d2", "novnc");
  req.mutable_spec()->set_vnc(false);
  ASSERT_TRUE(client_->call(&Stub::DefineVm, req));
  ASSERT_TRUE(client_->call(&Stub::StartVm, named<v1::StartVmRequest>("s2", "novnc")));
  st = refused("novnc");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("no VNC display"), std::string::npos) << st.error_message();
}

// Keystrokes used to take a slot (and an fdatasync) in the persisted request log each, so a
// typing user pushed lifecycle request ids out and a retried DefineVm acted twice.
TEST_F(AgentServiceTest, ConsoleInputNeitherEvictsLifecycleIdsNorReachesTheLogFile) {
  stop_server();
  request_log_capacity_ = 8;
  start_server();
  auto first = client_->call(&Stub::DefineVm, define_req("r1", "vm"));
  ASSERT_TRUE(first) << first.error().to_string();
  for (int i = 0; i < 50; ++i) {
    auto w = named<v1::WriteConsoleRequest>("vm:console:" + std::to_string(i), "vm");
    w.set_data("k");
    ASSERT_TRUE(client_->call(&Stub::WriteConsole, w));
  }
  EXPECT_EQ(hv_.calls["console_write"], 50);
  auto again = client_->call(&Stub::DefineVm, define_req("r1", "vm"));
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(hv_.calls["define"], 1) << "the lifecycle id was evicted by console input";
  // A retried keystroke is still written once.
  auto w = named<v1::WriteConsoleRequest>("vm:console:49", "vm");
  w.set_data("k");
  ASSERT_TRUE(client_->call(&Stub::WriteConsole, w));
  EXPECT_EQ(hv_.calls["console_write"], 50);
  std::ifstream in(dir_ / "state" / "request-ids.jsonl");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("WriteConsole"), std::string::npos) << text;
  EXPECT_NE(text.find("DefineVm"), std::string::npos) << text;
}

TEST_F(AgentServiceTest, WatchEventsSendsCurrentThenTransitions) {
  ASSERT_TRUE(client_->call(&Stub::DefineVm, define_req("d", "vm")));
  ASSERT_TRUE(client_->call(&Stub::DefineVm, define_req("d2", "other")));
  grpc::ClientContext ctx;
  v1::WatchEventsRequest req;
  req.set_vm("vm");
  req.set_include_current(true);
  auto reader = client_->stub().WatchEvents(&ctx, req);
  v1::VmEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.vm(), "vm");
  EXPECT_EQ(ev.detail(), "current");
  EXPECT_EQ(ev.state(), v1::VM_STATE_DEFINED);
  // A transition of another VM is filtered out; ours arrives.
  ASSERT_TRUE(client_->call(&Stub::StartVm, named<v1::StartVmRequest>("s0", "other")));
  ASSERT_TRUE(client_->call(&Stub::StartVm, named<v1::StartVmRequest>("s1", "vm")));
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.vm(), "vm");
  EXPECT_EQ(ev.state(), v1::VM_STATE_RUNNING);
  // Agent shutdown ends the stream with UNAVAILABLE so clients reconnect.
  agent_->service().shutdown();
  while (reader->Read(&ev)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AgentServiceTest, GuestAgentCommandValidatesJson) {
  ASSERT_TRUE(client_->call(&Stub::DefineVm, define_req("d", "vm")));
  auto g = named<v1::GuestAgentCommandRequest>("g1", "vm");
  g.set_command_json("not json");
  auto r = client_->call(&Stub::GuestAgentCommand, g);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "command_json");
  g.set_request_id("g2");
  g.set_command_json(R"({"execute":"guest-ping"})");
  r = client_->call(&Stub::GuestAgentCommand, g);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reply_json(), R"({"return":{}})");
}

// CloneVm streams the driver's progress and ends with the clone; a retry of a clone that
// finished answers with the VM without cloning again; bad input names its field.
TEST_F(AgentServiceTest, CloneVmStreamsProgressAndRecognisesARetry) {
  ASSERT_TRUE(client_->call(&Stub::DefineVm, define_req("d1", "tpl")));
  auto clone = [&](const std::string& id, const std::string& name, const std::string& uuid,
                   std::vector<v1::CloneProgress>* seen) -> grpc::Status {
    v1::CloneVmRequest req;
    req.set_request_id(id);
    req.set_source("tpl");
    req.set_linked(true);
    req.mutable_spec()->set_name(name);
    req.mutable_spec()->set_uuid(uuid);
    req.mutable_spec()->mutable_kernel_boot()->set_kernel("vmlinuz");
    grpc::ClientContext ctx;
    auto reader = client_->stub().CloneVm(&ctx, req);
    v1::CloneProgress p;
    while (reader->Read(&p)) seen->push_back(p);
    return reader->Finish();
  };
  const std::string uuid = "0b7c6a3e-1a2b-4c3d-8e9f-0a1b2c3d4e5f";
  std::vector<v1::CloneProgress> seen;
  auto st = clone("c1", "web-1", uuid, &seen);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(seen.size(), 4u);  // the driver's three steps, then the clone
  EXPECT_EQ(seen[1].done(), 1u);
  EXPECT_EQ(seen[1].total(), 2u);
  EXPECT_FALSE(seen[2].has_vm());
  ASSERT_TRUE(seen.back().has_vm());
  EXPECT_EQ(seen.back().vm().spec().name(), "web-1");
  EXPECT_EQ(seen.back().vm().spec().uuid(), uuid);
  EXPECT_EQ(hv_.count("clone_linked"), 1);

  seen.clear();
  st = clone("c1", "web-1", uuid, &seen);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(seen[0].has_vm());
  EXPECT_EQ(hv_.count("clone_linked"), 1);  // not cloned twice

  // The name taken by another VM (another uuid), a bad name, a missing uuid.
  seen.clear();
  EXPECT_EQ(clone("c2", "web-1", "1b7c6a3e-1a2b-4c3d-8e9f-0a1b2c3d4e5f", &seen).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  st = clone("c3", "Web_1", uuid, &seen);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("spec.name"), std::string::npos) << st.error_message();
  st = clone("c4", "web-2", "", &seen);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("uuid"), std::string::npos) << st.error_message();
}

TEST_F(AgentServiceTest, SnapshotRpcsMapToTheDriverOncePerRequestId) {
  ASSERT_TRUE(client_->call(&Stub::DefineVm, define_req("d1", "web-1")));
  v1::CreateSnapshotRequest c;
  c.set_request_id("s1");
  c.set_vm("web-1");
  c.set_name("before");
  auto r = client_->call(&Stub::CreateSnapshot, c);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->snapshot().name(), "before");
  EXPECT_EQ(r->snapshot().consistency(), "crash");
  EXPECT_TRUE(r->snapshot().current());
  // A retry with the same request id answers the first outcome without acting again.
  auto again = client_->call(&Stub::CreateSnapshot, c);
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(hv_.count("snapshot_create"), 1);
  c.set_request_id("s2");
  c.set_name("Bad_Name");
  auto bad = client_->call(&Stub::CreateSnapshot, c);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(bad.error().field, "name");
  c.set_request_id("s3");
  c.set_name("after");
  ASSERT_TRUE(client_->call(&Stub::CreateSnapshot, c));

  v1::ListSnapshotsRequest l;
  l.set_vm("web-1");
  auto list = client_->call(&Stub::ListSnapshots, l);
  ASSERT_TRUE(list) << list.error().to_string();
  ASSERT_EQ(list->snapshots_size(), 2);
  EXPECT_EQ(list->snapshots(1).parent(), "before");

  auto rv = named<v1::RevertSnapshotRequest>("r1", "before");
  rv.set_vm("web-1");
  ASSERT_TRUE(client_->call(&Stub::RevertSnapshot, rv));
  auto del = named<v1::DeleteSnapshotRequest>("x1", "before");
  del.set_vm("web-1");
  ASSERT_TRUE(client_->call(&Stub::DeleteSnapshot, del));
  ASSERT_TRUE(client_->call(&Stub::DeleteSnapshot, del));  // the repeat: same outcome
  EXPECT_EQ(hv_.count("snapshot_delete"), 1);
  del.set_request_id("x2");
  auto gone = client_->call(&Stub::DeleteSnapshot, del);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::not_found);
  l.set_vm("nope");
  EXPECT_EQ(client_->call(&Stub::ListSnapshots, l).error().code, ErrorCode::not_found);
}

// The heartbeat's HA lease grant: checked whole before the driver sees it; a plain
// heartbeat changes no lease; a good grant answers with the leases in force.
TEST_F(AgentServiceTest, HealthGrantsHaLeasesAfterCheckingThem) {
  ASSERT_TRUE(client_->call(&Stub::DefineVm, define_req("r1", "web-1")));
  auto plain = client_->call(&Stub::Health, v1::HealthRequest{});
  ASSERT_TRUE(plain) << plain.error().to_string();
  EXPECT_EQ(hv_.count("renew_ha_leases"), 0);
  for (int64_t bad : {int64_t{-1}, int64_t{3600 * 1000 + 1}}) {
    v1::HealthRequest r;
    r.set_ha_lease_ms(bad);
    auto h = client_->call(&Stub::Health, r);
    ASSERT_FALSE(h);
    EXPECT_EQ(h.error().code, ErrorCode::invalid_argument);
  }
  v1::HealthRequest bad_name;
  bad_name.set_ha_lease_ms(60000);
  bad_name.add_ha_vms("web-1");
  bad_name.add_ha_vms("../etc");
  auto refused = client_->call(&Stub::Health, bad_name);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(hv_.count("renew_ha_leases"), 0) << "a bad grant reached the driver";
  v1::HealthRequest grant;
  grant.set_ha_lease_ms(60000);
  grant.add_ha_vms("web-1");
  grant.add_ha_vms("gone");
  auto h = client_->call(&Stub::Health, grant);
  ASSERT_TRUE(h) << h.error().to_string();
  ASSERT_EQ(h->leased_vms_size(), 1);
  EXPECT_EQ(h->leased_vms(0), "web-1");
  EXPECT_EQ(hv_.last_lease, std::chrono::milliseconds(60000));
}

}  // namespace
}  // namespace strata::agent::service
