// VM import routes (routes_import.cc, vms/vm_import.h) through ApiService::dispatch with
// the real importer, catalog folder and qemu-img (no agent: the VM is placed on a host
// record and not defined anywhere). The body of an import is a tar the test writes with
// the same header writer the CLI uses. Covers: the plan route, a libvirt import of a qcow2
// and a raw disk (images in the catalog, VM spec on them), refusals naming the field (bad
// format, a qcow2 with a backing file, a vmdk descriptor naming host files, a member that is
// missing, a truncated archive) that leave no VM, no image and no work file behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>

#include "manager_parts.h"
#include "strata/common/process.h"
#include "strata/manager/api/api_service.h"
#include "strata/manager/controllers/image_probe.h"
#include "strata/model/vm_import.h"

namespace strata::manager {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ImportRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (find_executable("qemu-img").empty()) GTEST_SKIP() << "SKIPPED: qemu-img is needed";
    ASSERT_NO_FATAL_FAILURE(parts_.build());
    api_ = std::make_unique<ApiService>(parts_.deps());
    char tmpl[] = "/tmp/strata-import-api-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    store::HostRecord h;
    h.name = "h1";
    h.address = "unix:/nonexistent/h1";
    h.state = "up";
    h.accelerator = "tcg";
    h.cpu_threads = 8;
    h.memory_mib = 8192;
    ASSERT_TRUE(parts_.store->create_host(h));
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  HttpResponse dispatch(HttpRequest& r) {
    r.headers["authorization"] = "Bearer " + parts_.admin;
    r.remote_address = "127.0.0.1";
    r.peer_is_local = true;
    HttpResponse resp = api_->dispatch(r);
    if (!resp.deferred) return resp;
    std::promise<HttpResponse> answer;
    auto got = answer.get_future();
    resp.deferred([&answer](HttpResponse done) { answer.set_value(std::move(done)); });
    return got.get();
  }
  HttpResponse plan(const json& body) {
    HttpRequest r;
    r.method = "POST";
    r.path = "/api/v1/vms/import/plan";
    r.body = body.dump();
    r.headers["content-type"] = "application/json";
    return dispatch(r);
  }
  HttpResponse import(const std::string& archive, const std::string& query) {
    HttpRequest r;
    r.method = "POST";
    r.path = "/api/v1/vms/import";
    for (const auto& kv : {query}) {
      size_t at = 0;
      while (at < kv.size()) {
        size_t amp = kv.find('&', at);
        std::string pair = kv.substr(at, amp == std::string::npos ? std::string::npos : amp - at);
        auto eq = pair.find('=');
        r.query[pair.substr(0, eq)] = pair.substr(eq + 1);
        if (amp == std::string::npos) break;
        at = amp + 1;
      }
    }
    r.headers["content-type"] = "application/x-tar";
    r.body_file = archive;
    return dispatch(r);
  }
  static std::string field(const HttpResponse& r) {
    auto j = json::parse(r.body, nullptr, false);
    return j.is_discarded() ? "" : j["error"].value("field", "");
  }

  // A tar of (member name, file path or inline text) as the CLI writes it.
  std::string archive(const std::vector<std::pair<std::string, std::string>>& members,
                      bool truncate = false) {
    std::string path = (dir_ / ("a" + std::to_string(n_++) + ".tar")).string();
    std::ofstream out(path, std::ios::binary);
    for (const auto& [name, content] : members) {
      std::string bytes = content;
      std::error_code ec;
      if (content.size() < 4096 && fs::exists(content, ec)) {
        std::ifstream in(content, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
      }
      auto h = model::make_tar_header(name, bytes.size());
      out.write(reinterpret_cast<const char*>(h.data()), h.size());
      out << bytes << std::string((512 - bytes.size() % 512) % 512, '\0');
    }
    out << std::string(1024, '\0');
    out.close();
    if (truncate) fs::resize_file(path, fs::file_size(path) - 2048);
    return path;
  }
  static std::string domain(const std::string& name, const std::string& disks) {
    return "<domain type='kvm'><name>" + name +
           "</name><memory unit='MiB'>64</memory><vcpu>2</vcpu><devices>" + disks +
           "</devices></domain>";
  }
  static std::string disk(const std::string& type, const std::string& dev) {
    return "<disk type='file' device='disk'><driver type='" + type + "'/><source file='/src/" +
           dev + "'/><target dev='" + dev + "'/></disk>";
  }
  void run(const std::vector<std::string>& argv) {
    auto r = run_checked(argv);
    ASSERT_TRUE(r) << r.error().to_string();
  }
  size_t work_files() {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(parts_.catalog_dir + "/uploads"))
      ++n;
    return n;
  }
  void expect_nothing_left() {
    EXPECT_TRUE(parts_.store->list_vms({})->empty());
    EXPECT_TRUE(parts_.store->list_images({})->empty());
    EXPECT_EQ(work_files(), 0u);
  }

