// The image catalog routes over the real Beast server on loopback with a real SQLite
// store: streamed upload (the CLI's upload client), validation (name, kind, formats,
// qcow2 with a backing file), sha256, 409 on a duplicate name and on delete while a VM
// uses the image, 413 over the route's own cap, roles, audit entries.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "manager_parts.h"
#include "strata/cli/http_client.h"
#include "strata/common/log.h"
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
    fs::create_directories(dir_ / "catalog");
    if (!catalog_tmpfs_size_.empty()) {
      if (::geteuid() != 0) GTEST_SKIP() << "SKIPPED: mounting a tmpfs data folder needs root";
      auto m = run_process({"mount", "-t", "tmpfs", "-o", "size=" + catalog_tmpfs_size_, "tmpfs",
                            (dir_ / "catalog").string()});
      if (!m || !m->ok())
        GTEST_SKIP() << "SKIPPED: cannot mount a tmpfs: " << (m ? m->err : m.error().message);
      mounted_ = true;
    }
    fs::create_directories(dir_ / "catalog" / "uploads");
    ASSERT_NO_FATAL_FAILURE(parts_.build());
    admin_ = parts_.admin;
    images_ = std::make_unique<ImageDistributor>(*parts_.store, (dir_ / "catalog").string());
    ApiDeps d = parts_.deps();
    d.images = images_.get();
    d.image_max_bytes = max_bytes_;
    api_ = std::make_unique<ApiService>(std::move(d));
    UploadRoutes uploads;
    uploads.streams_body = [this](std::string_view m, std::string_view p) {
      return api_->streams_body(m, p);
    };
    uploads.admit = [this](HttpRequest& head) { return api_->admit(head); };
    uploads.dir = (dir_ / "catalog" / "uploads").string();
    auto server = start_http_server(
        [] {
          HttpServerConfig c;
          c.port = 0;
          return c;
        }(),
        [this](std::string_view m, std::string_view p) { return api_->body_limit(m, p); },
        [this](HttpRequest& r) { return api_->dispatch(r); }, std::move(uploads));
    ASSERT_TRUE(server) << server.error().to_string();
    server_ = std::move(*server);
    endpoint_ = {"127.0.0.1", std::to_string(server_->port()), ""};
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (mounted_) (void)run_process({"umount", "-l", (dir_ / "catalog").string()});
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

  uint64_t max_bytes_ = 4 << 20;    // 4 MiB cap for the 413 test
  std::string catalog_tmpfs_size_;  // non-empty: the catalog folder is a tmpfs this size
  bool mounted_ = false;
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
  auto bad_kind = upload(admin_, "name=x&kind=floppy", path);
  ASSERT_FALSE(bad_kind);
  EXPECT_EQ(bad_kind.error().field, "kind");
  // An iso must be one (ISO 9660/UDF descriptor at byte 32768): plain bytes are refused.
  auto not_iso = upload(admin_, "name=x&kind=iso", write_file("big", std::string(65536, 'x')));
  ASSERT_FALSE(not_iso);
  EXPECT_EQ(not_iso.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(not_iso.error().field, "body");
  EXPECT_NE(not_iso.error().message.find("ISO 9660"), std::string::npos)
      << not_iso.error().message;

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

// The attack of issue 9: a qcow2 whose external data file (or backing file) is a host path,
// uploaded as a kernel or initrd to skip the disk probe, then used as a disk base. Every
// kind is probed now; kernels and initrds must be plain files.
TEST_F(ImageRoutesTest, DataFilesAndBackingFilesAreRefusedAsEveryKind) {
  // qemu-img creates the data file itself, inside the test folder (never a real host file:
  // creating the image sizes and zeroes it).
  auto data = (dir_ / "secret.raw").string();
  auto with_data = (dir_ / "data.qcow2").string(), backed = (dir_ / "backed.qcow2").string(),
       plain = (dir_ / "plain.qcow2").string();
  ASSERT_TRUE(run_checked(
      {"qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=" + data, with_data, "1M"}));
  ASSERT_TRUE(
      run_checked({"qemu-img", "create", "-q", "-f", "qcow2", "-b", data, "-F", "raw", backed}));
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "qcow2", plain, "1M"}));
  for (std::string kind : {"disk", "kernel", "initrd"}) {
    auto d = upload(admin_, "name=data-" + kind + "&kind=" + kind, with_data);
    ASSERT_FALSE(d) << kind;
    EXPECT_EQ(d.error().code, ErrorCode::invalid_argument) << kind;
    EXPECT_NE(d.error().message.find("data file"), std::string::npos) << d.error().message;
    auto b = upload(admin_, "name=backed-" + kind + "&kind=" + kind, backed);
    ASSERT_FALSE(b) << kind;
    EXPECT_EQ(b.error().code, ErrorCode::invalid_argument) << kind;
    EXPECT_NE(b.error().message.find("backing file"), std::string::npos) << b.error().message;
  }
  for (std::string kind : {"kernel", "initrd"}) {
    auto q = upload(admin_, "name=plain-" + kind + "&kind=" + kind, plain);
    ASSERT_FALSE(q) << kind;
    EXPECT_EQ(q.error().code, ErrorCode::invalid_argument) << kind;
    EXPECT_NE(q.error().message.find("plain file"), std::string::npos) << q.error().message;
  }
  EXPECT_TRUE(parts_.store->list_images({})->empty());
  EXPECT_EQ(uploads_left(), 0u);
}

