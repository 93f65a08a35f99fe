// The fixture of the VM service's tests that need a host: an in-memory SQLite store, the
// scheduler's placement, and a real AgentService (over a MemoryHypervisor) served on a UNIX
// socket as host h1, which the service reaches through a real AgentClient. Tests derive
// from it and add their own VMs. Header-only: tests include it directly.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "../../agent/service/memory_hypervisor.h"
#include "../../agent/service/served_agent.h"
#include "strata/manager/vms/vm_service.h"

namespace strata::manager::testing {

class VmServiceOnAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           (std::string("vmsvc-") + info->test_suite_name() + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto s = store::open_store("sqlite::memory:", store::StoreOptions{clock_, 1});
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
    events_ = std::make_unique<EventLog>(*store_);
    auto sched = sched::Scheduler::create({1.0, 1.0, sched::WeightStrategy::pack});
    ASSERT_TRUE(sched);
    placement_ = std::make_unique<PlacementService>(*store_, std::move(*sched));
    agent::service::AgentServiceOptions opts;
    opts.state_dir = (dir_ / "state").string();
    opts.agent_version = "test";
    opts.hostname = "h1";
    opts.accelerator = "tcg";
    auto served = agent::testing::ServedAgent::start(hv_, opts, (dir_ / "agent.sock").string());
    ASSERT_TRUE(served) << served.error().to_string();
    agent_ = std::move(*served);
    store::HostRecord h;
    h.name = "h1";
    h.address = agent_->address();
    h.state = "up";
    h.accelerator = "tcg";
    h.cpu_threads = 4;
    h.memory_mib = 4096;
    ASSERT_TRUE(store_->create_host(h));
    ASSERT_TRUE(placement_->load());
    service_ = std::make_unique<VmService>(*store_, *placement_, *events_, clock_);
    auto client = std::make_shared<AgentClient>(agent_->address());
    service_->set_agents([client](const std::string&) { return client; });
  }
  void TearDown() override {
    service_.reset();  // joins the workers before the agent goes
    agent_.reset();
    std::filesystem::remove_all(dir_);
  }

  // The task once it has ended (or as it is after 5 s).
  store::TaskRecord wait_task(const std::string& id) {
    store::TaskRecord t;
    for (int i = 0; i < 500; ++i) {
      auto r = store_->get_task(id);
      if (r) t = *r;
      if (t.state == "succeeded" || t.state == "failed") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return t;
  }
  // How many audit events of `action` the store holds.
  size_t audit(const std::string& action) {
    size_t n = 0;
    if (auto all = store_->list_events(0, 0))
      for (auto& e : *all) n += e.action == action;
    return n;
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::filesystem::path dir_;
  agent::testing::MemoryHypervisor hv_;
  std::unique_ptr<agent::testing::ServedAgent> agent_;
  store::StorePtr store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<PlacementService> placement_;
  std::unique_ptr<VmService> service_;
};

}  // namespace strata::manager::testing
