// Backups in the QEMU driver (docs/internals/backup.md): a running VM's disks read in pull
// mode — fleecing nodes (blockdev-backup sync=none), persistent dirty bitmaps, a read-only
// NBD export on a UNIX socket — into a chunk repository (strata/backup); a stopped VM's
// disks read offline (a private read-only qemu-nbd, the qcow2's own persistent bitmaps);
// and a stopped VM's disks restored from one. Every QMP call, qemu-img run and NBD read happens
// without mu_; the backup job (vm_job.h) keeps other jobs off the VM meanwhile.
#include <algorithm>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>

#include "qemu_access.h"
#include "qemu_hypervisor.h"
#include "strata/backup/disk_backup.h"
#include "strata/backup/nbd.h"
#include "strata/backup/repository.h"
#include "strata/common/atomic_file.h"
#include "strata/common/log.h"
#include "strata/common/process.h"
#include "vm_ops.h"

namespace strata::agent::qemu {

using model::VmState;
using namespace std::chrono_literals;

namespace {

// A poll of the guest facts (vm_guest_facts.cc) older than this that got no answer means
// the guest has no agent: the backup skips its own probe (kGuestAgentProbe) then.
constexpr std::chrono::seconds kNoAgentAfter{10};
// Our bitmaps are "strata-<backup id>"; anything else on a node is someone else's.
constexpr std::string_view kBitmapPrefix = "strata-";

std::string fleece_node(size_t i) { return "bkt" + std::to_string(i); }
std::string backup_job(size_t i) { return "bkj" + std::to_string(i); }
std::string export_id(size_t i) { return "bke" + std::to_string(i); }

// Removes what a backup puts into QEMU (exports, NBD server, fleecing jobs and nodes),
// whether this run or an earlier, killed agent put it there. Each step may find nothing.
void teardown_qemu(QemuMonitor& qmp, size_t disks) {
  for (size_t i = 0; i < disks; ++i) (void)qmp.block_export_del(export_id(i), kCmd);
  (void)qmp.nbd_server_stop(kCmd);
  for (size_t i = 0; i < disks; ++i) (void)qmp.block_job_cancel(backup_job(i), true, kCmd);
  // A cancelled job leaves query-block-jobs once it has dropped its copy-before-write filter;
  // only then can its target node go.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto jobs = qmp.query_block_jobs(kCmd);
    if (!jobs) break;
    bool ours = std::any_of(jobs->begin(), jobs->end(),
                            [](const BlockJobInfo& j) { return j.device.rfind("bkj", 0) == 0; });
    if (!ours) break;
    std::this_thread::sleep_for(20ms);
  }
  for (size_t i = 0; i < disks; ++i) (void)qmp.blockdev_del(fleece_node(i), kCmd);
}

}  // namespace

Result<ImageInfo> QemuHypervisor::active_disk_info(const std::string& name,
                                                   const model::VmSpec& spec,
                                                   const model::DiskSpec& d,
                                                   const SnapshotTree& tree) const {
  if (!d.datastore.empty()) {
    if (!opts_.datastores)
      return make_error(ErrorCode::failed_precondition, "disk " + d.name + " is on datastore " +
                                                            d.datastore +
                                                            ", which this host does not mount");
    auto info = opts_.datastores->disk_info(d.datastore, d.datastore_id, spec.uuid, d.name);
    if (!info) return tl::unexpected(info.error().wrap("disk " + d.name));
    return info;
  }
  auto a = tree.active.find(d.name);
  if (a == tree.active.end())
    return internal_error("snapshot record has no active file for disk " + d.name);
  return opts_.images->vm_file_info(name, a->second);
}

