// Disk snapshots in the QEMU driver: external qcow2 overlays, a tree recorded in the VM's
// state folder (snapshots.h). A running VM switches to a new overlay through QMP
// (blockdev-add + blockdev-snapshot) and merges with block-stream; a stopped VM's files are
// made and merged with qemu-img through the image store. Every QMP call and qemu-img run
// happens without mu_; the snapshot job (vm_job.h) keeps other jobs off the VM meanwhile.
// Design and reasoning: docs/internals/qemu-driver.md, "Snapshots".
#include <algorithm>
#include <thread>

#include "qemu_access.h"
#include "qemu_hypervisor.h"
#include "snapshots.h"
#include "strata/common/log.h"
#include "strata/model/validation.h"
#include "vm_ops.h"

namespace strata::agent::qemu {

using model::VmState;
using namespace std::chrono_literals;

namespace {

SnapshotInfo to_info(const SnapshotTree& t, const SnapshotRecord& r) {
  return SnapshotInfo{r.name,        r.parent,   r.created_unix_ms,
                      r.consistency, r.vm_state, t.current == r.name};
}

}  // namespace

bool has_snapshots(const std::string& vm_dir) {
  auto t = read_snapshot_tree(vm_dir);
  return t && !t->empty();
}

Result<QemuHypervisor::SnapshotJob> QemuHypervisor::begin_snapshot_job(const std::string& name,
                                                                       bool need_offline) {
  std::lock_guard lk(mu_);
  auto v = find_locked(name);
  if (!v) return tl::unexpected(v.error());
  Vm& vm = **v;
  VmState s = vm.rec.state;
  if (need_offline && !offline(s))
    return make_error(ErrorCode::failed_precondition,
                      "VM " + name + " is " + model::to_string(s) +
                          "; stop it first: a disk-only snapshot is reverted on a stopped VM");
  if (!live(s) && !offline(s))
    return make_error(ErrorCode::failed_precondition,
                      "VM " + name + " is " + model::to_string(s) + "; try again when it settles");
  if (live(s) && !vm.qmp)
    return unavailable("VM " + name + " is " + model::to_string(s) +
                       " but its QMP monitor is not connected yet (re-attaching); retry");
  if (auto st = begin_job_locked(name, vm, VmJob::snapshot); !st) return tl::unexpected(st.error());
  return SnapshotJob{vm.dir, vm.spec, s, live(s) ? vm.qmp : nullptr};
}

Result<SnapshotTree> QemuHypervisor::load_snapshot_tree(const std::string& name,
                                                        const std::string& dir,
                                                        const model::VmSpec& spec) const {
  auto t = read_snapshot_tree(dir);
  if (t || t.error().code != ErrorCode::not_found) return t;
  // No snapshot was ever taken: the active files are the store's disks.
  SnapshotTree fresh;
  if (!opts_.images && !spec.disks.empty())
    return make_error(ErrorCode::failed_precondition, "no image store configured");
  for (auto& d : spec.disks) {
    if (!d.datastore.empty()) continue;
    auto info = opts_.images->disk_info(name, d.name);
    if (!info) return tl::unexpected(info.error().wrap("disk " + d.name));
    fresh.active[d.name] = info->path;
  }
  return fresh;
}

Result<SnapshotInfo> QemuHypervisor::snapshot_create(const std::string& name,
                                                     const std::string& snap) {
  if (auto s = model::validate_name("snapshot", snap); !s) return tl::unexpected(s.error());
  auto job = begin_snapshot_job(name, false);
  if (!job) return tl::unexpected(job.error());
  JobEnd end{this, name, VmJob::snapshot};
  auto tree = load_snapshot_tree(name, job->dir, job->spec);
  if (!tree) return tl::unexpected(tree.error());
  if (tree->find(snap))
    return make_error(ErrorCode::already_exists, "VM " + name + " has a snapshot named " + snap);
  if (job->spec.disks.empty())
    return make_error(ErrorCode::failed_precondition, "VM " + name + " has no disks");
  for (auto& d : job->spec.disks)
    if (!d.datastore.empty())
      return make_error(ErrorCode::failed_precondition,
                        "VM " + name + " has disk " + d.name + " on datastore " + d.datastore +
                            "; snapshots of datastore disks are not supported yet");
  auto log = logger("agent.qemu");

  // Consistency: freeze the guest's filesystems when a guest agent answers.
  std::string consistency = "crash";
  bool frozen = false;
  if (job->state == VmState::running &&
      guest_agent(name, R"({"execute":"guest-ping"})", kGuestAgentProbe)) {
    if (auto f = guest_agent(name, R"({"execute":"guest-fsfreeze-freeze"})", kFreezeTimeout)) {
      frozen = true;
      consistency = "filesystem";
    } else {
      log->warn("fsfreeze failed vm={} error={}; snapshot is crash-consistent", name,
                f.error().message);
    }
  }
  struct Thaw {
    QemuHypervisor* self;
    const std::string& name;
    bool& frozen;
    ~Thaw() {
      if (frozen)
        if (auto r =
                self->guest_agent(name, R"({"execute":"guest-fsfreeze-thaw"})", kFreezeTimeout);
            !r)
          logger("agent.qemu")
              ->error("fsfreeze thaw failed vm={} error={}", name, r.error().message);
    }
  } thaw{this, name, frozen};

  // New overlays on the active files (-u: QEMU may hold them).
  std::string layer = "l" + std::to_string(tree->next_layer);
  std::map<std::string, std::string> made;
  auto undo_files = [&] {
    for (auto& [d, p] : made) (void)opts_.images->delete_vm_file(name, p);
  };
  for (auto& d : job->spec.disks) {
    auto info = opts_.images->create_layer(name, d.name, layer, tree->active[d.name]);
    if (!info) {
      undo_files();
      return tl::unexpected(info.error().wrap("snapshot overlay of disk " + d.name));
    }
    made[d.name] = info->path;
  }

  if (job->qmp) {
    std::vector<std::string> paths;
    for (auto& [d, p] : made) paths.push_back(p);
    if (auto s = prepare_qemu_access(job->dir, vm_files(job->dir), paths, opts_.run_as); !s) {
      undo_files();
      return tl::unexpected(s.error());
    }
    auto nodes = job->qmp->query_named_block_nodes(kCmd);
    if (!nodes) {
      undo_files();
      return tl::unexpected(nodes.error());
    }
    // Several disks switch while the vCPUs are stopped, so they are taken at one instant.
    bool paused_here = false;
    if (job->spec.disks.size() > 1 && job->state == VmState::running) {
      if (auto s = job->qmp->stop(kCmd); !s) {
        undo_files();
        return tl::unexpected(s.error());
      }
      paused_here = true;
    }
    Status switched;
    size_t done = 0;
    for (size_t i = 0; i < job->spec.disks.size() && switched; ++i) {
      const std::string& d = job->spec.disks[i].name;
      const BlockNodeInfo* top = format_node(*nodes, tree->active[d]);
      if (!top) {
        switched = internal_error("QEMU has no node for " + tree->active[d]);
        break;
      }
      std::string node = layer + "d" + std::to_string(i);
      if (auto s = job->qmp->blockdev_add_qcow2_overlay(node, made[d], kCmd); !s) {
        switched = tl::unexpected(s.error());
        break;
      }
      if (auto s = job->qmp->blockdev_snapshot(top->node_name, node, kCmd); !s) {
        (void)job->qmp->blockdev_del(node, kCmd);
        switched = tl::unexpected(s.error());
        break;
      }
      ++done;
    }
    if (paused_here)
      if (auto s = job->qmp->cont(kCmd); !s)
        log->error("resume after snapshot failed vm={} error={}", name, s.error().message);
    if (!switched) {
      if (done == 0) {
        undo_files();
        return tl::unexpected(switched.error().wrap("snapshot " + snap));
      }
      // Some disks already write to their new overlay: record them as the active files
      // (no snapshot), so a restart keeps what the guest wrote.
      for (size_t i = 0; i < done; ++i) {
        const std::string& d = job->spec.disks[i].name;
        tree->active[d] = made[d];
      }
      log->error("snapshot half-taken vm={} snapshot={} disks_switched={}", name, snap, done);
      return internal_error("snapshot " + snap + " of VM " + name + " failed after " +
                            std::to_string(done) +
                            " disk(s) switched: " + switched.error().message);
    }
  }

  SnapshotRecord rec;
  rec.name = snap;
  rec.parent = tree->current;
  rec.created_unix_ms = wall_ms();
  rec.consistency = consistency;
  rec.vm_state = model::to_string(job->state);
  rec.files = tree->active;
  tree->active = made;
  tree->current = snap;
  tree->next_layer++;
  tree->snapshots.push_back(rec);
  if (auto s = write_snapshot_tree(job->dir, *tree); !s) return tl::unexpected(s.error());
  log->info("snapshot created vm={} snapshot={} parent={} consistency={} live={}", name, snap,
            rec.parent, consistency, job->qmp != nullptr);
  return to_info(*tree, rec);
}

Result<std::vector<SnapshotInfo>> QemuHypervisor::snapshot_list(const std::string& name) const {
  std::string dir;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    dir = (*v)->dir;
  }
  auto tree = read_snapshot_tree(dir);
  if (!tree && tree.error().code == ErrorCode::not_found) return std::vector<SnapshotInfo>{};
  if (!tree) return tl::unexpected(tree.error());
  std::vector<SnapshotInfo> out;
  for (auto& r : tree->snapshots) out.push_back(to_info(*tree, r));
  return out;
}

