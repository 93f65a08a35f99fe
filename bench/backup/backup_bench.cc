// Backup benchmark (docs/internals/backup.md): a tiny TCG guest whose 1 GiB disk is filled
// with random data (an overlay on a random base image made on the host), backed up full,
// then 5 % rewritten by the guest in 4 MiB extents aligned to the chunk size, backed up
// incrementally, and restored; each against its floor, measured in the same run:
//   full         vs `qemu-img convert -U -t writeback -O qcow2` of the same disk (the same
//                chain, flushed at the end as a backup is; the unflushed default too)
//   incremental  bytes stored vs bytes changed; time vs a plain copy of only the changed
//                extents (read through qemu-nbd, written to a file)
//   restore      vs `qemu-img convert -t writeback -O qcow2` of the full copy into a new
//                image (and unflushed)
// Ends with: backup: full/qemu_img=R1 incremental_bytes/changed_bytes=R2 restore/qemu_img=R3
// Usage: backup_bench --shim PATH [--work DIR] [--size-mib N] [--changed-pct P]
#include <fcntl.h>
#include <libnbd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "qemu_hypervisor.h"
#include "strata/agent/image_store.h"
#include "strata/agent/qemu_hypervisor.h"
#include "strata/agent/qemu_user.h"
#include "strata/common/log.h"
#include "strata/common/process.h"
#include "strata/common/sha256.h"

namespace fs = std::filesystem;
using namespace strata;
using namespace strata::agent;
using namespace std::chrono_literals;
constexpr uint64_t MiB = 1 << 20;
constexpr uint64_t kChunk = 4 * MiB;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "backup bench: %s\n", what.c_str());
  std::exit(1);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void must(const Result<std::string>& r, const std::string& what) {
  if (!r) die(what + ": " + r.error().to_string());
}

std::map<std::string, std::string> manifest(const std::string& dir) {
  std::map<std::string, std::string> m;
  std::ifstream in(dir + "/manifest.env");
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    std::string v = line.substr(eq + 1);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    m[line.substr(0, eq)] = v;
  }
  return m;
}

std::string sha_of_image(const std::string& path, const std::string& tmp) {
  must(run_checked({"qemu-img", "convert", "-U", "-O", "raw", path, tmp}), "convert " + path);
  auto h = sha256_file(tmp);
  fs::remove(tmp);
  if (!h) die(h.error().to_string());
  return *h;
}