  test_support::ManagerParts parts_;
  std::unique_ptr<ApiService> api_;
  fs::path dir_;
  int n_ = 0;
};

TEST_F(ImportRoutesTest, PlanMapsADescriptorAndNamesTheFieldOfARefusal) {
  auto ok = plan({{"format", "libvirt"}, {"descriptor", domain("web", disk("qcow2", "vda"))}});
  ASSERT_EQ(ok.status, 200u) << ok.body;
  auto j = json::parse(ok.body);
  EXPECT_EQ(j["spec"]["name"], "web");
  EXPECT_EQ(j["spec"]["vcpus"], 2);
  EXPECT_EQ(j["disks"][0]["source"], "/src/vda");
  EXPECT_EQ(j["disks"][0]["format"], "qcow2");

  auto bad = plan({{"format", "libvirt"}, {"descriptor", domain("web", "")}});
  EXPECT_EQ(bad.status, 400u) << bad.body;
  EXPECT_EQ(field(bad), "descriptor.disks");
  auto fmt = plan({{"format", "vmx"}, {"descriptor", "<x/>"}});
  EXPECT_EQ(fmt.status, 400u);
  EXPECT_EQ(field(fmt), "format");
  auto extra = plan({{"format", "ova"}, {"descriptor", "<x/>"}, {"path", "/etc"}});
  EXPECT_EQ(extra.status, 400u);
  EXPECT_EQ(field(extra), "path");
}

TEST_F(ImportRoutesTest, LibvirtImportConvertsDisksIntoTheCatalogAndCreatesTheVm) {
  std::string q = (dir_ / "vda.qcow2").string(), raw = (dir_ / "vdb.img").string();
  run({"qemu-img", "create", "-q", "-f", "qcow2", q, "4M"});
  run({"qemu-io", "-f", "qcow2", "-c", "write -P 0x42 0 64k", q});
  run({"qemu-img", "create", "-q", "-f", "raw", raw, "1M"});
  auto tar = archive({{"domain.xml", domain("web", disk("qcow2", "vda") + disk("raw", "vdb"))},
                      {"disk-0", q},
                      {"disk-1", raw}});
  auto r = import(tar, "format=libvirt&name=imp");
  ASSERT_EQ(r.status, 202u) << r.body;
  auto j = json::parse(r.body);
  EXPECT_EQ(j["vm"]["name"], "imp");
  EXPECT_EQ(j["vm"]["spec"]["disks"][0]["image"], "imp-vda");
  EXPECT_EQ(j["vm"]["spec"]["disks"][1]["image"], "imp-vdb");
  EXPECT_EQ(j["disks"][1]["source_format"], "raw");
  auto img = parts_.store->get_image_by_name("imp-vda");
  ASSERT_TRUE(img);
  EXPECT_EQ(img->format, "qcow2");
  EXPECT_EQ(img->kind, "disk");
  EXPECT_EQ(img->virtual_size, 4 << 20);
  // The catalog file holds what the source held.
  auto cmp = run_process({"qemu-img", "compare", "-q", "-f", "qcow2", "-F", "qcow2", q,
                          catalog_file(parts_.catalog_dir, img->id)});
  ASSERT_TRUE(cmp);
  EXPECT_EQ(cmp->exit_code, 0) << cmp->out << cmp->err;
  EXPECT_EQ(work_files(), 0u);

  // The same name again: 409 before anything is converted.
  auto again = import(tar, "format=libvirt&name=imp");
  EXPECT_EQ(again.status, 409u) << again.body;
  EXPECT_EQ(field(again), "name");
}

