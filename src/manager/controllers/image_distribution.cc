// ImageDistributor (see image_distribution.h): ListImages on the host, PutImage for each
// catalog image it lacks, progress throttled to 10% steps.
#include "strata/manager/controllers/image_distribution.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "strata/common/log.h"
#include "strata/manager/controllers/vm_document.h"

namespace strata::manager {

std::string catalog_file(const std::string& catalog_dir, const std::string& image_id) {
  return catalog_dir + "/" + image_id;
}

std::vector<std::string> referenced_images(const model::VmSpec& spec) {
  std::vector<std::string> out;
  auto add = [&](const std::string& n) {
    if (!n.empty() && std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  };
  if (spec.kernel_boot) {
    add(spec.kernel_boot->kernel);
    add(spec.kernel_boot->initrd);
  }
  for (const auto& d : spec.disks) add(d.base_image);
  add(spec.cdrom);  // the CD-ROM's iso travels like any other image (create, migrate, HA)
  return out;
}

Status check_image_kinds(store::Store& store, const model::VmSpec& spec) {
  auto check = [&](const std::string& name, std::string_view want,
                   const std::string& field) -> Status {
    if (name.empty()) return {};
    auto rec = store.get_image_by_name(name);
    if (!rec) {
      if (rec.error().code == ErrorCode::not_found) return {};
      return tl::unexpected(rec.error());
    }
    if (rec->kind == want) return {};
    return invalid_argument(field, fmt::format("image {} is a {} image; {} needs a {} image",
                                               name, rec->kind, field, want));
  };
  if (spec.kernel_boot) {
    if (auto st = check(spec.kernel_boot->kernel, "kernel", "kernel"); !st) return st;
    if (auto st = check(spec.kernel_boot->initrd, "initrd", "initrd"); !st) return st;
  }
  for (size_t i = 0; i < spec.disks.size(); ++i)
    if (auto st = check(spec.disks[i].base_image, "disk", fmt::format("disks[{}].image", i)); !st)
      return st;
  // The CD-ROM holds an iso only, and an iso goes nowhere else (the checks above).
  if (auto st = check(spec.cdrom, "iso", "cdrom"); !st) return st;
  return {};
}

void for_each_host(store::Store& store, ConnectionManager& agents,
                   const std::function<void(const store::HostRecord&, AgentClient*)>& call) {
  auto hosts = store.list_hosts({});
  if (!hosts) return;
  constexpr size_t kParallel = 16;
  for (size_t start = 0; start < hosts->size(); start += kParallel) {
    std::vector<std::thread> batch;
    for (size_t i = start; i < std::min(hosts->size(), start + kParallel); ++i) {
      const store::HostRecord& h = (*hosts)[i];
      AgentClientPtr client;
      if (agents.liveness(h.id) == Liveness::up) client = agents.client(h.id);
      batch.emplace_back([&call, &h, client] { call(h, client.get()); });
    }
    for (auto& t : batch) t.join();
  }
}

Result<std::map<std::string, std::string>> image_users(store::Store& store) {
  auto vms = store.list_vms({});
  if (!vms) return tl::unexpected(vms.error());
  std::map<std::string, std::string> users;
  for (const auto& vm : *vms) {
    auto doc = decode_vm_document(vm.spec);
    if (!doc) continue;
    for (auto& n : referenced_images(doc->spec)) users.emplace(std::move(n), vm.name);
  }
  return users;
}

std::shared_ptr<std::mutex> ImageDistributor::lock_for(const std::string& host_id,
                                                       const std::string& name) {
  std::lock_guard lock(mu_);
  auto& m = pushes_[host_id + "/" + name];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

Status ImageDistributor::ensure(const std::string& host_id, AgentClient& client,
                                const model::VmSpec& spec,
                                const std::function<void(const std::string&)>& progress) {
  auto names = referenced_images(spec);
  if (names.empty()) return {};
  // Checked at creation too; a catalog image uploaded later under a name the VM took
  // from its host must not be pushed for the wrong use either.
  if (auto st = check_image_kinds(store_, spec); !st) return st;
  auto present_list = client.list_images();
  if (!present_list) return tl::unexpected(present_list.error());
  std::set<std::string> present;
  for (const auto& img : *present_list) present.insert(img.name());
  for (const auto& name : names) {
    if (present.count(name)) continue;
    auto rec = store_.get_image_by_name(name);
    if (!rec) {
      if (rec.error().code == ErrorCode::not_found) continue;  // not a catalog image
      return tl::unexpected(rec.error());
    }
    if (rec->state != "ready") continue;
    auto guard = lock_for(host_id, name);
    std::lock_guard push_lock(*guard);
    const uint64_t total = static_cast<uint64_t>(rec->size_bytes);
    int last_step = -1;
    auto on_bytes = [&](uint64_t sent) {
      int pct = total ? static_cast<int>(sent * 100 / total) : 100;
      if (pct / 10 == last_step) return;
      last_step = pct / 10;
      if (progress) progress(fmt::format("copying image {} to host: {}%", name, pct));
    };
    on_bytes(0);
    auto put = client.put_image(name, rec->kind, catalog_file(catalog_dir_, rec->id), total,
                                rec->sha256, on_bytes);
    if (!put) return tl::unexpected(put.error().wrap(fmt::format("image {}", name)));
    logger("manager.images")
        ->info("image on host name={} host={} bytes={} existed={}", name, host_id, total,
               put->existed());
  }
  return {};
}

namespace {

Status fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return internal_error(fmt::format("open {}: {}", path, std::strerror(errno)));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return internal_error(fmt::format("fsync {}: {}", path, std::strerror(err)));
  return {};
}

}  // namespace

Result<store::ImageRecord> ImageDistributor::commit_upload(const std::string& upload_path,
                                                           const store::ImageRecord& record) {
  if (auto st = fsync_path(upload_path, O_RDONLY); !st) return tl::unexpected(st.error());
  auto created = store_.create_image(record);
  if (!created) return created;
  std::string dest = catalog_file(catalog_dir_, created->id);
  auto undo = [&](const std::string& what) -> Result<store::ImageRecord> {
    logger("manager.images")->error("image upload not committed name={} error={}", record.name, what);
    ::unlink(dest.c_str());
    (void)store_.delete_image(created->id, std::nullopt);
    return internal_error("cannot move the upload into the catalog folder: " + what);
  };
  if (std::rename(upload_path.c_str(), dest.c_str()) != 0)
    return undo(fmt::format("rename: {}", std::strerror(errno)));
  if (auto st = fsync_path(catalog_dir_, O_RDONLY | O_DIRECTORY); !st) return undo(st.error().message);
  return created;
}

Result<CatalogRepair> ImageDistributor::repair() {
  namespace fs = std::filesystem;
  auto log = logger("manager.images");
  CatalogRepair out;
  auto images = store_.list_images({});
  if (!images) return tl::unexpected(images.error());
  auto in_use = image_users(store_);
  if (!in_use) return tl::unexpected(in_use.error());
  std::set<std::string> ids;
  std::error_code ec;
  for (const auto& img : *images) {
    ids.insert(img.id);
    if (fs::is_regular_file(catalog_file(catalog_dir_, img.id), ec)) continue;
    if (in_use->count(img.name)) {
      log->error("catalog image has no bytes but VMs use it name={} id={}", img.name, img.id);
      out.missing_in_use.push_back(img.name);
      continue;
    }
    if (auto st = store_.delete_image(img.id, std::nullopt);
        !st && st.error().code != ErrorCode::not_found)
      return tl::unexpected(st.error().wrap("removing the record of image " + img.name));
    log->warn("catalog record without bytes removed (upload interrupted) name={}", img.name);
    out.records_removed.push_back(img.name);
  }
  for (const auto& e : fs::directory_iterator(catalog_dir_, ec)) {
    const std::string file = e.path().filename().string();
    if (file == "uploads" || ids.count(file) || !e.is_regular_file(ec)) continue;
    fs::remove(e.path(), ec);
    log->warn("catalog file without record removed (delete interrupted) file={}", file);
    out.files_removed.push_back(file);
  }
  return out;
}

std::vector<HostCopy> ImageDistributor::remove_host_copies(const store::ImageRecord& image,
                                                           ConnectionManager& agents) {
  std::vector<HostCopy> out;
  std::mutex out_mu;
  for_each_host(store_, agents, [&](const store::HostRecord& h, AgentClient* client) {
    HostCopy c{h.name, "unreachable", ""};
    if (client) {
      auto st = client->delete_image(image.id + ":delete", image.name, kHostCallTimeout);
      if (st) {
        c.outcome = "removed";
      } else if (st.error().code == ErrorCode::not_found) {
        c.outcome = "absent";
      } else {
        c.outcome = st.error().code == ErrorCode::failed_precondition ? "kept" : "unreachable";
        c.message = st.error().message;
      }
    }
    if (c.outcome == "absent") return;
    std::lock_guard lock(out_mu);
    out.push_back(std::move(c));
  });
  std::sort(out.begin(), out.end(),
            [](const HostCopy& a, const HostCopy& b) { return a.host < b.host; });
  return out;
}

}  // namespace strata::manager
