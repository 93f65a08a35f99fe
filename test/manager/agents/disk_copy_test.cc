// Cold migration's disk copy between two real agents (AgentService over gRPC, the QEMU
// driver and image stores on real qemu-img files), relayed by the manager's AgentClient:
// an overlay on a catalog image and a blank disk arrive with the same content, the overlay
// pointed at the target's own copy of its base; a wrong digest, a stream cut short, a
// base image other than the VM's, and a VM with snapshots are refused, leaving the
// target's disk as it was. The VMs are only defined: no guest runs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "../../agent/service/served_agent.h"
#include "strata/agent/image_store.h"
#include "strata/agent/qemu_hypervisor.h"
#include "strata/common/process.h"
#include "strata/common/sha256.h"
#include "strata/manager/agents/agent_client.h"

namespace strata::manager {
namespace {

namespace fs = std::filesystem;

struct Host {
  agent::ImageStorePtr images;
  agent::HypervisorPtr hv;
  std::unique_ptr<agent::testing::ServedAgent> agent;
  std::shared_ptr<AgentClient> client;
};

class DiskCopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (find_executable("qemu-img").empty() || find_executable("qemu-io").empty())
      GTEST_SKIP() << "SKIPPED: qemu-img and qemu-io (Debian qemu-utils) are needed";
    if (find_executable("qemu-system-x86_64").empty())
      GTEST_SKIP() << "SKIPPED: no qemu-system-x86_64 (the driver pins machine types with it)";
    dir_ = fs::temp_directory_path() / ("diskcopy-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // A catalog image both hosts hold: 16 MiB, every byte 0x11.
    base_ = (dir_ / "base.qcow2").string();
    ASSERT_TRUE(run({"qemu-img", "create", "-q", "-f", "qcow2", base_, "16M"}));
    ASSERT_TRUE(run({"qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 16M", base_}));
    for (auto* h : {&src_, &dst_}) ASSERT_NO_FATAL_FAILURE(make_host(*h, h == &src_ ? "h1" : "h2"));
  }
  void TearDown() override {
    for (auto* h : {&src_, &dst_}) {
      h->client.reset();
      h->agent.reset();
      h->hv.reset();
      h->images.reset();
    }
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  static bool run(const std::vector<std::string>& argv) {
    auto r = run_checked(argv);
    EXPECT_TRUE(r) << r.error().to_string();
    return bool(r);
  }

  void make_host(Host& h, const std::string& name) {
    const fs::path root = dir_ / name;
    fs::create_directories(root);
    auto images = agent::make_image_store((root / "img").string());
    ASSERT_TRUE(images) << images.error().to_string();
    h.images = std::move(*images);
    ASSERT_TRUE(h.images->import_image("base", base_, "disk"));
    agent::QemuOptions o;
    o.state_dir = (root / "state").string();
    o.accelerator = "tcg";
    o.images = h.images.get();
    auto hv = agent::make_qemu_hypervisor(std::move(o));
    ASSERT_TRUE(hv) << hv.error().to_string();
    h.hv = std::move(*hv);
    agent::service::AgentServiceOptions opts;
    opts.state_dir = (root / "agent").string();
    opts.agent_version = "test";
    opts.hostname = name;
    opts.accelerator = "tcg";
    opts.images = h.images.get();
    auto served = agent::testing::ServedAgent::start(*h.hv, opts, (root / "agent.sock").string());
    ASSERT_TRUE(served) << served.error().to_string();
    h.agent = std::move(*served);
    h.client = std::make_shared<AgentClient>(h.agent->address());
    auto defined = h.hv->define(spec());
    ASSERT_TRUE(defined) << defined.error().to_string();
  }

  static model::VmSpec spec() {
    model::VmSpec s;
    s.name = "v";
    s.memory_mib = 256;
    s.vnc = false;
    s.disks.push_back({"root", "base", 0, true, false, "", ""});
    s.disks.push_back({"data", "", 8 << 20, false, false, "", ""});
    return s;
  }

  std::string disk_path(Host& h, const std::string& disk) {
    auto i = h.images->disk_info("v", disk);
    EXPECT_TRUE(i) << i.error().to_string();
    return i ? i->path : "";
  }
  std::string file_sha(Host& h, const std::string& disk) {
    auto d = sha256_file(disk_path(h, disk));
    return d ? *d : d.error().to_string();
  }
  // Same guest-visible content (through each file's backing chain).
  bool same_content(const std::string& disk) {
    auto r = run_process({"qemu-img", "compare", "-q", "-f", "qcow2", "-F", "qcow2",
                          disk_path(src_, disk), disk_path(dst_, disk)});
    return r && r->exit_code == 0;
  }

  fs::path dir_;
  std::string base_;
  Host src_, dst_;
};

TEST_F(DiskCopyTest, OverlayAndBlankDiskArriveWithTheirContent) {
  // The guest's writes: in the overlay on the base, and in the blank disk.
  ASSERT_TRUE(run({"qemu-io", "-f", "qcow2", "-c", "write -P 0xaa 1M 64k", "-c",
                   "write -P 0xbb 9M 4k", disk_path(src_, "root")}));
  ASSERT_TRUE(run({"qemu-io", "-f", "qcow2", "-c", "write -P 0xcc 0 1M", "-c",
                   "write -P 0xdd 7M 512k", disk_path(src_, "data")}));
  EXPECT_FALSE(same_content("root"));
  EXPECT_FALSE(same_content("data"));

  std::vector<std::pair<uint64_t, uint64_t>> progress;
  auto root = src_.client->copy_disk_to(*dst_.client, "m1:disk:root", "v", "root",
                                        [&](uint64_t done, uint64_t size) {
                                          progress.emplace_back(done, size);
                                        });
  ASSERT_TRUE(root) << root.error().to_string();
  auto data = src_.client->copy_disk_to(*dst_.client, "m1:disk:data", "v", "data");
  ASSERT_TRUE(data) << data.error().to_string();
  EXPECT_TRUE(same_content("root"));
  EXPECT_TRUE(same_content("data"));
  // Only the overlay's own clusters travel (64 KiB + one 64 KiB cluster and the qcow2
  // metadata), not the 16 MiB it reads through its base.
  EXPECT_GT(*root, 128u << 10);
  EXPECT_LT(*root, 4u << 20);
  EXPECT_GT(*data, (1u << 20) + (512u << 10));
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back().first, *root);
  // The target's overlay reads through the target's own base image, not a source path.
  auto info = dst_.images->disk_info("v", "root");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->backing_file, dst_.images->image("base")->path);
  // The source's files are untouched, and a copy again gives the same result.
  ASSERT_TRUE(src_.client->copy_disk_to(*dst_.client, "m2:disk:root", "v", "root"));
  EXPECT_TRUE(same_content("root"));
}

