// The image catalog routes over the real Beast server on loopback with a real SQLite
// store: streamed upload (the CLI's upload client), validation (name, kind, formats,
// qcow2 with a backing file), sha256, 409 on a duplicate name and on delete while a VM
// uses the image, 413 over the route's own cap, roles, audit entries.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "manager_parts.h"
#include "strata/cli/http_client.h"
#include "strata/common/process.h"
#include "strata/common/sha256.h"
#include "strata/manager/agents/connection_manager.h"
#include "strata/manager/api/api_service.h"
#include "strata/manager/api/http_server.h"
#include "strata/manager/controllers/image_distribution.h"
#include "strata/manager/controllers/vm_controller.h"
#include "strata/manager/tasks/task_tracker.h"

namespace strata::manager {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ImageRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-imgapi-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "catalog" / "uploads");
    ASSERT_NO_FATAL_FAILURE(parts_.build());
    admin_ = parts_.admin;
    images_ = std::make_unique<ImageDistributor>(*parts_.store, (dir_ / "catalog").string());
    ApiDeps d = parts_.deps();
    d.images = images_.get();
    d.image_max_bytes = 4 << 20;  // 4 MiB cap for the 413 test
    api_ = std::make_unique<ApiService>(std::move(d));
    UploadRoutes uploads;
    uploads.streams_body = [this](std::string_view m, std::string_view p) {
      return api_->streams_body(m, p);
    };
    uploads.admit = [this](HttpRequest& head) { return api_->admit(head); };
    uploads.dir = (dir_ / "catalog" / "uploads").string();
    auto server = start_http_server(
        HttpServerConfig{"127.0.0.1", 0, 2, {}},
        [this](std::string_view m, std::string_view p) { return api_->body_limit(m, p); },
        [this](HttpRequest& r) { return api_->dispatch(r); }, std::move(uploads));
    ASSERT_TRUE(server) << server.error().to_string();
    server_ = std::move(*server);
    endpoint_ = {"127.0.0.1", std::to_string(server_->port()), ""};
  }
  void TearDown() override {
    if (server_) server_->stop();
    fs::remove_all(dir_);
  }

  cli::HttpClient client(const std::string& token) { return cli::HttpClient(endpoint_, token); }
  std::string make_token(const std::string& name, const std::string& role) {
    auto r = client(admin_).call({"POST", "/api/v1/tokens", json{{"name", name}, {"role", role}}});
    EXPECT_TRUE(r) << r.error().to_string();
    return (*r)["token"];
  }
  std::string write_file(const std::string& name, const std::string& data) {
    auto p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << data;
    return p;
  }
  Result<json> upload(const std::string& token, const std::string& query, const std::string& path) {
    return client(token).upload({"POST", "/api/v1/images?" + query, std::nullopt}, path, {});
  }
  size_t uploads_left() {
    size_t n = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator(dir_ / "catalog" / "uploads")) ++n;
    return n;
  }

  fs::path dir_;
  test_support::ManagerParts parts_;
  std::string admin_;
  std::unique_ptr<ImageDistributor> images_;
  std::unique_ptr<ApiService> api_;
  HttpServerPtr server_;
  cli::Endpoint endpoint_;
};

TEST_F(ImageRoutesTest, UploadListShowAndDuplicateName) {
  std::string data(300000, 'K');
  auto path = write_file("vmlinuz", data);
  std::string op = make_token("ops", "operator");
  auto created = upload(op, "name=tiny-kernel&kind=kernel", path);
  ASSERT_TRUE(created) << created.error().to_string();
  EXPECT_EQ((*created)["name"], "tiny-kernel");
  EXPECT_EQ((*created)["kind"], "kernel");
  EXPECT_EQ((*created)["format"], "raw");
  EXPECT_EQ((*created)["size_bytes"], 300000);
  Sha256 h;
  h.update(data);
  EXPECT_EQ((*created)["sha256"], h.hex_final());
  // The bytes are kept under the catalog folder by id, nowhere else.
  auto stored = dir_ / "catalog" / (*created)["id"].get<std::string>();
  EXPECT_EQ(fs::file_size(stored), 300000u);
  EXPECT_EQ(uploads_left(), 0u);

  auto dup = upload(op, "name=tiny-kernel&kind=kernel", path);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, ErrorCode::already_exists);

  std::string viewer = make_token("look", "viewer");
  auto list = client(viewer).call({"GET", "/api/v1/images", std::nullopt});
  ASSERT_TRUE(list) << list.error().to_string();
  ASSERT_EQ((*list)["images"].size(), 1u);
  auto show = client(viewer).call({"GET", "/api/v1/images/tiny-kernel", std::nullopt});
  ASSERT_TRUE(show) << show.error().to_string();
  EXPECT_TRUE((*show)["hosts"].is_array());
  auto missing = client(viewer).call({"GET", "/api/v1/images/nope", std::nullopt});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::not_found);

  // Viewers may not upload; the body is not even read.
  auto denied = upload(viewer, "name=other&kind=kernel", path);
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code, ErrorCode::permission_denied);
  auto anon = upload("", "name=other&kind=kernel", path);
  ASSERT_FALSE(anon);
  EXPECT_EQ(anon.error().code, ErrorCode::unauthenticated);
  EXPECT_EQ(uploads_left(), 0u);

  auto events = parts_.store->list_events(0, 0);
  ASSERT_TRUE(events);
  bool audited = false, conflict_audited = false;
  for (const auto& e : *events) {
    if (e.action == "image.create" && e.target == "image/tiny-kernel" && e.result == "ok")
      audited = true;
    // The taken name was refused on the header, before the body: audited as well.
    if (e.action == "image.create" && e.target == "image/tiny-kernel" && e.result == "error 409")
      conflict_audited = true;
  }
  EXPECT_TRUE(audited);
  EXPECT_TRUE(conflict_audited);
}

