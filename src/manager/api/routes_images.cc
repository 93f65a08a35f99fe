// The image catalog: list/show (viewer), upload and delete (operator). An upload is the
// raw bytes (application/octet-stream) streamed by the server into a temp file; it is
// checked (disks through `qemu-img info`: qcow2/raw only, no backing or external data
// file, which would make a host read files of the manager's or the host's choosing),
// hashed (sha256), recorded, and moved under the catalog folder as <image id>.
#include <fmt/format.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>

#include "strata/common/process.h"
#include "strata/common/sha256.h"
#include "strata/manager/agents/connection_manager.h"
#include "strata/manager/api/api_service.h"
#include "strata/manager/controllers/image_distribution.h"
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

struct DiskFacts {
  std::string format;
  int64_t virtual_size = 0;
};

// `qemu-img info` opens only the image itself (never its backing chain), so probing an
// uploaded file is safe; its answer decides whether the file may be used at all.
Result<DiskFacts> probe_disk(const std::string& path) {
  auto out = run_checked({"qemu-img", "info", "--output=json", path});
  if (!out)
    return make_error(ErrorCode::invalid_argument,
                      "not a readable disk image: " + out.error().message, "body");
  try {
    auto j = nlohmann::json::parse(*out);
    DiskFacts f;
    f.format = j.value("format", "");
    f.virtual_size = j.value("virtual-size", int64_t{0});
    if (f.format != "qcow2" && f.format != "raw")
      return make_error(ErrorCode::invalid_argument,
                        fmt::format("unsupported disk format '{}' (qcow2 or raw)", f.format),
                        "body");
    if (j.contains("backing-filename") || j.contains("full-backing-filename"))
      return make_error(ErrorCode::invalid_argument,
                        "qcow2 images with a backing file are refused; flatten it first "
                        "(qemu-img convert -O qcow2)",
                        "body");
    if (j.contains("format-specific") && j["format-specific"].contains("data") &&
        j["format-specific"]["data"].contains("data-file"))
      return make_error(ErrorCode::invalid_argument,
                        "qcow2 images with an external data file are refused", "body");
    return f;
  } catch (const nlohmann::json::exception& e) {
    return internal_error(std::string("qemu-img info output: ") + e.what());
  }
}

// Hosts (connected now) whose agent lists the image.
nlohmann::json hosts_with(ApiDeps& d, const std::string& name) {
  nlohmann::json out = nlohmann::json::array();
  if (!d.agents) return out;
  auto hosts = d.store->list_hosts({});
  if (!hosts) return out;
  for (const auto& h : *hosts) {
    auto client = d.agents->client(h.id);
    if (!client || d.agents->liveness(h.id) != Liveness::up) continue;
    auto images = client->list_images();
    if (!images) continue;
    for (const auto& img : *images) {
      if (img.name() != name) continue;
      out.push_back({{"host_id", h.id}, {"host", h.name}, {"format", img.format()}});
      break;
    }
  }
  return out;
}

// Everything about an upload that the header alone decides: run before the body is read
// (so a bad name or a taken one does not cost the transfer) and again with the body.
std::optional<HttpResponse> check_upload_head(ApiDeps& d, const HttpRequest& r) {
  if (!d.images)
    return error_response(Error{ErrorCode::unavailable, "this manager has no image catalog", ""});
  std::string name = r.query.count("name") ? r.query.at("name") : "";
  if (auto st = model::validate_name("name", name); !st) return error_response(st.error());
  std::string kind = r.query.count("kind") ? r.query.at("kind") : "disk";
  if (kind != "disk" && kind != "kernel" && kind != "initrd")
    return error_response(
        Error{ErrorCode::invalid_argument, "kind must be disk, kernel or initrd", "kind"});
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
  return std::nullopt;
}

HttpResponse create_image(ApiDeps& d, HttpRequest& r) {
  if (auto early = check_upload_head(d, r)) return std::move(*early);
  const std::string name = r.query.at("name");
  const std::string kind = r.query.count("kind") ? r.query.at("kind") : "disk";
  struct stat st {};
  if (r.body_file.empty() || ::stat(r.body_file.c_str(), &st) != 0 || st.st_size == 0)
    return error_response(Error{ErrorCode::invalid_argument, "the image is empty", "body"});

  store::ImageRecord rec;
  rec.name = name;
  rec.kind = kind;
  rec.size_bytes = st.st_size;
  if (kind == "disk") {
    auto facts = probe_disk(r.body_file);
    if (!facts) return error_response(facts.error());
    rec.format = facts->format;
    rec.virtual_size = facts->virtual_size;
  } else {
    rec.format = "raw";
    rec.virtual_size = st.st_size;
  }
  auto digest = sha256_file(r.body_file);
  if (!digest) return error_response(digest.error());
  rec.sha256 = *digest;

  auto created = d.store->create_image(rec);
  if (!created) return error_response(created.error());
  std::string dest = catalog_file(d.images->catalog_dir(), created->id);
  if (std::rename(r.body_file.c_str(), dest.c_str()) != 0) {
    (void)d.store->delete_image(created->id, std::nullopt);
    return error_response(
        Error{ErrorCode::internal, "cannot move the upload into the catalog folder", ""});
  }
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
  api.router().add("GET", "/api/v1/images", view, [&d](HttpRequest& r) {
    store::ListOptions o;
    auto limit = query_int(r, "limit", 0, 0, 10000);
    if (!limit) return error_response(limit.error());
    o.limit = *limit;
    if (r.query.count("after")) o.after_id = r.query.at("after");
    auto list = d.store->list_images(o);
    if (!list) return error_response(list.error());
    nlohmann::json items = nlohmann::json::array();
    for (const auto& i : *list) items.push_back(image_json(i));
    return HttpResponse::json(200, {{"images", items}});
  });
  api.router().add("GET", "/api/v1/images/{name}", view, [&d](HttpRequest& r) {
    auto img = d.store->get_image_by_name(r.param("name"));
    if (!img) return error_response(img.error());
    auto j = image_json(*img);
    j["hosts"] = hosts_with(d, img->name);
    return HttpResponse::json(200, j);
  });
  RouteOptions upload;
  upload.role = Role::operator_;
  upload.action = "image.create";
  upload.stream_body = true;
  upload.max_body = d.image_max_bytes;
  upload.precheck = [&d](HttpRequest& head) { return check_upload_head(d, head); };
  api.router().add("POST", "/api/v1/images", upload,
                   [&d](HttpRequest& r) { return create_image(d, r); });
  RouteOptions del;
  del.role = Role::operator_;
  del.action = "image.delete";
  api.router().add("DELETE", "/api/v1/images/{name}", del,
                   [&d](HttpRequest& r) { return delete_image(d, r); });
}

}  // namespace strata::manager
