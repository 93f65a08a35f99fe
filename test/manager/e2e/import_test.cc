// e2e: `strata vm import` against `stratad --all-in-one` with a real strata-agent (TCG;
// no guest runs: the imported VMs are only defined). Builds, in a temp folder, a libvirt
// domain XML with a qcow2 and a raw disk, and an OVA (tar of an OVF and a VMDK made with
// `qemu-img convert -O vmdk`); imports each with the CLI binary; checks the VM's spec, that
// what the descriptor held but Strata did not take is reported, and that the disks on the
// host (overlays on the converted catalog images) hold what the sources held (qemu-img
// compare). Hostile archives (a disk with a backing file, a traversal in an OVF href) are
// refused with the field named, leaving no VM and no image. A gzip-compressed OVA disk is
// inflated and imported, and the import's own task ends succeeded. Skips (with the reason) when
// the binaries, qemu-img or root are missing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "../../common/test_util.h"
#include "strata/common/process.h"
#include "strata/enroll/http_client.h"

extern char** environ;

namespace strata::manager {
namespace {

using enroll::http_request;
using enroll::HttpResult;
namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

using test::slurp;

void spit(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

template <typename F>
bool wait_until(std::chrono::seconds timeout, F&& pred) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(250ms);
  }
  return false;
}

class ImportE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string stratad = STRATAD_BINARY, agent = STRATA_AGENT_BINARY, cli = STRATA_CLI_BINARY;
    if (stratad.empty() || !fs::exists(stratad)) GTEST_SKIP() << "stratad is not built";
    if (agent.empty() || !fs::exists(agent)) GTEST_SKIP() << "strata-agent is not built";
    if (cli.empty() || !fs::exists(cli)) GTEST_SKIP() << "strata is not built";
    if (geteuid() != 0) GTEST_SKIP() << "needs root (the all-in-one agent)";
    for (const char* tool : {"qemu-img", "qemu-io", "qemu-system-x86_64", "tar"})
      if (find_executable(tool).empty()) GTEST_SKIP() << tool << " is missing";
    cli_ = cli;
    dir_ = fs::temp_directory_path() / ("stratad-import-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "src");
    std::vector<std::string> argv = {
        stratad,          "--all-in-one", "--data-dir",     (dir_ / "data").string(),
        "--listen",       "127.0.0.1:0",  "--agent-binary", agent,
        "--accel",        "tcg",          "--host-name",    "import-host",
        "--heartbeat-ms", "500"};
    fs::create_directories(dir_ / "data");
    // qemu-img in front of the real one: when the test asks (the file `slow`), a
    // conversion prints a progress figure and takes 3 s more, so the CLI can show it.
    fs::create_directories(dir_ / "bin");
    spit(dir_ / "bin" / "qemu-img",
         "#!/bin/sh\nif [ \"$1\" = convert ] && [ -e '" + (dir_ / "slow").string() +
             "' ]; then\n  printf '    (37.50/100%%)\\r'; sleep 3\nfi\nexec '" +
             find_executable("qemu-img") + "' \"$@\"\n");
    fs::permissions(dir_ / "bin" / "qemu-img", fs::perms::owner_all);
    std::vector<std::string> env_store;
    for (char** e = environ; e && *e; ++e)
      if (std::string_view(*e).rfind("PATH=", 0) != 0) env_store.emplace_back(*e);
    const char* path = std::getenv("PATH");
    env_store.push_back("PATH=" + (dir_ / "bin").string() + ":" + (path ? path : "/usr/bin:/bin"));
    std::vector<char*> cenv;
    for (auto& e : env_store) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    std::string log = (dir_ / "stratad.log").string();
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    ASSERT_EQ(posix_spawn(&pid_, stratad.c_str(), &fa, nullptr, cargv.data(), cenv.data()), 0);
    posix_spawn_file_actions_destroy(&fa);
    std::regex api_re("API (http://127\\.0\\.0\\.1:[0-9]+)");
    ASSERT_TRUE(wait_until(180s, [&] {
      std::smatch m;
      std::string text = slurp(log);
      if (std::regex_search(text, m, api_re)) base_ = m[1];
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return true;
      }
      return !base_.empty();
    })) << slurp(log);
    ASSERT_FALSE(base_.empty()) << "stratad exited: " << slurp(log);
    token_ = slurp((dir_ / "data" / "admin.token").string());
    while (!token_.empty() && token_.back() == '\n') token_.pop_back();
    ASSERT_FALSE(token_.empty());
    ASSERT_TRUE(wait_until(120s,
                           [&] {
                             auto hosts = get_json("/api/v1/hosts")["hosts"];
                             return hosts.size() == 1 && hosts[0]["state"] == "up";
                           }))
        << get_json("/api/v1/hosts").dump() << slurp(log);
  }

  void TearDown() override {
    if (pid_ > 0) {
      for (const char* vm : {"lv1", "app", "gz"}) {
        http_request(base_, "DELETE", std::string("/api/v1/vms/") + vm, "", token_);
      }
      wait_until(30s, [&] { return get_json("/api/v1/vms")["vms"].empty(); });
      kill(pid_, SIGTERM);
      int st = 0;
      waitpid(pid_, &st, 0);
    }
    if (!dir_.empty() && !HasFailure()) fs::remove_all(dir_);
  }

  json get_json(const std::string& path) {
    auto r = http_request(base_, "GET", path, "", token_);
    if (!r) return json::object();
    auto j = json::parse(r->body, nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }

  ProcessResult strata(std::vector<std::string> args) {
    std::vector<std::string> argv = {cli_, "--server", base_, "--token", token_};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions o;
    o.timeout = 300s;
    auto r = run_process(argv, o);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : ProcessResult{};
  }

  static void run(const std::vector<std::string>& argv) {
    auto r = run_checked(argv);
    ASSERT_TRUE(r) << r.error().to_string();
  }

  // Guest-visible content equal (through the host overlay's backing chain).
  static std::string compare(const std::string& src, const std::string& src_fmt,
                             const std::string& dst) {
    auto r = run_process({"qemu-img", "compare", "-f", src_fmt, "-F", "qcow2", src, dst});
    if (!r) return r.error().to_string();
    return r->exit_code == 0 ? "identical" : r->out + r->err;
  }

  std::string host_disk(const std::string& vm, const std::string& disk) {
    return (dir_ / "data" / "images" / "vms" / vm / (disk + ".qcow2")).string();
  }

  std::string cli_;
  fs::path dir_;
  pid_t pid_ = -1;
  std::string base_, token_;
};

