// PutImage/DeleteImage over a real gRPC server on a UNIX socket with a real image store
// (qemu-img): size and sha256 checks, idempotent repeats, ALREADY_EXISTS on different
// content, qcow2 with a backing file refused, nothing left under the name or in tmp/.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "memory_hypervisor.h"
#include "served_agent.h"
#include "strata/agent/image_store.h"
#include "strata/agent/service/agent_client.h"
#include "strata/agent/service/agent_service.h"
#include "strata/common/process.h"
#include "strata/common/sha256.h"

namespace strata::agent::service {
namespace {

namespace fs = std::filesystem;
using Stub = v1::AgentService::Stub;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class PutImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-put-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto store = make_image_store((dir_ / "images").string());
    ASSERT_TRUE(store) << store.error().to_string();
    images_ = std::move(*store);
    AgentServiceOptions opts;
    opts.state_dir = (dir_ / "state").string();
    opts.images = images_.get();
    auto served = testing::ServedAgent::start(hv_, opts, (dir_ / "agent.sock").string());
    ASSERT_TRUE(served) << served.error().to_string();
    agent_ = std::move(*served);
    client_ = std::make_unique<AgentClient>(agent_->address(), std::chrono::seconds(10));
  }
  void TearDown() override {
    client_.reset();
    agent_.reset();
    fs::remove_all(dir_);
  }

  // Sends header + data in chunks of `chunk` bytes; the header may lie about size/sha.
  Result<v1::PutImageResponse> put(const std::string& name, const std::string& kind,
                                   const std::string& data, uint64_t size, std::string sha,
                                   size_t chunk = 7) {
    grpc::ClientContext ctx;
    v1::PutImageResponse resp;
    auto writer = client_->stub().PutImage(&ctx, &resp);
    v1::PutImageChunk first;
    first.mutable_header()->set_name(name);
    first.mutable_header()->set_kind(kind);
    first.mutable_header()->set_size_bytes(size);
    first.mutable_header()->set_sha256(sha);
    bool ok = writer->Write(first);
    for (size_t off = 0; ok && off < data.size(); off += chunk) {
      v1::PutImageChunk c;
      c.set_data(data.substr(off, chunk));
      ok = writer->Write(c);
    }
    writer->WritesDone();
    grpc::Status st = writer->Finish();
    if (!st.ok()) return tl::unexpected(wire::from_grpc_status(st));
    return resp;
  }
  Result<v1::PutImageResponse> put(const std::string& name, const std::string& data) {
    Sha256 h;
    h.update(data);
    return put(name, "kernel", data, data.size(), h.hex_final());
  }
  size_t tmp_entries() {
    size_t n = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator(dir_ / "images" / "tmp")) ++n;
    return n;
  }

  testing::MemoryHypervisor hv_;
  fs::path dir_;
  ImageStorePtr images_;
  std::unique_ptr<testing::ServedAgent> agent_;
  std::unique_ptr<AgentClient> client_;
};

TEST_F(PutImageTest, StoresVerifiedBytesAndRepeatsAreIdempotent) {
  std::string data(100000, 'k');
  data[5] = 'x';
  auto r = put("vmlinuz", data);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(r->existed());
  EXPECT_EQ(r->image().name(), "vmlinuz");
  EXPECT_EQ(r->image().format(), "raw");
  EXPECT_EQ(read_all(dir_ / "images" / "images" / "vmlinuz"), data);

  auto again = put("vmlinuz", data);  // the same name and content: fine, nothing rewritten
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_TRUE(again->existed());

  auto other = put("vmlinuz", std::string(10, 'z'));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, ErrorCode::already_exists);
  EXPECT_EQ(read_all(dir_ / "images" / "images" / "vmlinuz"), data);

  auto list = client_->call(&Stub::ListImages, v1::ListImagesRequest{});
  ASSERT_TRUE(list);
  ASSERT_EQ(list->images_size(), 1);
  EXPECT_EQ(tmp_entries(), 0u);
}

