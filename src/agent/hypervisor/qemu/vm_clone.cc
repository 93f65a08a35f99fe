// Clones in the QEMU driver: a new VM whose disks are made from a stopped VM's current
// disk files (the active files of its snapshot tree, or its store disks): linked clones
// are qcow2 overlays on them, full clones flattened copies (the image store's clone_disk).
// The source holds a clone job meanwhile, so it cannot start (and write) under the copy.
// Design: docs/internals/qemu-driver.md, "Templates and clones".
#include <fstream>

#include "qemu_hypervisor.h"
#include "snapshots.h"
#include "strata/common/atomic_file.h"
#include "strata/common/log.h"

namespace strata::agent::qemu {

using model::VmState;

Result<VmStatus> QemuHypervisor::clone(const std::string& source, const model::VmSpec& input,
                                       bool linked, const CloneProgressCallback& progress) {
  if (!opts_.images) return make_error(ErrorCode::failed_precondition, "no image store configured");
  if (input.name == source) return invalid_argument("name", "a clone needs a new name");
  std::string dir;
  model::VmSpec source_spec;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(source);
    if (!v) return tl::unexpected(v.error());
    Vm& vm = **v;
    VmState s = vm.rec.state;
    if (s != VmState::defined && s != VmState::stopped && s != VmState::crashed)
      return make_error(ErrorCode::failed_precondition,
                        "VM " + source + " is " + model::to_string(s) +
                            "; only a stopped VM is cloned");
    if (auto st = begin_job_locked(source, vm, VmJob::clone); !st)
      return tl::unexpected(st.error());
    dir = vm.dir;
    source_spec = vm.spec;
  }
  JobEnd end_job_guard{this, source, VmJob::clone};

  auto tree = load_snapshot_tree(source, dir, source_spec);
  if (!tree) return tl::unexpected(tree.error());
  // The clone's disks as they really are: no base image, the source disk's size.
  model::VmSpec spec = input;
  std::map<std::string, std::string> files;
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    auto& d = spec.disks[i];
    auto a = tree->active.find(d.name);
    if (a == tree->active.end())
      return invalid_argument("disks[" + std::to_string(i) + "].name",
                              "VM " + source + " has no disk " + d.name);
    auto info = opts_.images->vm_file_info(source, a->second);
    if (!info) return tl::unexpected(info.error().wrap("disk " + d.name));
    d.base_image.clear();
    d.size_bytes = info->virtual_size;
    files[d.name] = a->second;
  }
  for (const auto& d : spec.disks)
    if (!d.datastore.empty())
      return make_error(ErrorCode::failed_precondition,
                        "VM " + source + " has disk " + d.name + " on datastore " + d.datastore +
                            "; cloning datastore disks is not supported yet");
  const size_t n = spec.disks.size();
  size_t index = 0;
  auto made = define_with(spec, [&](const model::VmSpec& s, const model::DiskSpec& d) -> Status {
    // Progress over all disks, each weighing the same: per mille.
    auto per_disk = [&](uint64_t done, uint64_t total) {
      if (!progress || total == 0) return;
      progress(index * 1000 + done * 1000 / total, n * 1000);
    };
    auto r = opts_.images->clone_disk(s.name, d.name, files.at(d.name), linked, per_disk);
    ++index;
    if (!r) return tl::unexpected(r.error());
    if (progress) progress(index * 1000, n * 1000);
    return {};
  });
  if (!made) return made;
  if (linked)
    if (auto w = write_file_atomic(vm_dir(spec.name) + "/" + kLinkedToFile, source + "\n",
                                   kVmFileMode);
        !w)
      logger("agent.qemu")->warn("linked clone record not written vm={} error={}", spec.name,
                                 w.error().to_string());
  logger("agent.qemu")->info("vm cloned vm={} source={} linked={}", spec.name, source, linked);
  return made;
}

std::vector<std::string> QemuHypervisor::linked_clones_locked(const std::string& name) const {
  std::vector<std::string> out;
  for (const auto& [other, vm] : vms_) {
    if (other == name) continue;
    std::ifstream in(vm->dir + "/" + kLinkedToFile);
    std::string source;
    if (in && std::getline(in, source) && source == name) out.push_back(other);
  }
  return out;
}

}  // namespace strata::agent::qemu
