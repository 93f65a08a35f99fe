// VM import routes (routes_import.cc, vms/vm_import.h) through ApiService::dispatch with
// the real importer, catalog folder and qemu-img (no agent: the VM is placed on a host
// record and not defined anywhere). The body of an import is a tar the test writes with
// the same header writer the CLI uses. Covers: the plan route, a libvirt import of a qcow2
// and a raw disk (images in the catalog, VM spec on them), refusals naming the field (bad
// format, a qcow2 with a backing file, a vmdk descriptor naming host files, a member that is
// missing, a truncated archive) that leave no VM, no image and no work file behind; the
// import's own task and qemu-img's progress; network mapping; gzip-compressed OVA files
// (and gzip bombs refused).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <thread>

#include "manager_parts.h"
#include "strata/common/process.h"
#include "strata/common/unique_fd.h"
#include "strata/manager/api/api_service.h"
#include "strata/manager/controllers/image_probe.h"
#include "strata/manager/vms/vm_import.h"
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
    // Bridges the network-mapping tests join.
    h.inventory =
        R"({"interfaces": [{"name": "br0", "bridge": true}, {"name": "br1", "bridge": true}]})";
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
  static void spit_file(const fs::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
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
  // The import's own task: ended, named in the answer, kept in the store.
  ASSERT_TRUE(j.contains("import_task")) << r.body;
  EXPECT_EQ(j["import_task"]["kind"], "vm.import");
  EXPECT_EQ(j["import_task"]["state"], "succeeded");
  EXPECT_EQ(j["import_task"]["progress"], 100);
  EXPECT_EQ(j["import_task"]["target_id"], "imp");
  auto stored = parts_.store->get_task(j["import_task"]["id"].get<std::string>());
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->state, "succeeded");
  EXPECT_EQ(json::parse(stored->result)["vm"], "imp");
  EXPECT_EQ(json::parse(stored->result)["task"], j["task"]["id"]);

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