// The floor of an incremental: read only the changed extents (qemu-nbd, read-only,
// sharing the image with the running QEMU) and write them to a file.
double plain_copy(const std::string& image, const std::vector<uint64_t>& chunks,
                  const std::string& out) {
  auto t0 = std::chrono::steady_clock::now();
  nbd_handle* h = nbd_create();
  std::vector<std::string> args = {
      "qemu-nbd", "-r", "--image-opts",
      "driver=qcow2,force-share=on,read-only=on,file.driver=file,file.filename=" + image};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (!h || nbd_connect_systemd_socket_activation(h, argv.data()) == -1)
    die(std::string("qemu-nbd: ") + nbd_get_error());
  int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char> buf(kChunk);
  for (auto c : chunks) {
    if (nbd_pread(h, buf.data(), kChunk, c * kChunk, 0) == -1) die(nbd_get_error());
    if (::pwrite(fd, buf.data(), kChunk, static_cast<off_t>(c * kChunk)) !=
        static_cast<ssize_t>(kChunk))
      die("pwrite");
  }
  ::fdatasync(fd);
  ::close(fd);
  nbd_shutdown(h, 0);
  nbd_close(h);
  return seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string shim, work = "/var/tmp/strata-bench-backup";
  uint64_t size_mib = 1024;
  double pct = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--shim")
      shim = v;
    else if (k == "--work")
      work = v;
    else if (k == "--size-mib")
      size_mib = std::stoull(v);
    else if (k == "--changed-pct")
      pct = std::stod(v);
    else
      die("unknown option " + k);
  }
  if (shim.empty()) die("--shim PATH (the strata-shim binary) is required");
  const char* env = std::getenv("STRATA_IMAGES");
  auto m = manifest(env && *env ? env : ".cache/images");
  if (!m.count("TINY_KERNEL")) die("tiny guest images missing (scripts/guest-images tiny)");
  if (!std::getenv("BENCH_VERBOSE")) strata::logger("agent.qemu")->set_level(spdlog::level::warn);
  strata::logger("agent.storage")->set_level(spdlog::level::warn);
  fs::remove_all(work);
  fs::create_directories(work + "/repo");
  const uint64_t size = size_mib * MiB;

  // A random base image (host-made: the guest would take minutes under TCG).
  {
    std::ofstream raw(work + "/rand.raw", std::ios::binary);
    std::mt19937_64 rng(42);
    std::vector<uint64_t> buf(MiB / 8);
    for (uint64_t i = 0; i < size_mib; ++i) {
      for (auto& w : buf) w = rng();
      raw.write(reinterpret_cast<const char*>(buf.data()), MiB);
    }
  }
  must(
      run_checked({"qemu-img", "convert", "-O", "qcow2", work + "/rand.raw", work + "/rand.qcow2"}),
      "base");
  fs::remove(work + "/rand.raw");
  auto store = make_image_store(work + "/img");
  if (!store) die(store.error().to_string());
  for (auto [name, path] : {std::pair<std::string, std::string>{"k", m["TINY_KERNEL"]},
                            {"i", m["TINY_INITRD"]},
                            {"rand", work + "/rand.qcow2"}})
    if (auto r = (*store)->import_image(name, path); !r) die(r.error().to_string());
  fs::remove(work + "/rand.qcow2");

  QemuOptions o;
  o.state_dir = work + "/state";
  o.accelerator = "tcg";
  o.images = store->get();
  o.shim_exe = shim;
  auto user = decide_qemu_user(std::nullopt, ::geteuid(), lookup_system_user);
  if (!user) die(user.error().to_string());
  o.run_as = user->user;
  auto made = make_qemu_hypervisor(std::move(o));
  if (!made) die(made.error().to_string());
  HypervisorPtr hv = std::move(*made);

  model::VmSpec spec;
  spec.name = "bench";
  spec.memory_mib = 256;
  spec.kernel_boot = model::KernelBoot{"k", "i", m["TINY_CMDLINE"]};
  spec.disks.push_back({"root", "rand", 0, false, false, "", ""});
  if (auto r = hv->define(spec); !r) die(r.error().to_string());
  if (auto r = hv->start("bench"); !r) die(r.error().to_string());
  auto tail = [&] {
    auto t = hv->console_tail("bench", 1 << 20);
    return t ? *t : std::string();
  };
  auto wait_text = [&](const std::string& s, const std::string& cmd) {
    for (int i = 0; i < 600; ++i) {
      if (tail().find(s) != std::string::npos) return;
      if (!cmd.empty() && i % 50 == 0) (void)hv->console_write("bench", cmd + "\n");
      std::this_thread::sleep_for(100ms);
    }
    die("guest never printed " + s);
  };
  wait_text("STRATA-READY", "");
  // A VM in service: the agent's guest-facts poll (every 5 s) has found it has no guest
  // agent, so backups skip their own 1.5 s probe (docs/internals/backup.md).
  std::this_thread::sleep_for(12s);
  auto disk = (*store)->disk_info("bench", "root");
  if (!disk) die(disk.error().to_string());
  const std::string repo = work + "/repo";

  // Warm the page cache, then the floors, Strata's full, the floors again. Two floors:
  // qemu-img convert's default target cache is "unsafe" (the copy is left in the page
  // cache, never flushed); with -t writeback it flushes at the end, as a backup must
  // before it reports success (Strata's chunks are fdatasync'ed at commit). R1 and R3
  // are against the flushed copy; the unflushed ratios are printed too. Each unflushed
  // copy is synced afterwards (not timed) so its writeback does not land in the next
  // measurement.
  (void)sha_of_image(disk->path, work + "/warm.raw");
  auto convert = [&](const std::string& from, const std::string& to, bool flushed, bool shared) {
    fs::remove(to);
    ::sync();
    std::vector<std::string> argv = {"qemu-img", "convert"};
    if (shared) argv.push_back("-U");
    if (flushed) argv.insert(argv.end(), {"-t", "writeback"});
    argv.insert(argv.end(), {"-O", "qcow2", from, to});
    auto t = std::chrono::steady_clock::now();
    must(run_checked(argv), "floor " + to);
    double secs = seconds_since(t);
    ::sync();
    return secs;
  };
  double floor_full_unflushed = convert(disk->path, work + "/floor.qcow2", false, true);
  double floor_full = convert(disk->path, work + "/floor.qcow2", true, true);
  ::sync();
  auto t0 = std::chrono::steady_clock::now();
  auto full = hv->backup("bench", BackupRequest{repo, "full1", false, ""});
  double strata_full = seconds_since(t0);
  if (!full) die(full.error().to_string());
  floor_full_unflushed =
      (floor_full_unflushed + convert(disk->path, work + "/floor.qcow2", false, true)) / 2;
  floor_full = (floor_full + convert(disk->path, work + "/floor.qcow2", true, true)) / 2;

  // pct % of the disk rewritten by the guest, in chunk-aligned 4 MiB extents spread over it.
  const uint64_t nchunks = size / kChunk;
  const uint64_t nchanged = std::max<uint64_t>(1, static_cast<uint64_t>(nchunks * pct / 100 + 0.5));
  std::vector<uint64_t> changed;
  std::string list;
  for (uint64_t i = 0; i < nchanged; ++i) {
    changed.push_back((i * nchunks) / nchanged);
    list += " " + std::to_string(changed.back());
  }
  std::string cmd = "for i in" + list +
                    "; do dd if=/dev/urandom of=/dev/vda bs=4M seek=$i count=1 conv=fsync "
                    "2>/dev/null; done; echo CHG-$((6*7))-DONE";
  wait_text("CHG-42-DONE", cmd);
  const uint64_t changed_bytes = nchanged * kChunk;

  t0 = std::chrono::steady_clock::now();
  auto inc = hv->backup("bench", BackupRequest{repo, "inc1", false, ""});
  double strata_inc = seconds_since(t0);
  if (!inc) die(inc.error().to_string());
  if (inc->kind != "incremental") die("second backup was " + inc->kind + ": " + inc->full_reason);
  double floor_inc = plain_copy(disk->path, changed, work + "/changed.bin");
  const std::string sha_now = sha_of_image(disk->path, work + "/sha.raw");

  // Restore into a new VM's blank disk vs qemu-img convert of the full copy.
  model::VmSpec r = spec;
  r.name = "restored";
  r.disks[0] = {"root", "", size, false, false, "", ""};
  if (auto d = hv->define(r); !d) die(d.error().to_string());
  ::sync();
  t0 = std::chrono::steady_clock::now();
  auto rs = hv->restore_disks("restored", repo, "inc1", "");
  double strata_restore = seconds_since(t0);
  if (!rs) die(rs.error().to_string());
  double floor_restore_unflushed =
      convert(work + "/floor.qcow2", work + "/floor-restore.qcow2", false, false);
  double floor_restore = convert(work + "/floor.qcow2", work + "/floor-restore.qcow2", true, false);
  auto rdisk = (*store)->disk_info("restored", "root");
  if (!rdisk) die(rdisk.error().to_string());
  const bool same = sha_of_image(rdisk->path, work + "/sha.raw") == sha_now;

  (void)hv->force_off("bench");
  (void)hv->undefine("bench");
  (void)hv->undefine("restored");
  hv.reset();

  std::printf("disk %llu MiB random; changed %llu x 4 MiB chunk-aligned extents (%.1f %%)\n",
              static_cast<unsigned long long>(size_mib), static_cast<unsigned long long>(nchanged),
              100.0 * changed_bytes / size);
  std::printf(
      "full:        strata %.2f s (read %llu MiB, stored %llu MiB)  qemu-img convert %.2f s "
      "flushed, %.2f s unflushed\n",
      strata_full, static_cast<unsigned long long>(full->bytes_read / MiB),
      static_cast<unsigned long long>(full->bytes_new / MiB), floor_full, floor_full_unflushed);
  std::printf(
      "incremental: strata %.2f s (read %llu MiB, stored %llu MiB)  plain copy of the "
      "changed extents %.2f s\n",
      strata_inc, static_cast<unsigned long long>(inc->bytes_read / MiB),
      static_cast<unsigned long long>(inc->bytes_new / MiB), floor_inc);
  std::printf(
      "restore:     strata %.2f s  qemu-img convert %.2f s flushed, %.2f s unflushed  "
      "(restored disk %s)\n",
      strata_restore, floor_restore, floor_restore_unflushed, same ? "identical" : "DIFFERS");
  std::printf("unflushed floors: full/qemu_img_unflushed=%.2f restore/qemu_img_unflushed=%.2f\n",
              strata_full / floor_full_unflushed, strata_restore / floor_restore_unflushed);
  std::printf(
      "backup: full/qemu_img=%.2f incremental_bytes/changed_bytes=%.2f "
      "restore/qemu_img=%.2f\n",
      strata_full / floor_full, static_cast<double>(inc->bytes_new) / changed_bytes,
      strata_restore / floor_restore);
  fs::remove_all(work);
  return same ? 0 : 1;
}
