// ImageDistributor (see image_distribution.h): ListImages on the host, PutImage for each
// catalog image it lacks, progress throttled to 10% steps.
#include "strata/manager/controllers/image_distribution.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "strata/common/log.h"

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

}  // namespace strata::manager