// The conversion is visible while it runs: a qemu-img in front of the real one prints a
// progress figure and holds the conversion until the test has seen the import task show it.
TEST_F(ImportRoutesTest, TheImportTaskShowsTheConversionWhileItRuns) {
  std::string real = find_executable("qemu-img");
  fs::path bin = dir_ / "bin", gate = dir_ / "gate";
  fs::create_directories(bin);
  spit_file(bin / "qemu-img",
            "#!/bin/sh\nif [ \"$1\" = convert ]; then\n"
            "  printf '    (0.00/100%%)\\r    (37.50/100%%)\\r'\n"
            "  i=0; while [ ! -e '" +
                gate.string() +
                "' ] && [ $i -lt 400 ]; do sleep 0.05; "
                "i=$((i+1)); done\nfi\nexec '" +
                real + "' \"$@\"\n");
  fs::permissions(bin / "qemu-img", fs::perms::owner_all);
  std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "";
  ::setenv("PATH", (bin.string() + ":" + old_path).c_str(), 1);
  std::string raw = (dir_ / "vda.img").string();
  run({"qemu-img", "create", "-q", "-f", "raw", raw, "1M"});
  auto tar = archive({{"domain.xml", domain("slow", disk("raw", "vda"))}, {"disk-0", raw}});
  auto answer = std::async(std::launch::async, [&] { return import(tar, "format=libvirt"); });
  std::optional<store::TaskRecord> seen;
  for (int i = 0; i < 400 && !seen; ++i) {
    auto tasks = parts_.store->list_tasks({});
    if (tasks)
      for (const auto& t : *tasks)
        if (t.kind == "vm.import" && t.state == "running" && t.progress > 0) seen = t;
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  spit_file(gate, "");
  auto r = answer.get();
  ::setenv("PATH", old_path.c_str(), 1);
  ASSERT_TRUE(seen) << "the import task never showed the conversion";
  EXPECT_EQ(seen->target_kind, "import");
  EXPECT_EQ(seen->target_id, "slow");
  EXPECT_EQ(seen->progress, 37);
  EXPECT_NE(seen->message.find("converting disk vda (raw to qcow2)"), std::string::npos)
      << seen->message;
  ASSERT_EQ(r.status, 202u) << r.body;
  auto j = json::parse(r.body);
  EXPECT_EQ(j["import_task"]["id"], seen->id);
  EXPECT_EQ(j["import_task"]["state"], "succeeded");
}

TEST_F(ImportRoutesTest, ARefusedConversionFailsTheImportTask) {
  // The descriptor says qcow2, the bytes are a raw disk: refused once the task exists.
  auto r = import(archive({{"domain.xml", domain("x", disk("qcow2", "vda"))},
                           {"disk-0", std::string(4096, 'x')}}),
                  "format=libvirt");
  EXPECT_EQ(r.status, 400u) << r.body;
  auto tasks = parts_.store->list_tasks({});
  ASSERT_TRUE(tasks);
  ASSERT_EQ(tasks->size(), 1u);
  EXPECT_EQ((*tasks)[0].kind, "vm.import");
  EXPECT_EQ((*tasks)[0].state, "failed");
  EXPECT_NE((*tasks)[0].message.find("qcow2"), std::string::npos) << (*tasks)[0].message;
  EXPECT_EQ((*tasks)[0].message.rfind("descriptor.disks[0]: ", 0), 0u) << (*tasks)[0].message;
  expect_nothing_left();
}

TEST_F(ImportRoutesTest, NetworkMapMakesBridgeNicsAndBadMapsAreRefusedNamingTheField) {
  std::string xml = "<domain type='kvm'><name>net</name><memory unit='MiB'>64</memory><devices>" +
                    disk("raw", "vda") +
                    "<interface type='network'><source network='default'/></interface>"
                    "<interface type='network'><source network='other'/></interface>"
                    "</devices></domain>";
  auto p =
      plan({{"format", "libvirt"}, {"descriptor", xml}, {"network_map", {{"default", "br-lan"}}}});
  ASSERT_EQ(p.status, 200u) << p.body;
  auto j = json::parse(p.body);
  EXPECT_EQ(j["spec"]["nics"][0]["mode"], "bridge");
  EXPECT_EQ(j["spec"]["nics"][0]["bridge"], "br-lan");
  EXPECT_EQ(j["spec"]["nics"][1]["mode"], "user");
  EXPECT_NE(j["unmapped"].dump().find("other"), std::string::npos) << j["unmapped"];
  EXPECT_EQ(j["unmapped"].dump().find("default"), std::string::npos) << j["unmapped"];

  auto bad = plan(
      {{"format", "libvirt"}, {"descriptor", xml}, {"network_map", {{"default", "br lan;x"}}}});
  EXPECT_EQ(bad.status, 400u) << bad.body;
  EXPECT_EQ(field(bad), "network_map.default");
  bad = plan({{"format", "libvirt"}, {"descriptor", xml}, {"network_map", {{"default", 3}}}});
  EXPECT_EQ(bad.status, 400u) << bad.body;
  EXPECT_EQ(field(bad), "network_map");
  bad = plan({{"format", "libvirt"}, {"descriptor", xml}, {"network_map", "default=br0"}});
  EXPECT_EQ(bad.status, 400u) << bad.body;
  EXPECT_EQ(field(bad), "network_map");

  // The import: the query parameter is a JSON object (the router decodes the URL).
  auto tar = archive({{"domain.xml", xml}, {"disk-0", std::string(65536, 'd')}});
  auto r = import(tar, "format=libvirt&network_map={\"default\":\"br0\"");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r), "network_map");
  r = import(tar, "format=libvirt&network_map={\"default\":\"br/0\"}");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r), "network_map.default");
  expect_nothing_left();
  r = import(tar, "format=libvirt&network_map={\"default\":\"br0\",\"other\":\"br1\"}");
  ASSERT_EQ(r.status, 202u) << r.body;
  j = json::parse(r.body);
  EXPECT_EQ(j["vm"]["spec"]["nics"][0]["bridge"], "br0");
  EXPECT_EQ(j["vm"]["spec"]["nics"][1]["bridge"], "br1");
  EXPECT_TRUE(j["unmapped"].empty()) << j["unmapped"];
}