TEST_F(PutImageTest, ShaOrSizeMismatchIsRejectedAndLeavesNothing) {
  std::string data = "initrd bytes";
  auto bad_sha = put("initrd", "initrd", data, data.size(), std::string(64, '0'));
  ASSERT_FALSE(bad_sha);
  EXPECT_EQ(bad_sha.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(bad_sha.error().field, "sha256");

  Sha256 h;
  h.update(data);
  std::string sha = h.hex_final();
  auto short_size = put("initrd", "initrd", data, data.size() + 5, sha);
  ASSERT_FALSE(short_size);
  EXPECT_EQ(short_size.error().field, "size_bytes");
  auto long_size = put("initrd", "initrd", data, data.size() - 1, sha);
  ASSERT_FALSE(long_size);
  EXPECT_EQ(long_size.error().field, "size_bytes");

  auto bad_kind = put("initrd", "floppy", data, data.size(), sha);
  ASSERT_FALSE(bad_kind);
  EXPECT_EQ(bad_kind.error().field, "kind");
  // Bytes that hold no ISO 9660/UDF volume are no iso, whatever the header says.
  auto not_iso = put("initrd", "iso", data, data.size(), sha);
  ASSERT_FALSE(not_iso);
  EXPECT_EQ(not_iso.error().code, ErrorCode::invalid_argument);
  auto bad_name = put("../etc", "initrd", data, data.size(), sha);
  ASSERT_FALSE(bad_name);
  EXPECT_EQ(bad_name.error().field, "name");

  EXPECT_FALSE(fs::exists(dir_ / "images" / "images" / "initrd"));
  EXPECT_EQ(tmp_entries(), 0u);
  ASSERT_TRUE(put("initrd", "initrd", data, data.size(), sha));
}

TEST_F(PutImageTest, Qcow2WithBackingFileIsRefused) {
  fs::path base = dir_ / "host-secret.raw", overlay = dir_ / "evil.qcow2";
  { std::ofstream(base) << std::string(4096, 's'); }
  auto mk = run_checked({"qemu-img", "create", "-q", "-f", "qcow2", "-b", base.string(), "-F",
                         "raw", overlay.string()});
  ASSERT_TRUE(mk) << mk.error().to_string();
  std::string data = read_all(overlay);
  Sha256 h;
  h.update(data);
  auto r = put("evil", "disk", data, data.size(), h.hex_final(), 65536);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(r.error().message.find("backing file"), std::string::npos) << r.error().message;
  EXPECT_FALSE(fs::exists(dir_ / "images" / "images" / "evil"));
  EXPECT_EQ(tmp_entries(), 0u);
}

// A qcow2 whose external data file is a host path, and one with a backing file, as each
// kind: none may be stored (a kernel today is a disk base tomorrow if the kind is not
// checked). A plain qcow2 may be a disk, never a kernel or initrd.
TEST_F(PutImageTest, DataFilesBackingFilesAndFormatsAreRefusedForEveryKind) {
  fs::path secret = dir_ / "host-secret.raw";
  fs::path with_data = dir_ / "data-file.qcow2", with_backing = dir_ / "backed.qcow2",
           plain = dir_ / "plain.qcow2";
  // qemu-img creates (and sizes) the data file itself: a file of this test, never a real
  // host file.
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "qcow2", "-o",
                           "data_file=" + secret.string(), with_data.string(), "1M"}));
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "qcow2", "-b", secret.string(), "-F",
                           "raw", with_backing.string()}));
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "qcow2", plain.string(), "1M"}));
  auto put_file = [&](const std::string& name, const std::string& kind, const fs::path& p) {
    std::string data = read_all(p);
    Sha256 h;
    h.update(data);
    return put(name, kind, data, data.size(), h.hex_final(), 65536);
  };
  for (std::string kind : {"disk", "kernel", "initrd"}) {
    auto d = put_file("with-data-" + kind, kind, with_data);
    ASSERT_FALSE(d) << kind;
    EXPECT_EQ(d.error().code, ErrorCode::invalid_argument);
    EXPECT_NE(d.error().message.find("data file"), std::string::npos) << d.error().message;
    auto b = put_file("backed-" + kind, kind, with_backing);
    ASSERT_FALSE(b) << kind;
    EXPECT_NE(b.error().message.find("backing file"), std::string::npos) << b.error().message;
  }
  for (std::string kind : {"kernel", "initrd"}) {
    auto q = put_file("plain-" + kind, kind, plain);
    ASSERT_FALSE(q) << kind;
    EXPECT_EQ(q.error().code, ErrorCode::invalid_argument);
    EXPECT_NE(q.error().message.find("plain file"), std::string::npos) << q.error().message;
  }
  EXPECT_TRUE(images_->list_images().empty());
  EXPECT_EQ(tmp_entries(), 0u);

  // The kind comes with the image and stays with it.
  ASSERT_TRUE(put_file("plain-disk", "disk", plain));
  auto stored = images_->image("plain-disk");
  ASSERT_TRUE(stored) << stored.error().to_string();
  EXPECT_EQ(stored->kind, "disk");
}

