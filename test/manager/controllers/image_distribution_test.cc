// ImageDistributor against a real AgentService (in-memory hypervisor, real image store
// with qemu-img) on a UNIX socket: catalog images a spec names are pushed once, names the
// catalog does not know are left to the host, and a different image under the same name
// on the host is an error (already_exists), never overwritten.
#include "strata/manager/controllers/image_distribution.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "../../agent/service/memory_hypervisor.h"
#include "../../agent/service/served_agent.h"
#include "strata/agent/image_store.h"
#include "strata/agent/service/agent_service.h"
#include "strata/common/process.h"
#include "strata/common/sha256.h"
#include "strata/manager/agents/connection_manager.h"
#include "strata/manager/controllers/vm_document.h"
#include "strata/manager/events/event_log.h"

namespace strata::manager {
namespace {

namespace fs = std::filesystem;

class ImageDistributionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-dist-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "catalog");
    auto images = agent::make_image_store((dir_ / "host").string());
    ASSERT_TRUE(images) << images.error().to_string();
    host_images_ = std::move(*images);
    agent::service::AgentServiceOptions opts;
    opts.state_dir = (dir_ / "state").string();
    opts.images = host_images_.get();
    auto served = agent::testing::ServedAgent::start(hv_, opts, (dir_ / "agent.sock").string());
    ASSERT_TRUE(served) << served.error().to_string();
    agent_ = std::move(*served);
    client_ = std::make_unique<AgentClient>(agent_->address());
    auto s = store::open_store("sqlite::memory:");
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
    dist_ = std::make_unique<ImageDistributor>(*store_, (dir_ / "catalog").string());
  }
  void TearDown() override {
    client_.reset();
    agent_.reset();
    fs::remove_all(dir_);
  }
  // A catalog entry with its bytes in the catalog folder.
  void add_catalog(const std::string& name, const std::string& kind, const std::string& data) {
    store::ImageRecord rec;
    rec.name = name;
    rec.kind = kind;
    rec.format = "raw";
    rec.size_bytes = static_cast<int64_t>(data.size());
    rec.virtual_size = rec.size_bytes;
    Sha256 h;
    h.update(data);
    rec.sha256 = h.hex_final();
    auto created = store_->create_image(rec);
    ASSERT_TRUE(created) << created.error().to_string();
    std::ofstream(catalog_file(dist_->catalog_dir(), created->id), std::ios::binary) << data;
  }
  model::VmSpec spec() {
    model::VmSpec s;
    s.name = "vm1";
    s.kernel_boot = model::KernelBoot{"vmlinuz", "initrd", ""};
    model::DiskSpec d;
    d.name = "root";
    d.base_image = "local-only";
    s.disks.push_back(d);
    return s;
  }

  agent::testing::MemoryHypervisor hv_;
  fs::path dir_;
  agent::ImageStorePtr host_images_;
  std::unique_ptr<agent::testing::ServedAgent> agent_;
  std::unique_ptr<AgentClient> client_;
  store::StorePtr store_;
  std::unique_ptr<ImageDistributor> dist_;
};

TEST_F(ImageDistributionTest, PushesMissingCatalogImagesOnceAndSkipsUnknownNames) {
  EXPECT_EQ(referenced_images(spec()),
            (std::vector<std::string>{"vmlinuz", "initrd", "local-only"}));
  add_catalog("vmlinuz", "kernel", std::string(3 << 20, 'k'));
  add_catalog("initrd", "initrd", "initrd bytes");
  std::vector<std::string> progress;
  auto st =
      dist_->ensure("h1", *client_, spec(), [&](const std::string& m) { progress.push_back(m); });
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_TRUE(fs::exists(dir_ / "host" / "images" / "vmlinuz"));
  EXPECT_TRUE(fs::exists(dir_ / "host" / "images" / "initrd"));
  EXPECT_FALSE(fs::exists(dir_ / "host" / "images" / "local-only"));  // not a catalog image
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.front(), "copying image vmlinuz to host: 0%");
  EXPECT_EQ(std::count(progress.begin(), progress.end(), "copying image vmlinuz to host: 100%"), 1);

  // Everything present now: nothing is sent again.
  progress.clear();
  ASSERT_TRUE(
      dist_->ensure("h1", *client_, spec(), [&](const std::string& m) { progress.push_back(m); }));
  EXPECT_TRUE(progress.empty());
}