// gzip-compresses `in` into `out` in `members` gzip members (concatenated, as `cat a.gz
// b.gz` makes).
void gzip_file(const std::string& in, const std::string& out, int members = 1) {
  std::ifstream f(in, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  std::ofstream o(out, std::ios::binary);
  size_t part = bytes.size() / static_cast<size_t>(members) + 1;
  for (size_t at = 0; at < bytes.size(); at += part) {
    std::string piece = bytes.substr(at, part);
    uLongf n = compressBound(static_cast<uLong>(piece.size())) + 64;
    std::string z(n, '\0');
    z_stream s{};
    ASSERT_EQ(deflateInit2(&s, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    s.next_in = reinterpret_cast<Bytef*>(piece.data());
    s.avail_in = static_cast<uInt>(piece.size());
    s.next_out = reinterpret_cast<Bytef*>(z.data());
    s.avail_out = static_cast<uInt>(z.size());
    ASSERT_EQ(deflate(&s, Z_FINISH), Z_STREAM_END);
    z.resize(z.size() - s.avail_out);
    deflateEnd(&s);
    o << z;
  }
}

std::string ovf(const std::string& file_attrs, uint64_t capacity_mib) {
  return "<Envelope xmlns:ovf='o' xmlns:rasd='r'><References><File ovf:id='f1' "
         "ovf:href='d.vmdk' " +
         file_attrs +
         "/></References><DiskSection><Disk ovf:diskId='d1' ovf:fileRef='f1' "
         "ovf:capacity='" +
         std::to_string(capacity_mib) +
         "' ovf:capacityAllocationUnits='byte * 2^20' ovf:format='http://www.vmware.com/"
         "interfaces/specifications/vmdk.html#streamOptimized'/></DiskSection>"
         "<VirtualSystem ovf:id='gz'><Name>gz</Name><VirtualHardwareSection>"
         "<Item><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>64</"
         "rasd:VirtualQuantity></Item><Item><rasd:ResourceType>17</rasd:ResourceType>"
         "<rasd:HostResource>ovf:/disk/d1</rasd:HostResource></Item>"
         "<Item><rasd:ResourceType>10</rasd:ResourceType><rasd:Connection>VM Network"
         "</rasd:Connection></Item></VirtualHardwareSection></VirtualSystem></Envelope>";
}

TEST_F(ImportRoutesTest, GzipCompressedOvaFilesAreInflatedAndBombsRefused) {
  std::string raw = (dir_ / "src.img").string(), vmdk = (dir_ / "d.vmdk").string();
  run({"qemu-img", "create", "-q", "-f", "raw", raw, "4M"});
  run({"qemu-io", "-f", "raw", "-c", "write -P 0x5a 1M 128k", raw});
  run({"qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
       raw, vmdk});
  std::string gz = (dir_ / "d.vmdk.gz").string();
  ASSERT_NO_FATAL_FAILURE(gzip_file(vmdk, gz, /*members=*/2));
  auto p = plan({{"format", "ova"}, {"descriptor", ovf("ovf:compression='gzip'", 4)}});
  ASSERT_EQ(p.status, 200u) << p.body;
  EXPECT_EQ(json::parse(p.body)["disks"][0]["compression"], "gzip");
  auto r = import(archive({{"gz.ovf", ovf("ovf:compression='gzip'", 4)}, {"d.vmdk", gz}}),
                  "format=ova&network_map={\"VM Network\":\"br0\"}");
  ASSERT_EQ(r.status, 202u) << r.body;
  auto j = json::parse(r.body);
  EXPECT_EQ(j["disks"][0]["source_format"], "vmdk");
  EXPECT_EQ(j["vm"]["spec"]["nics"][0]["bridge"], "br0");
  auto img = parts_.store->get_image_by_name("gz-disk0");
  ASSERT_TRUE(img);
  auto cmp = run_process({"qemu-img", "compare", "-q", "-f", "raw", "-F", "qcow2", raw,
                          catalog_file(parts_.catalog_dir, img->id)});
  ASSERT_TRUE(cmp);
  EXPECT_EQ(cmp->exit_code, 0) << cmp->out << cmp->err;
  EXPECT_EQ(work_files(), 0u);

  // A bomb: 32 MiB of zeros (32 KiB compressed) for a disk of 1 MiB.
  std::string zeros = (dir_ / "zeros").string(), bomb = (dir_ / "bomb.gz").string();
  std::ofstream(zeros).close();
  fs::resize_file(zeros, 32 << 20);
  ASSERT_NO_FATAL_FAILURE(gzip_file(zeros, bomb));
  r = import(archive({{"b.ovf", ovf("ovf:compression='gzip'", 1)}, {"d.vmdk", bomb}}),
             "format=ova&name=bomb");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r), "descriptor.disks[0]");
  EXPECT_NE(r.body.find("inflates to more than"), std::string::npos) << r.body;
  // Not gzip at all, and a gzip stream cut short.
  r = import(archive({{"b.ovf", ovf("ovf:compression='gzip'", 4)}, {"d.vmdk", vmdk}}),
             "format=ova&name=notgz");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r), "descriptor.disks[0]");
  std::ifstream in(gz, std::ios::binary);
  std::string cut((std::istreambuf_iterator<char>(in)), {});
  cut.resize(cut.size() / 2);
  r = import(archive({{"b.ovf", ovf("ovf:compression='gzip'", 4)}, {"d.vmdk", cut}}),
             "format=ova&name=cut");
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r), "descriptor.disks[0]");
  EXPECT_EQ(work_files(), 0u);
  EXPECT_EQ(parts_.store->list_vms({})->size(), 1u);
}