Status QemuHypervisor::snapshot_revert(const std::string& name, const std::string& snap) {
  auto job = begin_snapshot_job(name, true);
  if (!job) return tl::unexpected(job.error());
  JobEnd end{this, name, VmJob::snapshot};
  auto tree = load_snapshot_tree(name, job->dir, job->spec);
  if (!tree) return tl::unexpected(tree.error());
  const SnapshotRecord* s = tree->find(snap);
  if (!s) return not_found("VM " + name + " has no snapshot named " + snap);
  // A fresh overlay on the snapshot's files: the snapshot itself stays as it was, so it can
  // be reverted to again.
  std::string layer = "l" + std::to_string(tree->next_layer);
  std::map<std::string, std::string> made;
  for (auto& d : job->spec.disks) {
    auto f = s->files.find(d.name);
    auto info =
        f == s->files.end()
            ? Result<ImageInfo>(internal_error("snapshot " + snap + " lacks disk " + d.name))
            : opts_.images->create_layer(name, d.name, layer, f->second);
    if (!info) {
      for (auto& [dn, p] : made) (void)opts_.images->delete_vm_file(name, p);
      return tl::unexpected(info.error().wrap("revert overlay of disk " + d.name));
    }
    made[d.name] = info->path;
  }
  auto old = tree->active;
  tree->active = made;
  tree->current = snap;
  tree->next_layer++;
  if (auto st = write_snapshot_tree(job->dir, *tree); !st) {
    for (auto& [dn, p] : made) (void)opts_.images->delete_vm_file(name, p);
    return st;
  }
  // The state since the last snapshot is dropped: no snapshot names those files.
  auto files = tree->all_files();
  for (auto& [d, p] : old)
    if (std::find(files.begin(), files.end(), p) == files.end())
      if (auto st = opts_.images->delete_vm_file(name, p); !st)
        logger("agent.qemu")
            ->warn("revert left a file vm={} path={} error={}", name, p, st.error().message);
  logger("agent.qemu")->info("snapshot reverted vm={} snapshot={}", name, snap);
  return {};
}

