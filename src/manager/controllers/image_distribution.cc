// ImageDistributor (see image_distribution.h): ListImages on the host, PutImage for each
// catalog image it lacks, progress throttled to 10% steps.
#include "strata/manager/controllers/image_distribution.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <set>

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
  return out;
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
  auto hosts = store_.list_hosts({});
  if (!hosts) return out;
  for (const auto& h : *hosts) {
    HostCopy c{h.name, "unreachable", ""};
    auto client = agents.client(h.id);
    if (client && agents.liveness(h.id) == Liveness::up) {
      auto st = client->delete_image(image.id + ":delete", image.name);
      if (st) {
        c.outcome = "removed";
      } else if (st.error().code == ErrorCode::not_found) {
        c.outcome = "absent";
      } else {
        c.outcome = st.error().code == ErrorCode::failed_precondition ? "kept" : "unreachable";
        c.message = st.error().message;
      }
    }
    if (c.outcome != "absent") out.push_back(std::move(c));
  }
  return out;
}

}  // namespace strata::manager