TEST_F(ImageRoutesTest, AVmUsesEachImageOnlyAsItsKind) {
  ASSERT_TRUE(upload(admin_, "name=vmlinuz&kind=kernel", write_file("k", "kernel bytes")));
  ASSERT_TRUE(upload(admin_, "name=initrd&kind=initrd", write_file("i", "initrd bytes")));
  auto q = (dir_ / "base.qcow2").string();
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "qcow2", q, "1M"}));
  ASSERT_TRUE(upload(admin_, "name=base&kind=disk", q));
  store::HostRecord h;
  h.name = "h1";
  h.address = "unix:/nonexistent";
  h.state = "up";
  h.accelerator = "tcg";
  h.cpu_threads = 4;
  h.memory_mib = 4096;
  ASSERT_TRUE(parts_.store->create_host(h));
  auto create = [&](json extra) {
    json body = {{"name", "vm-1"}, {"vcpus", 1}, {"memory_mib", 64}, {"start", false}};
    body.update(extra);
    return client(admin_).call({"POST", "/api/v1/vms", body});
  };
  struct Case {
    json extra;
    std::string field;
  };
  for (const auto& c : std::vector<Case>{
           {{{"kernel", "vmlinuz"}, {"disks", json::array({{{"name", "root"}, {"image", "vmlinuz"}}})}},
            "disks[0].image"},
           {{{"kernel", "vmlinuz"},
             {"disks", json::array({{{"name", "root"}, {"image", "base"}},
                                    {{"name", "data"}, {"image", "initrd"}}})}},
            "disks[1].image"},
           {{{"kernel", "base"}}, "kernel"},
           {{{"kernel", "vmlinuz"}, {"initrd", "vmlinuz"}}, "initrd"},
       }) {
    auto r = create(c.extra);
    ASSERT_FALSE(r) << c.extra.dump();
    EXPECT_EQ(r.error().code, ErrorCode::invalid_argument) << c.extra.dump();
    EXPECT_EQ(r.error().field, c.field) << r.error().message;
  }
  EXPECT_TRUE(parts_.store->list_vms({})->empty());
  auto ok = create({{"kernel", "vmlinuz"},
                    {"initrd", "initrd"},
                    {"disks", json::array({{{"name", "root"}, {"image", "base"}}})}});
  ASSERT_TRUE(ok) << ok.error().to_string();
}

// Probing and hashing run on the API's workers, not on the two HTTP I/O threads: with two
// uploads whose probe takes 3 s (a qemu-img that sleeps first), /healthz and a GET still
// answer at once. Before, each upload held an I/O thread for the whole probe.
TEST_F(ImageRoutesTest, SlowProbesDoNotHoldTheIoThreads) {
  auto bin = dir_ / "slow-bin";
  fs::create_directories(bin);
  auto marks = dir_ / "marks";
  fs::create_directories(marks);
  std::string real = find_executable("qemu-img");
  ASSERT_FALSE(real.empty());
  {
    std::ofstream script(bin / "qemu-img");
    script << "#!/bin/sh\ntouch " << marks.string() << "/$$\nsleep 3\nexec " << real
           << " \"$@\"\n";
  }
  fs::permissions(bin / "qemu-img", fs::perms::owner_all);
  std::string old_path = ::getenv("PATH") ? ::getenv("PATH") : "/usr/bin:/bin";
  ::setenv("PATH", (bin.string() + ":" + old_path).c_str(), 1);
  auto count_marks = [&] {
    size_t n = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator(marks)) ++n;
    return n;
  };

  std::vector<std::thread> uploads;
  std::atomic<int> created{0};
  for (int i = 0; i < 2; ++i) {
    auto path = write_file("k" + std::to_string(i), std::string(1 << 20, 'k'));
    uploads.emplace_back([this, i, path, &created] {
      if (upload(admin_, "name=slow-" + std::to_string(i) + "&kind=kernel", path)) ++created;
    });
  }
  for (int i = 0; i < 500 && count_marks() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(count_marks(), 2u);  // both probes are running now
  auto timed = [&](const std::string& target) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = client(admin_).call({"GET", target, std::nullopt});
    EXPECT_TRUE(r) << target << ": " << r.error().to_string();
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 t0);
  };
  auto health = timed("/healthz");
  auto list = timed("/api/v1/images");
  // The probes take 3 s; a margin for a busy 2-core machine.
  EXPECT_LT(health.count(), 1000) << "healthz waited for a probe";
  EXPECT_LT(list.count(), 1000) << "a GET waited for a probe";
  for (auto& t : uploads) t.join();
  ::setenv("PATH", old_path.c_str(), 1);
  EXPECT_EQ(created.load(), 2);
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