// A hand-made WriteDisk stream, as a broken or hostile sender would make it.
grpc::Status write_disk(const std::string& address,
                        const std::vector<pb::DiskChunk>& chunks) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = pb::AgentService::NewStub(channel);
  grpc::ClientContext ctx;
  pb::WriteDiskResponse resp;
  auto w = stub->WriteDisk(&ctx, &resp);
  for (const auto& c : chunks)
    if (!w->Write(c)) break;
  w->WritesDone();
  return w->Finish();
}

pb::DiskChunk header(const std::string& base, uint64_t size) {
  pb::DiskChunk c;
  auto* h = c.mutable_header();
  h->set_request_id("bad");
  h->set_name("v");
  h->set_disk("root");
  h->set_format("qcow2");
  h->set_file_size(size);
  h->set_base_image(base);
  return c;
}

TEST_F(DiskCopyTest, BrokenStreamsLeaveTheTargetDiskAsItWas) {
  const std::string before = file_sha(dst_, "root");
  // The source's real file, so only the framing is wrong.
  std::string file;
  {
    auto r = run_checked({"cat", disk_path(src_, "root")});
    ASSERT_TRUE(r);
    file = *r;
  }
  pb::DiskChunk all;
  all.set_offset(0);
  all.set_data(file.substr(0, std::min<size_t>(file.size(), 1 << 20)));
  pb::DiskChunk wrong_digest;
  wrong_digest.set_sha256(std::string(64, '0'));

  auto st = write_disk(dst_.agent->address(),
                       {header("base", file.size()), all, wrong_digest});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_NE(st.error_message().find("hash"), std::string::npos) << st.error_message();

  st = write_disk(dst_.agent->address(), {header("base", file.size()), all});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.error_message().find("before its digest"), std::string::npos)
      << st.error_message();

  st = write_disk(dst_.agent->address(), {header("other", file.size()), all});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_NE(st.error_message().find("overlay on base here"), std::string::npos)
      << st.error_message();

  pb::DiskChunk past;
  past.set_offset(file.size());
  past.set_data("x");
  st = write_disk(dst_.agent->address(), {header("base", file.size()), past});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();

  EXPECT_EQ(file_sha(dst_, "root"), before);
}

TEST_F(DiskCopyTest, VmWithSnapshotsIsRefused) {
  auto snap = src_.hv->snapshot_create("v", "s1");
  ASSERT_TRUE(snap) << snap.error().to_string();
  const std::string before = file_sha(dst_, "root");
  auto r = src_.client->copy_disk_to(*dst_.client, "m1:disk:root", "v", "root");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::failed_precondition) << r.error().to_string();
  EXPECT_NE(r.error().message.find("snapshots"), std::string::npos) << r.error().message;
  EXPECT_EQ(file_sha(dst_, "root"), before);
}

}  // namespace
}  // namespace strata::manager