Result<BackupOutcome> QemuHypervisor::backup(const std::string& name, const BackupRequest& req,
                                             const BackupProgressCallback& progress) {
  if (auto s = backup::validate_backup_id(req.id); !s) return tl::unexpected(s.error());
  auto repo = backup::open_repository(req.repo, req.repo_key);
  if (!repo) return tl::unexpected(repo.error());
  auto log = logger("agent.qemu");

  std::string dir;
  model::VmSpec spec;
  std::shared_ptr<QemuMonitor> qmp;  // null: the VM is stopped, its disks are read offline
  VmState state;
  bool probe_agent = true;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    Vm& vm = **v;
    const bool offline = vm.rec.state == VmState::defined || vm.rec.state == VmState::stopped ||
                         vm.rec.state == VmState::crashed;
    if (!live(vm.rec.state) && !offline)
      return make_error(
          ErrorCode::failed_precondition,
          "VM " + name + " is " + model::to_string(vm.rec.state) + "; try again when it settles");
    if (live(vm.rec.state) && !vm.qmp)
      return unavailable("VM " + name +
                         "'s QMP monitor is not connected yet (re-attaching); retry");
    if (auto st = begin_job_locked(name, vm, VmJob::backup); !st) return tl::unexpected(st.error());
    dir = vm.dir;
    spec = vm.spec;
    qmp = offline ? nullptr : vm.qmp;
    state = vm.rec.state;
    // The facts poller first asked this run's guest long enough ago and has heard nothing
    // since: no agent. (The last ask is at most an interval old, so it cannot tell.)
    probe_agent = vm.guest.has_value() || !vm.guest_first_asked_at ||
                  opts_.clock->now() - *vm.guest_first_asked_at < kNoAgentAfter;
  }
  JobEnd end{this, name, VmJob::backup};

  if (spec.disks.empty())
    return make_error(ErrorCode::failed_precondition, "VM " + name + " has no disks");
  auto tree = load_snapshot_tree(name, dir, spec);
  if (!tree) return tl::unexpected(tree.error());
  auto lock = repo->lock_shared();
  if (!lock) return tl::unexpected(lock.error());

  const size_t n = spec.disks.size();
  // Each disk's active file, size and our bitmaps on it: QEMU's nodes when the VM runs
  // (`tops`: the node names), the qcow2's own persistent bitmaps when it is stopped.
  std::vector<std::string> files(n), formats(n), tops(n);
  std::vector<uint64_t> sizes(n);
  std::vector<std::vector<DirtyBitmapInfo>> bitmaps(n);
  std::optional<std::vector<BlockNodeInfo>> nodes;
  if (qmp) {
    teardown_qemu(*qmp, n);  // leftovers of a killed agent
    auto q = qmp->query_named_block_nodes(kCmd);
    if (!q) return tl::unexpected(q.error());
    nodes = std::move(*q);
  }
  for (size_t i = 0; i < n; ++i) {
    auto info = active_disk_info(name, spec, spec.disks[i], *tree);
    if (!info) return tl::unexpected(info.error());
    files[i] = info->path;
    sizes[i] = info->virtual_size;
    formats[i] = info->format;
    if (nodes) {
      const BlockNodeInfo* top = format_node(*nodes, files[i]);
      if (!top) return internal_error("QEMU has no node for " + files[i]);
      tops[i] = top->node_name;
      bitmaps[i] = top->dirty_bitmaps;
    } else {
      for (const auto& b : info->bitmaps)
        bitmaps[i].push_back({b.name, 0, b.granularity, b.recording, false, true, b.inconsistent});
    }
  }
  auto find_bitmap = [&](size_t i, const std::string& bitmap) -> const DirtyBitmapInfo* {
    for (const auto& b : bitmaps[i])
      if (b.name == bitmap) return &b;
    return nullptr;
  };

  // Full or incremental: decided from QEMU's bitmaps, never from memory.
  BackupOutcome out;
  out.id = req.id;
  std::optional<backup::Manifest> parent;
  std::string reason;
  if (req.full) {
    reason = "requested";
  } else {
    auto latest = repo->latest(name);
    if (!latest) return tl::unexpected(latest.error());
    if (!*latest)
      reason = "no earlier backup of the VM";
    else
      parent = **latest;
  }
  std::vector<std::string> parent_bitmap(n);
  if (parent) {
    for (size_t i = 0; i < n && reason.empty(); ++i) {
      const auto& dn = spec.disks[i].name;
      auto rec = std::find_if(parent->disks.begin(), parent->disks.end(),
                              [&](const backup::DiskRecord& r) { return r.name == dn; });
      if (rec == parent->disks.end() || rec->bitmap.empty()) {
        reason = "disk " + dn + " is not in backup " + parent->id;
        break;
      }
      const DirtyBitmapInfo* bm = find_bitmap(i, rec->bitmap);
      if (!bm)
        reason = "disk " + dn + " has no bitmap " + rec->bitmap +
                 " (a snapshot, revert or restore since, or a new disk)";
      else if (bm->inconsistent)
        reason = "disk " + dn + "'s bitmap is inconsistent (QEMU did not exit cleanly)";
      else if (!bm->recording)
        reason = "disk " + dn + "'s bitmap was not recording (an interrupted backup)";
      else if (!bm->persistent)
        reason = "disk " + dn + "'s bitmap is not persistent";
      else if (rec->size != sizes[i])
        reason = "disk " + dn + " changed size";
      parent_bitmap[i] = rec->bitmap;
    }
  }
  const bool incremental = parent && reason.empty();
  out.kind = incremental ? "incremental" : "full";
  out.full_reason = incremental ? "" : reason;
  if (incremental) out.parent = parent->id;
  const std::string new_bitmap = std::string(kBitmapPrefix) + req.id;

  // Stale bitmaps of ours cost the guest's writes and hold no trust: drop all but the
  // parent's (an inconsistent one can only be removed).
  auto remove_bitmap = [&](size_t i, const std::string& bitmap) -> Status {
    if (qmp) return qmp->block_dirty_bitmap_remove(tops[i], bitmap, kCmd);
    auto r = run_checked({"qemu-img", "bitmap", "--remove", files[i], bitmap});
    if (!r) return tl::unexpected(r.error());
    return {};
  };
  for (size_t i = 0; i < n; ++i)
    for (auto& b : bitmaps[i])
      if (b.name.rfind(kBitmapPrefix, 0) == 0 && !(incremental && b.name == parent_bitmap[i]))
        if (auto s = remove_bitmap(i, b.name); !s)
          return tl::unexpected(s.error().wrap("remove stale bitmap " + b.name));

  if (auto s = repo->begin_backup(req.id); !s) return tl::unexpected(s.error());

  backup::Manifest m;
  m.id = req.id;
  m.vm = name;
  m.created_unix_ms = wall_ms();
  m.kind = out.kind;
  m.parent = out.parent;
  uint64_t total = 0;
  for (auto sz : sizes) total += sz;
  backup::Repository::PendingChunks pending;  // this run's new chunks, named at commit
  // Reads every disk from `open(i)` (its NBD source) into the repository: the chunks, an
  // index per disk, the manifest's disk records.
  auto copy_disks =
      [&](const std::function<Result<std::unique_ptr<backup::NbdSource>>(size_t)>& open) -> Status {
    uint64_t before = 0;
    for (size_t i = 0; i < n; ++i) {
      const auto& dn = spec.disks[i].name;
      auto src = open(i);
      if (!src) return tl::unexpected(src.error());
      std::optional<backup::DiskIndex> pidx;
      if (incremental) {
        auto p = repo->read_index(parent->id, dn);
        if (!p) return tl::unexpected(p.error());
        pidx = std::move(*p);
      }
      auto r = backup::backup_disk(
          *repo, **src, dn, pidx ? &*pidx : nullptr, backup::kDefaultChunkSize,
          [&](uint64_t done, uint64_t) {
            if (progress) progress(before + done, total);
          },
          &pending);
      if (!r) return tl::unexpected(r.error());
      if (auto s = repo->write_index(req.id, r->index); !s) return s;
      before += sizes[i];
      m.disks.push_back({dn, sizes[i], new_bitmap, r->stats.bytes_read, r->stats.bytes_new,
                         r->stats.chunks_read, r->stats.zero_chunks});
      out.bytes_read += r->stats.bytes_read;
      out.bytes_new += r->stats.bytes_new;
    }
    out.disk_bytes = total;
    return {};
  };

  if (!qmp) {
    // A stopped VM: nothing writes its disks while the backup job holds it, so the files
    // are the backup point. A private read-only qemu-nbd serves each one (with the
    // parent's bitmap for an incremental); once the backup is committed the disk gets
    // the new bitmap (qemu-img bitmap --add: enabled, so the next QEMU records into it)
    // and the parent's goes. A failure before the commit changes nothing on the disks.
    auto failed = [&](const Error& e) -> Result<BackupOutcome> {
      for (auto& [tmp, final_path] : pending.renames) ::unlink(tmp.c_str());
      log->warn("backup failed vm={} id={} error={}", name, req.id, e.to_string());
      return tl::unexpected(e);
    };
    auto copied = copy_disks([&](size_t i) {
      return backup::NbdSource::serve_image("qemu-nbd", files[i], formats[i],
                                            incremental ? parent_bitmap[i] : "");
    });
    if (!copied) return failed(copied.error());
    if (auto s = repo->commit(m, &pending); !s) return failed(s.error());
    for (size_t i = 0; i < n; ++i) {
      // Without it the next backup is full, saying the disk has no bitmap: never wrong.
      if (auto r = run_checked({"qemu-img", "bitmap", "--add", files[i], new_bitmap}); !r)
        log->warn("add bitmap vm={} disk={} error={}", name, spec.disks[i].name, r.error().message);
      if (incremental)
        if (auto s = remove_bitmap(i, parent_bitmap[i]); !s)
          log->warn("remove bitmap vm={} bitmap={} error={}", name, parent_bitmap[i],
                    s.error().message);
    }
    if (progress) progress(total, total);
    log->info("backup vm={} id={} kind={} read={} new={} offline reason={}", name, req.id, out.kind,
              out.bytes_read, out.bytes_new, out.full_reason);
    return out;
  }

  // Fleecing targets: temp qcow2 files QEMU writes the old data into.
  VmFiles vfiles = vm_files(dir);
  std::vector<std::string> temps(n);
  auto remove_temps = [&] {
    for (auto& t : temps)
      if (!t.empty()) ::unlink(t.c_str());
  };
  for (size_t i = 0; i < n; ++i) {
    temps[i] = vfiles.run_dir + "/backup-" + std::to_string(i) + ".qcow2";
    ::unlink(temps[i].c_str());
    auto r = run_checked(
        {"qemu-img", "create", "-q", "-f", "qcow2", temps[i], std::to_string(sizes[i])});
    if (!r) {
      remove_temps();
      return tl::unexpected(r.error().wrap("fleecing file"));
    }
  }
  if (auto s = prepare_qemu_access(dir, vfiles, temps, opts_.run_as); !s) {
    remove_temps();
    return tl::unexpected(s.error());
  }

  bool bitmaps_switched = false;
  // Undo on failure: QEMU's side, then the bitmaps as they were (the new bitmap's bits
  // merged back into the parent's, which records again), then the temp files.
  auto fail = [&](const Error& e) -> Result<BackupOutcome> {
    teardown_qemu(*qmp, n);
    if (bitmaps_switched)
      for (size_t i = 0; i < n; ++i) {
        if (incremental) {
          (void)qmp->block_dirty_bitmap_merge(tops[i], parent_bitmap[i], {new_bitmap}, kCmd);
          (void)qmp->block_dirty_bitmap_enable(tops[i], parent_bitmap[i], kCmd);
        }
        (void)qmp->block_dirty_bitmap_remove(tops[i], new_bitmap, kCmd);
      }
    remove_temps();
    for (auto& [tmp, final_path] : pending.renames) ::unlink(tmp.c_str());
    log->warn("backup failed vm={} id={} error={}", name, req.id, e.to_string());
    return tl::unexpected(e);
  };

  for (size_t i = 0; i < n; ++i)
    if (auto s = qmp->blockdev_add_qcow2_fleece(fleece_node(i), temps[i], tops[i], kCmd); !s)
      return fail(s.error().wrap("fleecing node"));

  // The backup point: every disk at one instant, the guest's filesystems frozen around it.
  bool frozen = false;
  if (state == VmState::running && probe_agent &&
      guest_agent(name, R"({"execute":"guest-ping"})", kGuestAgentProbe)) {
    if (auto f = guest_agent(name, R"({"execute":"guest-fsfreeze-freeze"})", kFreezeTimeout))
      frozen = true;
    else
      log->warn("fsfreeze failed vm={} error={}; backup is crash-consistent", name,
                f.error().message);
  }
  std::vector<TransactionAction> tx;
  for (size_t i = 0; i < n; ++i) {
    tx.push_back({TransactionAction::Kind::blockdev_backup, tops[i], backup_job(i), fleece_node(i),
                  "none", false});
    tx.push_back({TransactionAction::Kind::bitmap_add, tops[i], new_bitmap, "", "", true});
    if (incremental)
      tx.push_back(
          {TransactionAction::Kind::bitmap_disable, tops[i], parent_bitmap[i], "", "", false});
  }
  auto switched = qmp->transaction(tx, kCmd);
  if (frozen)
    if (auto r = guest_agent(name, R"({"execute":"guest-fsfreeze-thaw"})", kFreezeTimeout); !r)
      log->error("fsfreeze thaw failed vm={} error={}", name, r.error().message);
  if (!switched) return fail(switched.error().wrap("backup point"));
  bitmaps_switched = true;
  out.frozen = frozen;

  if (auto s = qmp->nbd_server_start_unix(vfiles.run_dir + "/backup.nbd", kCmd); !s)
    return fail(s.error().wrap("NBD server"));
  for (size_t i = 0; i < n; ++i) {
    std::vector<std::string> bms;
    if (incremental) bms.push_back(parent_bitmap[i]);
    if (auto s = qmp->block_export_add_nbd_readonly(export_id(i), fleece_node(i),
                                                    spec.disks[i].name, bms, kCmd);
        !s)
      return fail(s.error().wrap("NBD export"));
  }

  m.frozen = frozen;
  if (auto copied = copy_disks([&](size_t i) {
        return backup::NbdSource::connect_unix(vfiles.run_dir + "/backup.nbd", spec.disks[i].name,
                                               incremental ? parent_bitmap[i] : "");
      });
      !copied)
    return fail(copied.error());

  teardown_qemu(*qmp, n);
  remove_temps();
  if (auto s = repo->commit(m, &pending); !s) return fail(s.error());
  // The parent's bitmap is now superseded by the new one.
  if (incremental)
    for (size_t i = 0; i < n; ++i)
      if (auto s = qmp->block_dirty_bitmap_remove(tops[i], parent_bitmap[i], kCmd); !s)
        log->warn("remove bitmap vm={} bitmap={} error={}", name, parent_bitmap[i],
                  s.error().message);
  if (progress) progress(total, total);
  log->info("backup vm={} id={} kind={} read={} new={} frozen={} reason={}", name, req.id, out.kind,
            out.bytes_read, out.bytes_new, frozen, out.full_reason);
  return out;
}