TEST_F(ImageDistributionTest, DifferentImageUnderTheSameNameOnTheHostIsAnError) {
  auto local = dir_ / "other-kernel";
  std::ofstream(local, std::ios::binary) << "not the catalog's kernel";
  ASSERT_TRUE(host_images_->import_image("vmlinuz2", local.string()));
  add_catalog("vmlinuz2", "kernel", "the catalog's kernel");
  // Listed on the host under that name: left alone (the host's own image wins).
  model::VmSpec s;
  s.name = "vm2";
  s.kernel_boot = model::KernelBoot{"vmlinuz2", "", ""};
  ASSERT_TRUE(dist_->ensure("h1", *client_, s, {}));
  // Pushed explicitly, the agent refuses to replace it.
  store::ImageRecord rec = *store_->get_image_by_name("vmlinuz2");
  auto put = client_->put_image("vmlinuz2", "kernel", catalog_file(dist_->catalog_dir(), rec.id),
                                static_cast<uint64_t>(rec.size_bytes), rec.sha256);
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().code, ErrorCode::already_exists);
}

TEST_F(ImageDistributionTest, RepairMakesRecordsAndFilesAgreeAfterACrash) {
  add_catalog("whole", "kernel", "complete upload");
  // A crash between the record and the rename: a record without bytes, nobody uses it.
  store::ImageRecord torn;
  torn.name = "torn";
  torn.kind = "kernel";
  torn.format = "raw";
  torn.size_bytes = torn.virtual_size = 4;
  torn.sha256 = std::string(64, '0');
  ASSERT_TRUE(store_->create_image(torn));
  // The same, but a VM refers to it: kept and reported, not dropped behind the VM's back.
  torn.name = "vmlinuz";
  ASSERT_TRUE(store_->create_image(torn));
  store::VmRecord vm;
  vm.name = "vm1";
  vm.spec = encode(VmDocument{spec(), {}, {}, {}, {}, false, {}});
  ASSERT_TRUE(store_->create_vm(vm));
  // A crash after a delete removed the record but not the file.
  std::ofstream(dir_ / "catalog" / "0000-deleted-image", std::ios::binary) << "old bytes";

  auto r = dist_->repair();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->records_removed, std::vector<std::string>{"torn"});
  EXPECT_EQ(r->files_removed, std::vector<std::string>{"0000-deleted-image"});
  EXPECT_EQ(r->missing_in_use, std::vector<std::string>{"vmlinuz"});
  EXPECT_FALSE(store_->get_image_by_name("torn"));
  EXPECT_TRUE(store_->get_image_by_name("whole"));
  EXPECT_TRUE(store_->get_image_by_name("vmlinuz"));
  // A second pass finds nothing more.
  auto again = dist_->repair();
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->records_removed.empty());
  EXPECT_TRUE(again->files_removed.empty());
}