TEST_F(PutImageTest, DeleteImageIsDedupedByRequestId) {
  ASSERT_TRUE(put("gone", std::string("abc")));
  v1::DeleteImageRequest del;
  del.set_request_id("del-1");
  del.set_name("gone");
  ASSERT_TRUE(client_->call(&Stub::DeleteImage, del));
  EXPECT_FALSE(fs::exists(dir_ / "images" / "images" / "gone"));
  ASSERT_TRUE(client_->call(&Stub::DeleteImage, del));  // a repeat: the original outcome
  del.set_request_id("del-2");
  auto again = client_->call(&Stub::DeleteImage, del);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::not_found);
}

// An image a defined VM names outside its disks (the CD-ROM's medium, a direct boot's
// kernel) is kept: its next start would fail without it. Once the VM lets go, it goes.
TEST_F(PutImageTest, DeleteImageKeepsTheMediumAndKernelOfDefinedVms) {
  ASSERT_TRUE(put("installer", std::string("iso bytes")));  // the memory driver checks no kind
  ASSERT_TRUE(put("vmlinuz", std::string("kernel bytes")));
  model::VmSpec s;
  s.name = "inst";
  s.disks.push_back({"root", "", 1 << 20, false, false, "", ""});
  s.cdrom = "installer";
  s.boot = {model::BootDevice::cdrom};
  ASSERT_TRUE(hv_.define(s));
  model::VmSpec k;
  k.name = "kboot";
  k.kernel_boot = model::KernelBoot{"vmlinuz", "", ""};
  ASSERT_TRUE(hv_.define(k));
  for (auto [image, why] : {std::pair{"installer", "CD-ROM"}, {"vmlinuz", "kernel boot"}}) {
    v1::DeleteImageRequest del;
    del.set_request_id(std::string("del-") + image);
    del.set_name(image);
    auto kept = client_->call(&Stub::DeleteImage, del);
    ASSERT_FALSE(kept) << image;
    EXPECT_EQ(kept.error().code, ErrorCode::failed_precondition);
    EXPECT_NE(kept.error().message.find(why), std::string::npos) << kept.error().message;
    EXPECT_TRUE(images_->image(image)) << image;
  }
  ASSERT_TRUE(hv_.change_cdrom("inst", ""));
  v1::DeleteImageRequest del;
  del.set_request_id("del-after-eject");
  del.set_name("installer");
  ASSERT_TRUE(client_->call(&Stub::DeleteImage, del));
  EXPECT_FALSE(images_->image("installer"));
}

}  // namespace
}  // namespace strata::agent::service