Status QemuHypervisor::restore_disks(const std::string& name, const std::string& repo_root,
                                     const std::string& backup_id, const std::string& repo_key,
                                     const BackupProgressCallback& progress) {
  auto repo = backup::open_repository(repo_root, repo_key);
  if (!repo) return tl::unexpected(repo.error());
  auto m = repo->read_manifest(backup_id);
  if (!m) return tl::unexpected(m.error());
  std::string dir;
  model::VmSpec spec;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    Vm& vm = **v;
    if (!offline(vm.rec.state))
      return make_error(ErrorCode::failed_precondition,
                        "VM " + name + " is " + model::to_string(vm.rec.state) +
                            "; stop it first: disks are restored on a stopped VM");
    if (auto st = begin_job_locked(name, vm, VmJob::backup); !st) return st;
    dir = vm.dir;
    spec = vm.spec;
  }
  JobEnd end{this, name, VmJob::backup};
  if (has_snapshots(dir))
    return make_error(ErrorCode::failed_precondition,
                      "VM " + name + " has snapshots; delete them before restoring its disks");
  uint64_t total = 0, before = 0;
  for (auto& d : m->disks) total += d.size;
  for (auto& d : spec.disks) {
    auto rec = std::find_if(m->disks.begin(), m->disks.end(),
                            [&](const backup::DiskRecord& r) { return r.name == d.name; });
    if (rec == m->disks.end()) continue;
    auto idx = repo->read_index(backup_id, d.name);
    if (!idx) return tl::unexpected(idx.error());
    // The disk where the VM keeps it: its datastore (shared storage stays shared), else
    // the host's image store.
    auto info = resolve_disk(name, spec, d, nullptr);
    if (!info) return tl::unexpected(info.error());
    // A new self-contained qcow2 beside the disk, renamed over it once complete (on a
    // datastore named as the disks being made there: .tmp-*).
    std::string tmp = d.datastore.empty() ? info->path + ".restore"
                                          : info->path.substr(0, info->path.rfind('/') + 1) +
                                                ".tmp-restore-" + d.name + ".qcow2";
    ::unlink(tmp.c_str());
    if (auto r = run_checked(
            {"qemu-img", "create", "-q", "-f", "qcow2", tmp, std::to_string(idx->size)});
        !r)
      return tl::unexpected(r.error());
    Status st;
    {
      auto sink = backup::NbdImageSink::open("qemu-nbd", tmp, "qcow2");
      if (!sink)
        st = tl::unexpected(sink.error());
      else
        st = backup::restore_disk(*repo, *idx, **sink, [&](uint64_t done, uint64_t) {
          if (progress) progress(before + done, total);
        });
    }
    if (st) st = rename_durable(tmp, info->path);
    if (!st) {
      ::unlink(tmp.c_str());
      return tl::unexpected(st.error().wrap("restore disk " + d.name));
    }
    before += idx->size;
  }
  if (progress) progress(total, total);
  return {};
}

}  // namespace strata::agent::qemu