TEST_F(ImageDistributionTest, DeletedImageLeavesHostsThatAreUpUnlessADiskIsBasedOnIt) {
  add_catalog("vmlinuz", "kernel", "kernel bytes");
  add_catalog("initrd", "initrd", "initrd bytes");
  ASSERT_TRUE(dist_->ensure("h1", *client_, spec(), {}));
  ASSERT_TRUE(fs::exists(dir_ / "host" / "images" / "vmlinuz"));
  // A disk based on a host image: the agent refuses to remove that base.
  auto base = dir_ / "base.qcow2";
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "qcow2", base.string(), "16M"}));
  ASSERT_TRUE(host_images_->import_image("base", base.string()));
  ASSERT_TRUE(host_images_->create_overlay("vm1", "root", "base", 16 << 20));

  store::HostRecord h;
  h.name = "h1";
  h.address = agent_->address();
  h.state = "up";
  auto host = store_->create_host(h);
  ASSERT_TRUE(host);
  store::HostRecord gone = h;
  gone.name = "h2";
  gone.address = "unix:" + (dir_ / "nobody.sock").string();
  ASSERT_TRUE(store_->create_host(gone));
  EventLog events(*store_);
  ConnectionConfig cfg;
  cfg.heartbeat.interval = std::chrono::milliseconds(200);
  cfg.heartbeat.rpc_timeout = std::chrono::milliseconds(300);
  ConnectionManager agents(*store_, events, system_clock(), cfg);
  ASSERT_TRUE(agents.start());
  for (int i = 0; i < 200 && agents.liveness(host->id) != Liveness::up; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(agents.liveness(host->id), Liveness::up);

  // Outcome per host name (the store lists hosts by id, not by name).
  auto by_host = [](const std::vector<HostCopy>& v) {
    std::map<std::string, HostCopy> m;
    for (const auto& c : v) m[c.host] = c;
    return m;
  };
  auto kernel = *store_->get_image_by_name("vmlinuz");
  auto copies = by_host(dist_->remove_host_copies(kernel, agents));
  ASSERT_EQ(copies.size(), 2u);
  EXPECT_EQ(copies["h1"].outcome, "removed");
  EXPECT_EQ(copies["h2"].outcome, "unreachable");
  EXPECT_FALSE(fs::exists(dir_ / "host" / "images" / "vmlinuz"));
  EXPECT_TRUE(fs::exists(dir_ / "host" / "images" / "initrd"));

  store::ImageRecord base_rec = kernel;
  base_rec.id = "base-id";
  base_rec.name = "base";
  auto kept = by_host(dist_->remove_host_copies(base_rec, agents));
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept["h1"].outcome, "kept");
  EXPECT_NE(kept["h1"].message.find("base of disk vm1/root"), std::string::npos)
      << kept["h1"].message;
  EXPECT_TRUE(fs::exists(dir_ / "host" / "images" / "base"));

  // A host that never had a copy is not listed.
  store::ImageRecord never = kernel;
  never.id = "never-id";
  never.name = "never-copied";
  auto none = dist_->remove_host_copies(never, agents);
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0].host, "h2");
  agents.stop();
}

// "Which hosts hold this image" asks every host at once (16 at a time), so N slow hosts
// cost one deadline, not N: the first 16 calls each wait until all 16 are in (a serial
// fan-out would never get the second one in while the first waits), the rest go in a
// second batch, every host is called once, and never more than 16 calls run together.
// The wait has a deadline only so that a serial fan-out fails instead of hanging.
TEST(ForEachHost, CallsHostsInParallelBatchesOfSixteenEachOnce) {
  auto s = store::open_store("sqlite::memory:");
  ASSERT_TRUE(s) << s.error().to_string();
  store::StorePtr store = std::move(*s);
  constexpr int kHosts = 20;
  for (int i = 0; i < kHosts; ++i) {
    store::HostRecord h;
    h.name = "h" + std::to_string(i);
    h.address = "unix:/nonexistent/h" + std::to_string(i);
    h.state = "up";
    h.accelerator = "tcg";
    h.cpu_threads = 4;
    h.memory_mib = 4096;
    ASSERT_TRUE(store->create_host(h));
  }
  EventLog events(*store);
  ConnectionManager agents(*store, events, system_clock(), ConnectionConfig{});  // not started

  std::mutex mu;
  std::condition_variable cv;
  int entered = 0, running = 0, most = 0;
  bool first_batch_met = true;
  std::map<std::string, int> calls;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for_each_host(*store, agents, [&](const store::HostRecord& h, AgentClient* client) {
    std::unique_lock lock(mu);
    EXPECT_EQ(client, nullptr) << h.name;  // no host is up: the call still comes, with null
    ++calls[h.name];
    most = std::max(most, ++running);
    if (++entered <= 16) {
      cv.notify_all();
      if (!cv.wait_until(lock, deadline, [&] { return entered >= 16; })) first_batch_met = false;
    }
    --running;
  });
  EXPECT_TRUE(first_batch_met) << "only " << entered << " calls came in while the first waited";
  EXPECT_EQ(most, 16);
  ASSERT_EQ(calls.size(), size_t(kHosts));
  for (const auto& [name, n] : calls) EXPECT_EQ(n, 1) << name;
}

}  // namespace
}  // namespace strata::manager