TEST_F(ImageRoutesTest, RejectsBadNamesKindsFormatsAndBackingFiles) {
  auto path = write_file("f", "abc");
  auto bad_name = upload(admin_, "name=Not_A_Label&kind=kernel", path);
  ASSERT_FALSE(bad_name);
  EXPECT_EQ(bad_name.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(bad_name.error().field, "name");
  auto no_name = upload(admin_, "kind=kernel", path);
  ASSERT_FALSE(no_name);
  EXPECT_EQ(no_name.error().field, "name");
  auto bad_kind = upload(admin_, "name=x&kind=iso", path);
  ASSERT_FALSE(bad_kind);
  EXPECT_EQ(bad_kind.error().field, "kind");

  // A qcow2 whose backing file is a host path: the classic host-file-read attack.
  auto secret = write_file("secret", std::string(4096, 's'));
  auto evil = (dir_ / "evil.qcow2").string();
  ASSERT_TRUE(
      run_checked({"qemu-img", "create", "-q", "-f", "qcow2", "-b", secret, "-F", "raw", evil}));
  auto backed = upload(admin_, "name=evil", evil);
  ASSERT_FALSE(backed);
  EXPECT_EQ(backed.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(backed.error().message.find("backing file"), std::string::npos)
      << backed.error().message;

  // A format other than qcow2/raw.
  auto vmdk = (dir_ / "disk.vmdk").string();
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "vmdk", vmdk, "1M"}));
  auto other = upload(admin_, "name=vmdk-disk", vmdk);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(other.error().message.find("vmdk"), std::string::npos) << other.error().message;

  // A good qcow2 disk: format and virtual size come from qemu-img.
  auto good = (dir_ / "good.qcow2").string();
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "qcow2", good, "64M"}));
  auto ok = upload(admin_, "name=base&kind=disk", good);
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ((*ok)["format"], "qcow2");
  EXPECT_EQ((*ok)["virtual_size"], 64 << 20);
  EXPECT_EQ(parts_.store->list_images({})->size(), 1u);
  EXPECT_EQ(uploads_left(), 0u);
}

TEST_F(ImageRoutesTest, OversizedUploadIs413AndLeavesNothing) {
  auto path = write_file("big", std::string(5 << 20, 'b'));  // over the 4 MiB cap
  auto big = upload(admin_, "name=big&kind=kernel", path);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, ErrorCode::payload_too_large);
  EXPECT_TRUE(parts_.store->list_images({})->empty());
  EXPECT_EQ(uploads_left(), 0u);
  // The 10 MB JSON limit does not apply to the route, only its own cap: 3 MiB is fine.
  auto fine =
      upload(admin_, "name=fine&kind=kernel", write_file("fine", std::string(3 << 20, 'f')));
  ASSERT_TRUE(fine) << fine.error().to_string();
}

TEST_F(ImageRoutesTest, DeleteIsRefusedWhileAVmUsesTheImage) {
  auto path = write_file("k", "kernel bytes");
  ASSERT_TRUE(upload(admin_, "name=tiny-kernel&kind=kernel", path));
  store::HostRecord h;
  h.name = "h1";
  h.address = "unix:/nonexistent";
  h.state = "up";
  h.accelerator = "tcg";
  h.cpu_threads = 4;
  h.memory_mib = 4096;
  ASSERT_TRUE(parts_.store->create_host(h));
  auto vm = client(admin_).call({"POST", "/api/v1/vms",
                                 json{{"name", "web-1"},
                                      {"vcpus", 1},
                                      {"memory_mib", 64},
                                      {"kernel", "tiny-kernel"},
                                      {"start", false}}});
  ASSERT_TRUE(vm) << vm.error().to_string();
  auto del = client(admin_).call({"DELETE", "/api/v1/images/tiny-kernel", std::nullopt});
  ASSERT_FALSE(del);
  EXPECT_EQ(del.error().code, ErrorCode::conflict);
  EXPECT_NE(del.error().message.find("web-1"), std::string::npos);

  ASSERT_TRUE(upload(admin_, "name=unused&kind=initrd", path));
  auto id = parts_.store->get_image_by_name("unused")->id;
  auto gone = client(admin_).call({"DELETE", "/api/v1/images/unused", std::nullopt});
  ASSERT_TRUE(gone) << gone.error().to_string();
  EXPECT_FALSE(fs::exists(dir_ / "catalog" / id));
  auto again = client(admin_).call({"DELETE", "/api/v1/images/unused", std::nullopt});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::not_found);
}

}  // namespace
}  // namespace strata::manager
