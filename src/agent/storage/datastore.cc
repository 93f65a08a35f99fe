// Datastores (see datastore.h): shared folders holding VM disks, identified by the UUID in
// their marker file. All qemu-img calls use argv; new files are made under a temp name in
// the VM's folder and renamed into place, so a crash never leaves a half-made disk under
// its name (a stale temp file is removed when the VM's folder is).
#include "strata/agent/datastore.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "fs_util.h"
#include "strata/common/log.h"
#include "strata/common/process.h"
#include "strata/model/validation.h"

namespace strata::agent {
namespace {

using storage::Kind;
constexpr auto kDiskCopyTimeout = std::chrono::minutes(30);  // a full copy of a large base

uint64_t random64() {
  uint64_t v = 0;
  size_t got = 0;
  auto* p = reinterpret_cast<unsigned char*>(&v);
  while (got < sizeof v) {
    ssize_t n = ::getrandom(p + got, sizeof v - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  return v;
}

Result<std::string> read_small_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return not_found(path + " does not exist");
    return internal_error("open " + path + ": " + std::strerror(errno));
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > 64 * 1024) break;
  }
  ::close(fd);
  return out;
}

// The marker's UUID; creates the marker when absent (O_EXCL: one writer wins, the others
// read what it wrote).
Result<std::string> marker_uuid(const std::string& root, const std::string& name) {
  const std::string path = root + "/" + kDatastoreMarker;
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto text = read_small_file(path);
    if (text) {
      if (text->empty()) {  // another agent is writing it right now
        ::usleep(20000);
        continue;
      }
      auto j = nlohmann::json::parse(*text, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("uuid") || !j["uuid"].is_string())
        return make_error(ErrorCode::failed_precondition,
                          path + " is not a Strata datastore marker (want {\"uuid\": ...})");
      std::string u = j["uuid"].get<std::string>();
      if (auto s = model::validate_uuid("uuid", u); !s)
        return make_error(ErrorCode::failed_precondition, path + ": " + s.error().message);
      return u;
    }
    if (text.error().code != ErrorCode::not_found) return tl::unexpected(text.error());
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      return internal_error("create " + path + ": " + std::strerror(errno));
    }
    std::string data = nlohmann::json{{"uuid", model::new_uuid(&random64)}, {"name", name}}.dump() + "\n";
    bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
              ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) {
      ::unlink(path.c_str());
      return internal_error("write " + path + ": " + std::strerror(errno));
    }
    logger("agent.storage")->info("datastore marker created name={} path={}", name, path);
  }
  return internal_error(path + " stayed empty (another agent died while writing it?)");
}

std::string disk_file(const std::string& dir, const std::string& disk) {
  return dir + "/" + disk + ".qcow2";
}

RunOptions qemu_img_options() {
  RunOptions o;
  o.timeout = kDiskCopyTimeout;
  return o;
}

}  // namespace

Result<std::pair<std::string, std::string>> parse_datastore_flag(const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos)
    return invalid_argument("--datastore", "want NAME=PATH, got \"" + text + "\"");
  std::string name = text.substr(0, eq), path = text.substr(eq + 1);
  if (auto s = model::validate_name("--datastore", name); !s) return tl::unexpected(s.error());
  if (path.empty() || path[0] != '/')
    return invalid_argument("--datastore", "the path of " + name + " must be absolute");
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return std::pair{name, path};
}

Result<std::shared_ptr<Datastores>> Datastores::open(
    const std::vector<std::pair<std::string, std::string>>& mounts, std::string qemu_img) {
  std::shared_ptr<Datastores> d(new Datastores());
  d->qemu_img_ = std::move(qemu_img);
  for (const auto& [name, path] : mounts) {
    for (const auto& other : d->stores_)
      if (other.name == name)
        return invalid_argument("--datastore", "datastore " + name + " given twice");
    auto kind = storage::lstat_kind(path);
    if (!kind) return tl::unexpected(kind.error());
    if (*kind != Kind::dir)
      return make_error(ErrorCode::failed_precondition,
                        "datastore " + name + ": " + path +
                            " is not a directory (mount the shared storage first)");
    auto id = marker_uuid(path, name);
    if (!id) return tl::unexpected(id.error().wrap("datastore " + name));
    for (const auto& other : d->stores_)
      if (other.id == *id)
        return invalid_argument("--datastore", "datastores " + other.name + " and " + name +
                                                   " are the same storage (UUID " + *id + ")");
    if (auto s = storage::ensure_dir(path + "/vms"); !s) return tl::unexpected(s.error());
    d->stores_.push_back(DatastoreInfo{name, path, *id, 0, 0});
    logger("agent.storage")->info("datastore name={} path={} uuid={}", name, path, *id);
  }
  return d;
}

std::vector<DatastoreInfo> Datastores::list() const {
  std::vector<DatastoreInfo> out = stores_;
  for (auto& ds : out) {
    struct statvfs st {};
    if (::statvfs(ds.path.c_str(), &st) == 0) {
      ds.total_bytes = uint64_t(st.f_blocks) * st.f_frsize;
      ds.free_bytes = uint64_t(st.f_bavail) * st.f_frsize;
    }
  }
  return out;
}

Result<DatastoreInfo> Datastores::find(const std::string& name, const std::string& id) const {
  for (const auto& ds : stores_) {
    if (ds.name != name) continue;
    if (!id.empty() && ds.id != id)
      return make_error(ErrorCode::failed_precondition,
                        "datastore " + name + " on this host is other storage (UUID " + ds.id +
                            ", the VM's is " + id + ")");
    return ds;
  }
  return make_error(ErrorCode::failed_precondition,
                    "this host does not mount datastore " + name + " (agent --datastore)");
}