namespace strata::manager {
namespace {

// The data folder is a small tmpfs (root only): an upload that does not fit is a 507
// naming the free space, before the transfer when the size is announced, and mid-way when
// the folder fills up under it; nothing is left behind and the next upload works.
class ImageRoutesFullDiskTest : public ImageRoutesTest {
 protected:
  ImageRoutesFullDiskTest() {
    catalog_tmpfs_size_ = "8m";
    max_bytes_ = 64 << 20;
  }

  int connect_server() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(server_->port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  }
  static bool send_all(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  std::string upload_head(const std::string& name, size_t length) {
    return "POST /api/v1/images?name=" + name + "&kind=kernel HTTP/1.1\r\nHost: x\r\n" +
           "Authorization: Bearer " + admin_ + "\r\nContent-Type: application/octet-stream\r\n" +
           "Content-Length: " + std::to_string(length) + "\r\n\r\n";
  }
  // Reads until the peer closes (the server closes after an error answer).
  static std::string read_all_fd(int fd) {
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
  uint64_t largest_upload() {
    uint64_t m = 0;
    for (auto& e : fs::directory_iterator(dir_ / "catalog" / "uploads"))
      m = std::max<uint64_t>(m, fs::file_size(e.path()));
    return m;
  }
};

TEST_F(ImageRoutesFullDiskTest, UploadThatDoesNotFitIs507AndLeavesNothing) {
  // Both refusals leave a line in the log (the issue: "nothing in the log" before).
  auto lines = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256);
  for (const char* name : {"manager.images", "manager.http"})
    logger(name)->sinks().push_back(lines);
  auto logged = [&](const std::string& what) {
    for (const auto& l : lines->last_formatted())
      if (l.find(what) != std::string::npos) return true;
    return false;
  };
  // Announced larger than the free space: refused on the header.
  auto big = upload(admin_, "name=big&kind=kernel", write_file("big", std::string(12 << 20, 'b')));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, ErrorCode::resource_exhausted);
  EXPECT_NE(big.error().message.find("bytes are free"), std::string::npos) << big.error().message;

  // Fits when it starts, not when it ends: another upload takes the space meanwhile.
  const size_t five = 5 << 20;
  int first = connect_server();
  ASSERT_TRUE(send_all(first, upload_head("first", five) + std::string(1 << 20, 'f')));
  for (int i = 0; i < 1000 && largest_upload() < (1u << 20); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_GE(largest_upload(), 1u << 20);
  int second = connect_server();
  ASSERT_TRUE(send_all(second, upload_head("second", five) + std::string(five, 's')));
  std::string created;
  char buf[4096];
  for (ssize_t n; created.find("\r\n\r\n") == std::string::npos &&
                  (n = ::recv(second, buf, sizeof buf, 0)) > 0;)
    created.append(buf, static_cast<size_t>(n));
  ::close(second);
  ASSERT_EQ(created.rfind("HTTP/1.1 201", 0), 0u) << created.substr(0, 300);
  (void)send_all(first, std::string(five - (1 << 20), 'f'));  // the folder fills up
  ::shutdown(first, SHUT_WR);
  std::string answer = read_all_fd(first);
  ::close(first);
  EXPECT_EQ(answer.rfind("HTTP/1.1 507", 0), 0u) << answer.substr(0, 300);
  EXPECT_NE(answer.find("bytes are free"), std::string::npos) << answer.substr(0, 600);
  EXPECT_TRUE(logged("image upload refused: data folder full name=big")) << "header refusal";
  EXPECT_TRUE(logged("upload refused: data folder full dir=")) << "mid-body refusal";

  for (int i = 0; i < 500 && uploads_left() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(uploads_left(), 0u);
  auto images = parts_.store->list_images({});
  ASSERT_EQ(images->size(), 1u);
  EXPECT_EQ((*images)[0].name, "second");
  auto fine = upload(admin_, "name=fine&kind=kernel", write_file("fine", std::string(1 << 20, 'k')));
  ASSERT_TRUE(fine) << fine.error().to_string();
  for (const char* name : {"manager.images", "manager.http"}) {
    auto& sinks = logger(name)->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), lines), sinks.end());
  }
}

// A real ISO (made by xorriso, Debian's) is accepted as kind iso: raw, its file size.
TEST_F(ImageRoutesTest, RealIsoIsAcceptedAsIso) {
  if (find_executable("xorriso").empty()) GTEST_SKIP() << "SKIPPED: xorriso not installed";
  fs::create_directories(dir_ / "iso-root");
  write_file("iso-root/hello.txt", "hello\n");
  const std::string iso = (dir_ / "hello.iso").string();
  ASSERT_TRUE(run_checked({"xorriso", "-as", "mkisofs", "-quiet", "-o", iso,
                           (dir_ / "iso-root").string()}));
  auto created = upload(admin_, "name=hello&kind=iso", iso);
  ASSERT_TRUE(created) << created.error().to_string();
  EXPECT_EQ((*created)["kind"], "iso");
  EXPECT_EQ((*created)["format"], "raw");
  EXPECT_EQ((*created)["size_bytes"], fs::file_size(iso));
}

}  // namespace
}  // namespace strata::manager