TEST_F(ImportRoutesTest, HostileDisksAndArchivesAreRefusedAndLeaveNothing) {
  std::string backed = (dir_ / "backed.qcow2").string();
  run({"qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/etc/hostname", backed,
       "1M"});
  auto r = import(archive({{"domain.xml", domain("x", disk("qcow2", "vda"))}, {"disk-0", backed}}),
                  "format=libvirt");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r), "descriptor.disks[0]");
  EXPECT_NE(r.body.find("backing"), std::string::npos) << r.body;
  expect_nothing_left();

  // A vmdk descriptor naming a host file as its extent.
  std::string desc =
      "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
      "createType=\"monolithicFlat\"\nRW 2048 FLAT \"/etc/shadow\" 0\n";
  r = import(archive({{"domain.xml", domain("x", disk("vmdk", "vda"))}, {"disk-0", desc}}),
             "format=libvirt");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r), "descriptor.disks[0]");
  expect_nothing_left();

  // The descriptor says qcow2, the bytes are not.
  r = import(archive({{"domain.xml", domain("x", disk("qcow2", "vda"))},
                      {"disk-0", std::string(4096, 'x')}}),
             "format=libvirt");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r), "descriptor.disks[0]");

  // No file for the disk; a truncated archive; not a tar; a bad format; a bad name.
  r = import(archive({{"domain.xml", domain("x", disk("raw", "vda"))}}), "format=libvirt");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r), "descriptor.disks[0]");
  r = import(
      archive({{"domain.xml", domain("x", disk("raw", "vda"))}, {"disk-0", std::string(8192, 'd')}},
              /*truncate=*/true),
      "format=libvirt");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r), "archive.members[1].size");
  std::string junk = (dir_ / "junk").string();
  std::ofstream(junk) << std::string(2048, 'j');
  r = import(junk, "format=ova");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r), "archive.members[0]");
  r = import(junk, "format=vmx");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r), "format");
  r = import(junk, "format=ova&name=Not_A_Label");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r), "name");
  // The descriptor's own name is not a DNS label and none is given.
  r = import(archive({{"domain.xml", domain("My VM", disk("raw", "vda"))},
                      {"disk-0", std::string(4096, 'd')}}),
             "format=libvirt");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r), "name");
  expect_nothing_left();
}

// judge_import_info on what qemu-img 7.2 answers (recorded) and sniff_disk_format.
TEST(ImportDiskJudge, TakesSelfContainedDisksAndRefusesFilesThatNameOtherFiles) {
  const std::string sparse =
      R"({"virtual-size": 1048576, "filename": "s.vmdk", "format": "vmdk", "format-specific":)"
      R"( {"type": "vmdk", "data": {"create-type": "monolithicSparse", "extents": [{"virtual-size":)"
      R"( 1048576, "filename": "s.vmdk", "format": ""}]}}})";
  auto ok = judge_import_info(sparse, "vmdk", "f");
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(ok->virtual_size, 1048576);
  const std::string flat =
      R"({"virtual-size": 1048576, "filename": "f.vmdk", "format": "vmdk", "format-specific":)"
      R"( {"type": "vmdk", "data": {"create-type": "monolithicFlat", "extents": [{"virtual-size":)"
      R"( 1048576, "filename": "f-flat.vmdk", "format": "FLAT"}]}}})";
  const std::string split =
      R"({"virtual-size": 1048576, "format": "vmdk", "format-specific": {"type": "vmdk", "data":)"
      R"( {"create-type": "twoGbMaxExtentSparse", "extents": [{"filename": "t-s001.vmdk"}]}}})";
  const std::string data_file =
      R"({"virtual-size": 1048576, "format": "qcow2", "format-specific": {"type": "qcow2", "data":)"
      R"( {"compat": "1.1", "data-file": "d.raw", "data-file-raw": false}}})";
  const std::string backing =
      R"({"virtual-size": 1048576, "format": "qcow2", "backing-filename": "/etc/hostname"})";
  const std::string huge = R"({"virtual-size": 9223372036854775807, "format": "raw"})";
  struct Case {
    const std::string* json;
    const char* format;
  };
  for (auto [json, format] : {Case{&flat, "vmdk"}, Case{&split, "vmdk"}, Case{&data_file, "qcow2"},
                              Case{&backing, "qcow2"}, Case{&huge, "raw"}, Case{&sparse, "qcow2"},
                              Case{&sparse, "vdi"}}) {
    auto r = judge_import_info(*json, format, "descriptor.disks[2]");
    ASSERT_FALSE(r) << *json;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_argument) << *json;
    EXPECT_EQ(r.error().field, "descriptor.disks[2]") << *json;
  }
  EXPECT_EQ(sniff_disk_format(std::string("QFI\xfb\0\0\0\3", 8)), "qcow2");
  EXPECT_EQ(sniff_disk_format("KDMV\1\0\0\0"), "vmdk");
  EXPECT_EQ(sniff_disk_format("# Disk DescriptorFile\nversion=1\n"), "vmdk-descriptor");
  EXPECT_EQ(sniff_disk_format(std::string(64, '\0')), "raw");
  EXPECT_EQ(sniff_disk_format(""), "raw");
}

}  // namespace
}  // namespace strata::manager
