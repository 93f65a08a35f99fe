// The image catalog: list/show (viewer), upload and delete (operator). An upload is the
// raw bytes (application/octet-stream) streamed by the server into a temp file; it is
// checked (every kind through `qemu-img info`, image_probe.h: disks qcow2/raw, kernels and
// initrds plain files, never a backing or external data file, which would make a host
// read files of the uploader's choosing), hashed (sha256), recorded, and moved under the
// catalog folder as <image id>.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <mutex>

#include "strata/common/log.h"
#include "strata/common/sha256.h"
#include "strata/manager/agents/connection_manager.h"
#include "strata/manager/api/api_service.h"
#include "strata/manager/api/request_bodies.h"
#include "strata/manager/controllers/image_distribution.h"
#include "strata/manager/controllers/image_probe.h"
#include "strata/manager/controllers/vm_document.h"
#include "strata/model/validation.h"

namespace strata::manager {

namespace {

nlohmann::json image_json(const store::ImageRecord& i) {
  return {{"id", i.id},
          {"name", i.name},
          {"kind", i.kind},
          {"format", i.format},
          {"size_bytes", i.size_bytes},
          {"virtual_size", i.virtual_size},
          {"sha256", i.sha256},
          {"state", i.state},
          {"created_ms", i.created_ms},
          {"resource_version", i.resource_version}};
}

// Hosts (up now) whose agent lists the image, asked in parallel with a short deadline;
// hosts that are up but did not answer in time are listed apart.
void add_hosts_with(ApiDeps& d, const std::string& name, nlohmann::json& out) {
  out["hosts"] = nlohmann::json::array();
  out["hosts_unanswered"] = nlohmann::json::array();
  if (!d.agents) return;
  std::mutex mu;
  std::vector<std::pair<std::string, nlohmann::json>> found;
  std::vector<std::string> unanswered;
  for_each_host(*d.store, *d.agents, [&](const store::HostRecord& h, AgentClient* client) {
    if (!client) return;
    auto images = client->list_images(kHostCallTimeout);
    std::lock_guard lock(mu);
    if (!images) {
      unanswered.push_back(h.name);
      return;
    }
    for (const auto& img : *images) {
      if (img.name() != name) continue;
      found.emplace_back(h.name, nlohmann::json{{"host_id", h.id}, {"host", h.name},
                                                {"format", img.format()}});
      break;
    }
  });
  std::sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::sort(unanswered.begin(), unanswered.end());
  for (auto& [n, j] : found) out["hosts"].push_back(std::move(j));
  for (auto& n : unanswered) out["hosts_unanswered"].push_back(n);
}

// Everything about an upload that the header alone decides: run before the body is read
// (so a bad name or a taken one does not cost the transfer) and again with the body.
std::optional<HttpResponse> check_upload_head(ApiDeps& d, const HttpRequest& r,
                                              bool before_body) {
  if (!d.images)
    return error_response(Error{ErrorCode::unavailable, "this manager has no image catalog", ""});
  std::string name = r.query.count("name") ? r.query.at("name") : "";
  if (auto st = model::validate_name("name", name); !st) return error_response(st.error());
  std::string kind = r.query.count("kind") ? r.query.at("kind") : "disk";
  if (kind != "disk" && kind != "kernel" && kind != "initrd" && kind != "iso")
    return error_response(
        Error{ErrorCode::invalid_argument, "kind must be disk, kernel, initrd or iso", "kind"});
  std::string ctype = r.header("content-type");
  if (!ctype.empty() && ctype.rfind("application/octet-stream", 0) != 0)
    return error_response(Error{ErrorCode::invalid_argument,
                                "the body must be the raw image (application/octet-stream)",
                                "Content-Type"});
  if (auto existing = d.store->get_image_by_name(name)) {
    auto resp = error_response(
        Error{ErrorCode::already_exists, fmt::format("image {} already exists", name), "name"});
    resp.audit_target = "image/" + name;
    return resp;
  }
  // A body announced larger than the free space would fill the data folder: 507 before
  // the transfer (the server answers the same when the disk fills up mid-way).
  std::string length = r.header("content-length");
  uint64_t announced = 0;
  if (before_body && !length.empty() &&
      std::from_chars(length.data(), length.data() + length.size(), announced).ec ==
          std::errc()) {
    auto avail = free_bytes(d.images->catalog_dir());
    if (avail && announced > *avail) {
      logger("manager.images")
          ->warn("image upload refused: data folder full name={} bytes={} free={}", name,
                 announced, *avail);
      auto resp = insufficient_storage(d.images->catalog_dir(), announced);
      resp.audit_target = "image/" + name;
      return resp;
    }
  }
  return std::nullopt;
}

HttpResponse create_image(ApiDeps& d, HttpRequest& r) {
  if (auto early = check_upload_head(d, r, /*before_body=*/false)) return std::move(*early);
  const std::string name = r.query.at("name");
  const std::string kind = r.query.count("kind") ? r.query.at("kind") : "disk";
  struct stat st {};
  if (r.body_file.empty() || ::stat(r.body_file.c_str(), &st) != 0 || st.st_size == 0)
    return error_response(Error{ErrorCode::invalid_argument, "the image is empty", "body"});

  store::ImageRecord rec;
  rec.name = name;
  rec.kind = kind;
  rec.size_bytes = st.st_size;
  // Every kind is probed: a kernel that is really a qcow2 naming a host file must not
  // reach the catalog, whatever it is declared to be.
  auto facts = probe_image(r.body_file, kind);
  if (!facts) return error_response(facts.error());
  rec.format = facts->format;
  rec.virtual_size = facts->virtual_size;
  auto digest = sha256_file(r.body_file);
  if (!digest) return error_response(digest.error());
  rec.sha256 = *digest;

  auto created = d.images->commit_upload(r.body_file, rec);
  if (!created) return error_response(created.error());
  auto resp = HttpResponse::json(201, image_json(*created));
  resp.audit_target = "image/" + created->name;
  return resp;
}

HttpResponse delete_image(ApiDeps& d, HttpRequest& r) {
  auto img = d.store->get_image_by_name(r.param("name"));
  if (!img) return error_response(img.error());
  auto users = image_users(*d.store);
  if (!users) return error_response(users.error());
  if (auto u = users->find(img->name); u != users->end())
    return error_response(Error{ErrorCode::conflict,
                                fmt::format("image {} is used by vm {}", img->name, u->second),
                                "name"});
  auto ver = expected_version(r, nullptr);
  if (!ver) return error_response(ver.error());
  if (auto st = d.store->delete_image(img->id, *ver); !st) return error_response(st.error());
  nlohmann::json hosts = nlohmann::json::array();
  if (d.images) {
    std::remove(catalog_file(d.images->catalog_dir(), img->id).c_str());
    // Copies on hosts that are up go too; a host whose VM disks are based on its copy
    // keeps it (the agent refuses), as does a host that is not up now.
    if (d.agents) {
      for (const auto& c : d.images->remove_host_copies(*img, *d.agents)) {
        nlohmann::json h = {{"host", c.host}, {"outcome", c.outcome}};
        if (!c.message.empty()) h["message"] = c.message;
        hosts.push_back(std::move(h));
      }
    }
  }
  return HttpResponse::json(200, {{"deleted", img->name}, {"hosts", hosts}});
}

}  // namespace

void add_image_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  RouteOptions view;
  RouteOptions view_hosts;  // asks every host that is up
  view_hosts.offload = true;
  api.router().add("GET", "/api/v1/images", view, [&d](HttpRequest& r) {
    store::ImageListOptions o;
    auto limit = query_int(r, "limit", 0, 0, 10000);
    if (!limit) return error_response(limit.error());
    o.limit = *limit;
    auto name = decode_name_substring(r);
    if (!name) return error_response(name.error());
    o.name_contains = *name;
    if (r.query.count("after")) o.after_id = r.query.at("after");
    auto list = d.store->list_images(o);
    if (!list) return error_response(list.error());
    nlohmann::json items = nlohmann::json::array();
    for (const auto& i : *list) items.push_back(image_json(i));
    return HttpResponse::json(200, {{"images", items}});
  });
  api.router().add("GET", "/api/v1/images/{name}", view_hosts, [&d](HttpRequest& r) {
    auto img = d.store->get_image_by_name(r.param("name"));
    if (!img) return error_response(img.error());
    auto j = image_json(*img);
    add_hosts_with(d, img->name, j);
    return HttpResponse::json(200, j);
  });
  RouteOptions upload;
  upload.role = Role::operator_;
  upload.action = "image.create";
  upload.stream_body = true;
  upload.offload = true;  // qemu-img and sha256 of up to --image-max-bytes
  upload.max_body = d.image_max_bytes;
  upload.precheck = [&d](HttpRequest& head) {
    return check_upload_head(d, head, /*before_body=*/true);
  };
  api.router().add("POST", "/api/v1/images", upload,
                   [&d](HttpRequest& r) { return create_image(d, r); });
  RouteOptions del;
  del.role = Role::operator_;
  del.action = "image.delete";
  del.offload = true;  // asks every host that is up
  api.router().add("DELETE", "/api/v1/images/{name}", del,
                   [&d](HttpRequest& r) { return delete_image(d, r); });
}

}  // namespace strata::manager