Result<std::string> Datastores::vm_dir(const DatastoreInfo& ds, const std::string& vm_uuid) const {
  if (auto s = model::validate_uuid("uuid", vm_uuid); !s) return tl::unexpected(s.error());
  return ds.path + "/vms/" + vm_uuid;
}

Result<ImageInfo> Datastores::disk_info(const std::string& name, const std::string& id,
                                        const std::string& vm_uuid,
                                        const std::string& disk) const {
  if (auto s = model::validate_name("disk", disk); !s) return tl::unexpected(s.error());
  auto ds = find(name, id);
  if (!ds) return tl::unexpected(ds.error());
  auto dir = vm_dir(*ds, vm_uuid);
  if (!dir) return tl::unexpected(dir.error());
  const std::string path = disk_file(*dir, disk);
  auto kind = storage::lstat_kind(path);
  if (!kind) return tl::unexpected(kind.error());
  if (*kind == Kind::absent) return not_found("disk " + disk + " not on datastore " + name);
  if (*kind != Kind::file)
    return make_error(ErrorCode::permission_denied, path + " is not a regular file");
  auto dir_kind = storage::lstat_kind(*dir);
  if (!dir_kind || *dir_kind != Kind::dir)
    return make_error(ErrorCode::permission_denied, *dir + " is not a directory");
  auto out = run_checked({qemu_img_, "info", "--output=json", "-U", path}, qemu_img_options());
  if (!out) return tl::unexpected(out.error());
  auto info = parse_qemu_img_info(*out);
  if (!info) return tl::unexpected(info.error().wrap(path));
  info->name = disk;
  info->path = path;
  return info;
}

Result<Datastores::Ensured> Datastores::ensure_disk(const std::string& name, const std::string& id,
                                                    const std::string& vm_uuid,
                                                    const std::string& disk, const ImageInfo* base,
                                                    uint64_t size_bytes) const {
  auto existing = disk_info(name, id, vm_uuid, disk);
  if (existing) {
    if (existing->format != "qcow2" || !existing->backing_file.empty() ||
        !existing->data_file.empty())
      return make_error(ErrorCode::failed_precondition,
                        existing->path + " is not a self-contained qcow2 disk; refusing it");
    return Ensured{*existing, false};
  }
  if (existing.error().code != ErrorCode::not_found) return tl::unexpected(existing.error());
  auto ds = find(name, id);
  if (!ds) return tl::unexpected(ds.error());
  auto dir = vm_dir(*ds, vm_uuid);
  if (!dir) return tl::unexpected(dir.error());
  if (auto s = storage::ensure_dir(*dir); !s) return tl::unexpected(s.error());
  const std::string target = disk_file(*dir, disk);
  const std::string tmp = *dir + "/.tmp-" + disk + "-" + std::to_string(::getpid()) + ".qcow2";
  ::unlink(tmp.c_str());
  std::vector<std::vector<std::string>> steps;
  if (base) {
    steps.push_back({qemu_img_, "convert", "-q", "-f", base->format, "-O", "qcow2", base->path,
                     tmp});
    if (size_bytes > base->virtual_size)
      steps.push_back({qemu_img_, "resize", "-q", "-f", "qcow2", tmp, std::to_string(size_bytes)});
  } else {
    if (size_bytes == 0) return invalid_argument("size_bytes", "a blank disk needs a size > 0");
    steps.push_back({qemu_img_, "create", "-q", "-f", "qcow2", tmp, std::to_string(size_bytes)});
  }
  for (const auto& argv : steps)
    if (auto r = run_checked(argv, qemu_img_options()); !r) {
      ::unlink(tmp.c_str());
      return tl::unexpected(r.error().wrap("disk " + disk + " on datastore " + name));
    }
  int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
  if (auto s = storage::rename_noreplace(tmp, target); !s) {
    ::unlink(tmp.c_str());
    return tl::unexpected(s.error());
  }
  auto info = disk_info(name, id, vm_uuid, disk);
  if (!info) return tl::unexpected(info.error());
  logger("agent.storage")
      ->info("datastore disk created datastore={} vm_uuid={} disk={} from={}", name, vm_uuid, disk,
             base ? base->name : std::string("blank"));
  return Ensured{*info, true};
}

Status Datastores::delete_disk(const std::string& name, const std::string& id,
                               const std::string& vm_uuid, const std::string& disk) const {
  if (auto s = model::validate_name("disk", disk); !s) return s;
  auto ds = find(name, id);
  if (!ds) return tl::unexpected(ds.error());
  auto dir = vm_dir(*ds, vm_uuid);
  if (!dir) return tl::unexpected(dir.error());
  const std::string path = disk_file(*dir, disk);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return internal_error("unlink " + path + ": " + std::strerror(errno));
  ::rmdir(dir->c_str());  // only when empty
  return {};
}

Status Datastores::delete_vm(const std::string& name, const std::string& id,
                             const std::string& vm_uuid) const {
  auto ds = find(name, id);
  if (!ds) return tl::unexpected(ds.error());
  if (auto s = model::validate_uuid("uuid", vm_uuid); !s) return s;
  if (auto s = storage::remove_dir_flat(ds->path + "/vms", vm_uuid); !s) return s;
  logger("agent.storage")->info("datastore disks deleted datastore={} vm_uuid={}", name, vm_uuid);
  return {};
}

}  // namespace strata::agent