// qemu-img convert -p output, split anywhere, with noise: only whole figures count.
TEST(ImportProgress, ParsesQemuImgFiguresSafely) {
  const std::string out = "    (0.00/100%)\r    (12.50/100%)\r    (100.00/100%)\r\n";
  for (size_t cut = 0; cut <= out.size(); ++cut) {
    QemuImgProgress p;
    std::vector<double> seen;
    for (auto piece : {out.substr(0, cut), out.substr(cut)})
      if (auto v = p.feed(piece)) seen.push_back(*v);
    ASSERT_FALSE(seen.empty()) << cut;
    EXPECT_EQ(seen.back(), 100.0) << cut;
  }
  QemuImgProgress p;
  EXPECT_FALSE(p.feed("(abc/100%)(-5/100%)(101/100%)(1e2/100%)(50/99%)(/100%)"));
  EXPECT_FALSE(p.feed("(" + std::string(1 << 20, '9')));  // never closed: nothing kept
  EXPECT_FALSE(p.feed("/100%)"));
  EXPECT_EQ(p.feed("(42.5/100%)"), 42.5);
  EXPECT_EQ(p.feed("((7/100%)"), 7.0);
}

TEST(ImportProgress, ConvertReportsQemuImgProgress) {
  if (find_executable("qemu-img").empty()) GTEST_SKIP() << "SKIPPED: qemu-img is needed";
  char tmpl[] = "/tmp/strata-import-progress-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  fs::path dir = tmpl;
  std::string in = (dir / "in.img").string(), out = (dir / "out.qcow2").string();
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "raw", in, "8M"}));
  std::vector<double> seen;
  auto st = convert_to_qcow2(in, "raw", out, "f", {}, [&](double v) { seen.push_back(v); });
  ASSERT_TRUE(st) << st.error().to_string();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), 100.0);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  fs::remove_all(dir);
}

TEST(ImportInflate, BoundsTheOutputAndReadsConcatenatedMembers) {
  char tmpl[] = "/tmp/strata-import-inflate-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  fs::path dir = tmpl;
  std::string plain = (dir / "plain").string(), gz = (dir / "p.gz").string(),
              out = (dir / "out").string();
  std::string text;
  for (int i = 0; i < 100000; ++i) text += std::to_string(i) + "\n";
  std::ofstream(plain, std::ios::binary) << text;
  ASSERT_NO_FATAL_FAILURE(gzip_file(plain, gz, /*members=*/3));
  std::ofstream(out).close();
  // The stream sits at an offset, as a member inside a tar does.
  std::string framed = (dir / "framed").string();
  {
    std::ifstream g(gz, std::ios::binary);
    std::ofstream f(framed, std::ios::binary);
    f << std::string(512, 'h') << g.rdbuf() << std::string(100, 't');
  }
  UniqueFd fd(::open(framed.c_str(), O_RDONLY | O_CLOEXEC));
  uint64_t size = fs::file_size(gz);
  std::vector<uint64_t> read;
  ASSERT_TRUE(inflate_gzip_range(fd.fd, 512, size, out, text.size(), "f",
                                 [&](uint64_t n) { read.push_back(n); }));
  ASSERT_FALSE(read.empty());
  EXPECT_EQ(read.back(), size);
  std::ifstream o(out, std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(o)), {}), text);
  auto big = inflate_gzip_range(fd.fd, 512, size, out, text.size() - 1, "f");
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().field, "f");
  auto cut = inflate_gzip_range(fd.fd, 512, size - 20, out, text.size(), "f");
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().field, "f");
  auto junk = inflate_gzip_range(fd.fd, 0, 512, out, text.size(), "f");
  ASSERT_FALSE(junk);
  EXPECT_EQ(junk.error().code, ErrorCode::invalid_argument);
  EXPECT_GT(max_inflated_disk_bytes(1 << 20), 1u << 20);
  EXPECT_LT(max_inflated_disk_bytes(1 << 20), 32u << 20);
  fs::remove_all(dir);
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