TEST_F(ImportE2e, LibvirtDomainWithQcow2AndRawDisks) {
  fs::path src = dir_ / "src";
  std::string root = (src / "lv1-root.qcow2").string(), data = (src / "lv1-data.img").string();
  run({"qemu-img", "create", "-q", "-f", "qcow2", root, "8M"});
  run({"qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", "-c", "write -P 0xa5 6M 64k", root});
  run({"qemu-img", "create", "-q", "-f", "raw", data, "4M"});
  run({"qemu-io", "-f", "raw", "-c", "write -P 0x33 1M 512k", data});
  // As `virsh dumpxml` writes it; the data disk is named by a path relative to the XML.
  spit(src / "lv1.xml", R"(<domain type='kvm'>
  <name>lv1</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <memory unit='KiB'>131072</memory>
  <vcpu placement='static'>2</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><boot dev='hd'/></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file=')" + root +
                            R"('/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='lv1-data.img'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/srv/isos/installer.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:12:34:56'/>
      <source network='default'/>
    </interface>
  </devices>
</domain>)");
  auto r = strata({"vm", "import", (src / "lv1.xml").string(), "--wait", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << slurp((dir_ / "stratad.log").string());
  auto out = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(out.is_discarded()) << r.out;
  EXPECT_EQ(out["vm"]["name"], "lv1");
  EXPECT_EQ(out["task"]["state"], "succeeded") << out.dump();
  std::string unmapped = out["unmapped"].dump();
  EXPECT_NE(unmapped.find("cdrom"), std::string::npos) << unmapped;
  EXPECT_NE(unmapped.find("network \\\"default\\\""), std::string::npos) << unmapped;

  auto vm = get_json("/api/v1/vms/lv1")["spec"];
  EXPECT_EQ(vm["vcpus"], 2) << vm.dump();
  EXPECT_EQ(vm["memory_mib"], 128) << vm.dump();
  ASSERT_EQ(vm["disks"].size(), 2u) << vm.dump();
  EXPECT_EQ(vm["disks"][0]["name"], "vda");
  EXPECT_EQ(vm["disks"][0]["image"], "lv1-vda");
  EXPECT_EQ(vm["disks"][0]["boot"], true);
  EXPECT_EQ(vm["disks"][1]["name"], "vdb");
  EXPECT_EQ(vm["disks"][1]["image"], "lv1-vdb");
  ASSERT_EQ(vm["nics"].size(), 1u) << vm.dump();
  EXPECT_EQ(vm["nics"][0]["mac"], "52:54:00:12:34:56");
  EXPECT_EQ(get_json("/api/v1/images/lv1-vda")["format"], "qcow2");

  EXPECT_EQ(compare(root, "qcow2", host_disk("lv1", "vda")), "identical");
  EXPECT_EQ(compare(data, "raw", host_disk("lv1", "vdb")), "identical");
  // And a change on one side shows (the comparison can fail).
  run({"qemu-io", "-f", "raw", "-c", "write -P 0x01 0 4k", data});
  EXPECT_NE(compare(data, "raw", host_disk("lv1", "vdb")), "identical");
}

TEST_F(ImportE2e, OvaWithAVmdkMadeByQemuImg) {
  fs::path src = dir_ / "src", ova = dir_ / "ova";
  fs::create_directories(ova);
  std::string raw = (src / "app.raw").string(), vmdk = (ova / "app-disk1.vmdk").string();
  run({"qemu-img", "create", "-q", "-f", "raw", raw, "16M"});
  run({"qemu-io", "-f", "raw", "-c", "write -P 0x77 0 2M", "-c", "write -P 0x99 15M 1M", raw});
  run({"qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk", raw, vmdk});
  spit(ova / "app.ovf", R"(<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="app-disk1.vmdk" ovf:id="file1"/></References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:capacity="32" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1"
      ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#sparse"/>
  </DiskSection>
  <VirtualSystem ovf:id="app"><Info>A VM</Info><Name>app</Name>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>192</rasd:VirtualQuantity></Item>
      <Item><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:Connection>VM Network</rasd:Connection><rasd:ResourceType>10</rasd:ResourceType></Item>
      <Item><rasd:ResourceType>15</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>)");
  std::string file = (dir_ / "app.ova").string();
  run({"tar", "-cf", file, "-C", ova.string(), "app.ovf", "app-disk1.vmdk"});
  auto r = strata({"vm", "import", file, "--wait", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << slurp((dir_ / "stratad.log").string());
  auto out = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(out.is_discarded()) << r.out;
  EXPECT_EQ(out["task"]["state"], "succeeded") << out.dump();
  EXPECT_EQ(out["disks"][0]["source_format"], "vmdk");
  EXPECT_NE(out["unmapped"].dump().find("CD/DVD"), std::string::npos) << out.dump();
  auto vm = get_json("/api/v1/vms/app")["spec"];
  EXPECT_EQ(vm["vcpus"], 2) << vm.dump();
  EXPECT_EQ(vm["memory_mib"], 192);
  ASSERT_EQ(vm["disks"].size(), 1u) << vm.dump();
  EXPECT_EQ(vm["disks"][0]["image"], "app-disk0");
  // The OVF's capacity (32 MiB) beyond the VMDK's 16 MiB grows the overlay.
  EXPECT_EQ(vm["disks"][0]["size_bytes"], 32 << 20) << vm.dump();
  EXPECT_EQ(compare(vmdk, "vmdk", host_disk("app", "disk0")), "identical");
}

// An OVA whose disk file is gzip-compressed (ovf:compression="gzip", as ovftool --compress
// writes), in two gzip members: inflated while it is copied out, then converted; the CLI
// shows the conversion's progress from the import's task; the answer names it, ended.
TEST_F(ImportE2e, OvaWithAGzipCompressedDisk) {
  fs::path src = dir_ / "src", ova = dir_ / "gz-ova";
  fs::create_directories(ova);
  std::string raw = (src / "gz.raw").string(), vmdk = (src / "gz.vmdk").string();
  run({"qemu-img", "create", "-q", "-f", "raw", raw, "8M"});
  run({"qemu-io", "-f", "raw", "-c", "write -P 0x3c 1M 1M", raw});
  run({"qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
       raw, vmdk});
  // Two gzip members, concatenated: the half of the file each.
  std::string bytes = slurp(vmdk);
  spit(src / "a", bytes.substr(0, bytes.size() / 2));
  spit(src / "b", bytes.substr(bytes.size() / 2));
  run({"gzip", "-n", (src / "a").string(), (src / "b").string()});
  spit(ova / "gz-disk1.vmdk.gz", slurp((src / "a.gz").string()) + slurp((src / "b.gz").string()));
  spit(ova / "gz.ovf",
       "<Envelope xmlns:ovf='o' xmlns:rasd='r'><References><File ovf:id='f1' "
       "ovf:href='gz-disk1.vmdk.gz' ovf:compression='gzip'/></References><DiskSection>"
       "<Disk ovf:diskId='d1' ovf:fileRef='f1' ovf:capacity='8' ovf:capacityAllocationUnits="
       "'byte * 2^20' ovf:format='http://www.vmware.com/interfaces/specifications/"
       "vmdk.html#streamOptimized'/></DiskSection><VirtualSystem ovf:id='gz'><Name>gz</Name>"
       "<VirtualHardwareSection><Item><rasd:ResourceType>4</rasd:ResourceType>"
       "<rasd:VirtualQuantity>64</rasd:VirtualQuantity></Item><Item><rasd:ResourceType>17"
       "</rasd:ResourceType><rasd:HostResource>ovf:/disk/d1</rasd:HostResource></Item>"
       "</VirtualHardwareSection></VirtualSystem></Envelope>");
  std::string file = (dir_ / "gz.ova").string();
  run({"tar", "-cf", file, "-C", ova.string(), "gz.ovf", "gz-disk1.vmdk.gz"});
  spit(dir_ / "slow", "");  // the conversion takes 3 s: the CLI shows its progress
  auto r = strata({"vm", "import", file, "--wait", "-o", "json"});
  fs::remove(dir_ / "slow");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << slurp((dir_ / "stratad.log").string());
  EXPECT_NE(r.err.find("converting disk disk0 (vmdk to qcow2)"), std::string::npos) << r.err;
  auto out = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(out.is_discarded()) << r.out;
  EXPECT_EQ(out["disks"][0]["source_format"], "vmdk") << out.dump();
  EXPECT_EQ(out["import_task"]["kind"], "vm.import") << out.dump();
  EXPECT_EQ(out["import_task"]["state"], "succeeded") << out.dump();
  EXPECT_EQ(out["import_task"]["progress"], 100) << out.dump();
  auto task = get_json("/api/v1/tasks/" + out["import_task"]["id"].get<std::string>());
  EXPECT_EQ(task["state"], "succeeded") << task.dump();
  EXPECT_EQ(compare(raw, "raw", host_disk("gz", "disk0")), "identical");
}

TEST_F(ImportE2e, HostileArchivesAreRefusedNamingTheFieldAndLeaveNothing) {
  fs::path src = dir_ / "src";
  // A qcow2 whose backing file is a host file the uploader chose.
  std::string evil = (src / "evil.qcow2").string();
  run({"qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/etc/hostname", evil, "1M"});
  spit(src / "evil.xml",
       "<domain type='kvm'><name>evil</name><memory unit='MiB'>64</memory>"
       "<devices><disk type='file' device='disk'><driver type='qcow2'/>"
       "<source file='" +
           evil + "'/><target dev='vda'/></disk></devices></domain>");
  auto r = strata({"vm", "import", (src / "evil.xml").string(), "-o", "json"});
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("backing"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("descriptor.disks[0]"), std::string::npos) << r.err;

  // An OVF whose disk file climbs out of the archive.
  fs::path ova = dir_ / "evil-ova";
  fs::create_directories(ova);
  spit(ova / "x.ovf",
       "<Envelope xmlns:ovf='o' xmlns:rasd='r'><References><File ovf:id='f' "
       "ovf:href='../../etc/passwd'/></References><VirtualSystem ovf:id='x'>"
       "<VirtualHardwareSection><Item><rasd:ResourceType>4</rasd:ResourceType>"
       "<rasd:VirtualQuantity>64</rasd:VirtualQuantity></Item>"
       "</VirtualHardwareSection></VirtualSystem></Envelope>");
  run({"tar", "-cf", (dir_ / "x.ova").string(), "-C", ova.string(), "x.ovf"});
  r = strata({"vm", "import", (dir_ / "x.ova").string(), "--name", "x", "-o", "json"});
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("descriptor.References.File[0].href"), std::string::npos) << r.err;

  EXPECT_TRUE(get_json("/api/v1/vms")["vms"].empty()) << get_json("/api/v1/vms").dump();
  EXPECT_TRUE(get_json("/api/v1/images")["images"].empty()) << get_json("/api/v1/images").dump();
  // Nothing left in the work folder either.
  size_t left = 0;
  for ([[maybe_unused]] const auto& e :
       fs::directory_iterator(dir_ / "data" / "catalog" / "uploads"))
    ++left;
  EXPECT_EQ(left, 0u);
}

}  // namespace
}  // namespace strata::manager