Status QemuHypervisor::snapshot_delete(const std::string& name, const std::string& snap,
                                       const SnapshotProgressCallback& progress) {
  auto job = begin_snapshot_job(name, false);
  if (!job) return tl::unexpected(job.error());
  JobEnd end{this, name, VmJob::snapshot};
  auto tree = load_snapshot_tree(name, job->dir, job->spec);
  if (!tree) return tl::unexpected(tree.error());
  const SnapshotRecord* sp = tree->find(snap);
  if (!sp) return not_found("VM " + name + " has no snapshot named " + snap);
  const SnapshotRecord s = *sp;
  const SnapshotRecord* parent = s.parent.empty() ? nullptr : tree->find(s.parent);
  auto log = logger("agent.qemu");

  // Per disk: the files that read through the snapshot's file (its children's files, and
  // the active file when it is current) are given the snapshot's backing instead, after
  // its data was copied into them (pull: block-stream / qemu-img rebase). Nothing that
  // reads through the snapshot changes what it reads.
  struct Merge {
    std::string disk, file, new_backing;
    bool in_qemu = false;
    uint64_t size = 0;
  };
  std::vector<Merge> merges;
  std::vector<std::string> graph;  // files QEMU has open (running VM)
  if (job->qmp) {
    for (auto& [d, p] : tree->active) graph.push_back(p);
    for (auto& a : tree->lineage(tree->current))
      for (auto& [d, p] : tree->find(a)->files) graph.push_back(p);
  }
  for (auto& d : job->spec.disks) {
    auto f = s.files.find(d.name);
    if (f == s.files.end()) return internal_error("snapshot " + snap + " lacks disk " + d.name);
    std::string backing;
    if (parent) {
      backing = parent->files.at(d.name);
    } else {
      auto info = opts_.images->vm_file_info(name, f->second);
      if (!info) return tl::unexpected(info.error());
      backing = info->backing_file;  // the disk's base image, or none
    }
    std::vector<std::string> dependents;
    for (auto& c : tree->children(snap)) dependents.push_back(tree->find(c)->files.at(d.name));
    if (tree->current == snap) dependents.push_back(tree->active.at(d.name));
    for (auto& dep : dependents) {
      Merge m{d.name, dep, backing, false, 0};
      m.in_qemu = std::find(graph.begin(), graph.end(), dep) != graph.end();
      if (auto info = opts_.images->vm_file_info(name, dep)) m.size = info->virtual_size;
      merges.push_back(m);
    }
  }
  uint64_t total = 0, done = 0;
  for (auto& m : merges) total += m.size;
  auto report = [&](uint64_t d) {
    if (progress) progress(std::min(d, total), total);
  };
  report(0);
  // Files QEMU holds first (block-stream), then the others (qemu-img): once the streams
  // end QEMU no longer opens the snapshot's file.
  std::stable_partition(merges.begin(), merges.end(), [](const Merge& m) { return m.in_qemu; });
  for (size_t k = 0; k < merges.size(); ++k) {
    const Merge& m = merges[k];
    if (m.in_qemu) {
      auto nodes = job->qmp->query_named_block_nodes(kCmd);
      if (!nodes) return tl::unexpected(nodes.error());
      const BlockNodeInfo* dev = format_node(*nodes, m.file);
      const BlockNodeInfo* base =
          m.new_backing.empty() ? nullptr : format_node(*nodes, m.new_backing);
      if (!dev || (!m.new_backing.empty() && !base))
        return internal_error("QEMU has no node for " + (dev ? m.new_backing : m.file));
      std::string job_id = "snapdel-" + std::to_string(k);
      {
        std::lock_guard lk(mu_);
        if (auto v = find_locked(name)) (*v)->job_errors.erase(job_id);
      }
      if (auto st =
              job->qmp->block_stream(job_id, dev->node_name, base ? base->node_name : "", kCmd);
          !st)
        return tl::unexpected(st.error().wrap("merging snapshot " + snap + " into " + m.file));
      for (;;) {
        auto jobs = job->qmp->query_block_jobs(kCmd);
        if (!jobs) return tl::unexpected(jobs.error().wrap("merging snapshot " + snap));
        auto j = std::find_if(jobs->begin(), jobs->end(),
                              [&](const BlockJobInfo& b) { return b.device == job_id; });
        if (j == jobs->end()) break;
        if (!j->error.empty())
          return make_error(ErrorCode::unavailable,
                            "merging snapshot " + snap + " failed: " + j->error);
        if (j->len > 0) report(done + m.size * j->offset / j->len);
        std::this_thread::sleep_for(kPoll);
      }
      std::string why;
      {
        std::lock_guard lk(mu_);
        if (auto v = find_locked(name))
          if (auto e = (*v)->job_errors.find(job_id); e != (*v)->job_errors.end()) why = e->second;
      }
      if (!why.empty())
        return make_error(ErrorCode::unavailable, "merging snapshot " + snap + " failed: " + why);
    } else {
      if (auto st = opts_.images->rebase_vm_file(name, m.file, m.new_backing); !st)
        return tl::unexpected(st.error().wrap("merging snapshot " + snap));
    }
    done += m.size;
    report(done);
  }

  for (auto& r : tree->snapshots)
    if (r.parent == snap) r.parent = s.parent;
  if (tree->current == snap) tree->current = s.parent;
  tree->snapshots.erase(std::remove_if(tree->snapshots.begin(), tree->snapshots.end(),
                                       [&](const SnapshotRecord& r) { return r.name == snap; }),
                        tree->snapshots.end());
  if (auto st = write_snapshot_tree(job->dir, *tree); !st) return st;
  auto files = tree->all_files();
  for (auto& [d, p] : s.files)
    if (std::find(files.begin(), files.end(), p) == files.end())
      if (auto st = opts_.images->delete_vm_file(name, p); !st)
        log->warn("snapshot delete left a file vm={} path={} error={}", name, p,
                  st.error().message);
  log->info("snapshot deleted vm={} snapshot={} merged_files={} live={}", name, snap, merges.size(),
            job->qmp != nullptr);
  return {};
}

}  // namespace strata::agent::qemu
