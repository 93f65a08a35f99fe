// The backup repository on a file system (strata/backup/repository.h,
// docs/internals/backup.md).
#include "strata/backup/repository.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "strata/common/atomic_file.h"
#include "strata/common/sha256.h"

namespace strata::backup {
namespace fs = std::filesystem;

namespace {

tl::unexpected<Error> errno_error(int err, std::string_view what, const std::string& path) {
  std::string msg = fmt::format("{} {}: {}", what, path, std::strerror(err));
  if (err == ENOSPC || err == EDQUOT) return make_error(ErrorCode::resource_exhausted, msg);
  return internal_error(msg);
}

Result<std::string> read_whole(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return not_found(path + " does not exist");
    return errno_error(errno, "open", path);
  }
  struct stat st {};
  std::string out;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.resize(static_cast<size_t>(st.st_size));
  size_t have = 0;
  for (;;) {
    if (have == out.size()) out.resize(std::max<size_t>(out.size() * 2, 1 << 16));
    ssize_t n = ::read(fd, out.data() + have, out.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return errno_error(e, "read", path);
    }
    if (n == 0) break;
    have += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(have);
  return out;
}

Result<nlohmann::json> read_json(const std::string& path) {
  auto s = read_whole(path);
  if (!s) return tl::unexpected(s.error());
  auto j = nlohmann::json::parse(*s, nullptr, false);
  if (j.is_discarded()) return internal_error(path + " is not valid JSON");
  return j;
}

std::atomic<uint64_t> tmp_counter{0};

// Threads commit() makes new chunks durable from.
constexpr size_t kSyncThreads = 4;

}  // namespace

RepoLock::~RepoLock() {
  if (fd_ >= 0) ::close(fd_);
}

Status validate_disk_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return invalid_argument("disk", "must be 1-64 characters");
  for (char ch : name)
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '-' || ch == '_' || ch == '.'))
      return invalid_argument("disk", "only A-Z a-z 0-9 '_' '.' '-' allowed");
  if (name.front() == '.' || name.front() == '-')
    return invalid_argument("disk", "must not start with '.' or '-'");
  return {};
}

nlohmann::json to_json(const Manifest& m) {
  nlohmann::json disks = nlohmann::json::array();
  for (auto& d : m.disks)
    disks.push_back({{"name", d.name},
                     {"size", d.size},
                     {"bitmap", d.bitmap},
                     {"bytes_read", d.bytes_read},
                     {"bytes_new", d.bytes_new},
                     {"chunks_read", d.chunks_read},
                     {"zero_chunks", d.zero_chunks}});
  nlohmann::json j = {{"version", 1},       {"id", m.id},
                      {"vm", m.vm},         {"created_unix_ms", m.created_unix_ms},
                      {"kind", m.kind},     {"parent", m.parent},
                      {"frozen", m.frozen}, {"disks", disks}};
  if (!m.vm_spec.is_null()) j["vm_spec"] = m.vm_spec;
  return j;
}

Result<Manifest> parse_manifest(const nlohmann::json& j) {
  if (!j.is_object()) return invalid_argument("manifest", "not an object");
  Manifest m;
  try {
    if (j.at("version").get<int>() != 1)
      return invalid_argument("manifest.version", "unsupported version");
    m.id = j.at("id").get<std::string>();
    m.vm = j.at("vm").get<std::string>();
    m.created_unix_ms = j.at("created_unix_ms").get<int64_t>();
    m.kind = j.at("kind").get<std::string>();
    m.parent = j.at("parent").get<std::string>();
    m.frozen = j.at("frozen").get<bool>();
    for (auto& d : j.at("disks")) {
      DiskRecord r;
      r.name = d.at("name").get<std::string>();
      r.size = d.at("size").get<uint64_t>();
      r.bitmap = d.at("bitmap").get<std::string>();
      r.bytes_read = d.at("bytes_read").get<uint64_t>();
      r.bytes_new = d.at("bytes_new").get<uint64_t>();
      r.chunks_read = d.at("chunks_read").get<uint64_t>();
      r.zero_chunks = d.at("zero_chunks").get<uint64_t>();
      if (auto s = validate_disk_name(r.name); !s) return tl::unexpected(s.error());
      m.disks.push_back(std::move(r));
    }
    // Optional (version 1 manifests written before it have none).
    if (auto it = j.find("vm_spec"); it != j.end() && !it->is_null()) {
      if (!it->is_object()) return invalid_argument("manifest.vm_spec", "not an object");
      m.vm_spec = *it;
    }
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument("manifest", std::string("malformed: ") + e.what());
  }
  if (auto s = validate_backup_id(m.id); !s) return tl::unexpected(s.error());
  if (m.kind != "full" && m.kind != "incremental")
    return invalid_argument("manifest.kind", "must be full or incremental");
  if (m.kind == "incremental")
    if (auto s = validate_backup_id(m.parent); !s)
      return invalid_argument("manifest.parent", "an incremental names its parent");
  return m;
}

namespace {

bool repo_folder_empty(const std::string& dir) {
  std::error_code ec;
  auto it = fs::directory_iterator(dir, ec);
  return !ec && it == fs::directory_iterator();
}

std::string repo_config_text(const RepoKey* key) {
  nlohmann::json j = {{"version", 1}, {"encryption", key ? kEncryptionAesGcm : kEncryptionNone}};
  if (key) j["key_fingerprint"] = key->fingerprint();
  return j.dump(2) + "\n";
}

// Creates config.json unless it exists: written to a temp file, then link()ed to its name,
// which fails when another process (the agent, the manager) created it first.
Status repo_create_config(const std::string& root, const RepoKey* key) {
  std::string path = root + "/config.json";
  std::string tmp = fmt::format("{}/.config.tmp-{}-{}", root, ::getpid(), tmp_counter.fetch_add(1));
  if (auto st = write_file_atomic(tmp, repo_config_text(key), 0640); !st) return st;
  int rc = ::link(tmp.c_str(), path.c_str());
  int e = errno;
  ::unlink(tmp.c_str());
  if (rc != 0 && e != EEXIST) return errno_error(e, "create", path);
  return fsync_parent_dir(path);
}

}  // namespace

Result<Repository> Repository::open(const std::string& root, const RepoKey* key) {
  if (root.empty() || root.front() != '/')
    return invalid_argument("backup_repo", "must be an absolute path");
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    return make_error(ErrorCode::failed_precondition,
                      "backup repository " + root + " is not an existing folder", "backup_repo");
  std::string r = root;
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  std::string config_path = r + "/config.json";
  if (!fs::exists(config_path, ec)) {
    // Initialised in the mode asked for while it holds nothing; a folder with backups but
    // no config predates config.json and is plain.
    bool empty = (!fs::exists(r + "/backups", ec) || repo_folder_empty(r + "/backups")) &&
                 (!fs::exists(r + "/chunks", ec) || repo_folder_empty(r + "/chunks"));
    if (!empty && key)
      return make_error(ErrorCode::failed_precondition,
                        "backup repository " + r +
                            " is a plain repository (it holds backups written without "
                            "encryption); a key was given: use a new folder for an "
                            "encrypted repository",
                        "backup_repo");
    if (auto st = repo_create_config(r, key); !st) return tl::unexpected(st.error());
  }
  auto j = read_json(config_path);
  if (!j) return tl::unexpected(j.error().wrap("backup repository config"));
  std::string mode, fp;
  if (j->is_object() && j->value("version", 0) == 1) {
    if (auto it = j->find("encryption"); it != j->end() && it->is_string()) mode = *it;
    if (auto it = j->find("key_fingerprint"); it != j->end() && it->is_string()) fp = *it;
  }
  if (mode == kEncryptionNone) {
    if (key)
      return make_error(ErrorCode::failed_precondition,
                        "backup repository " + r +
                            " is not encrypted (config.json: encryption none) but a key was "
                            "given: a plain repository never takes encrypted backups",
                        "backup_repo");
  } else if (mode == kEncryptionAesGcm) {
    if (!key)
      return make_error(ErrorCode::failed_precondition,
                        "backup repository " + r + " is encrypted (aes-256-gcm, key fingerprint " +
                            fp + ") and no key was given (stratad --backup-key-file)",
                        "backup_repo");
    if (key->fingerprint() != fp)
      return make_error(ErrorCode::failed_precondition,
                        "wrong key for backup repository " + r + ": it was encrypted with key " +
                            fp + ", the key given is " + key->fingerprint(),
                        "backup_repo");
  } else {
    return make_error(ErrorCode::failed_precondition,
                      "backup repository " + r +
                          "/config.json is not valid (version 1, encryption none or "
                          "aes-256-gcm)",
                      "backup_repo");
  }
  for (auto sub : {"/chunks", "/backups"}) {
    fs::create_directories(r + sub, ec);
    if (ec) return internal_error("create " + r + sub + ": " + ec.message());
  }
  return Repository(r, key ? std::make_shared<const RepoKey>(*key) : nullptr);
}

Result<Repository> open_repository(const std::string& root, std::string_view raw_key) {
  if (raw_key.empty()) return Repository::open(root);
  auto key = RepoKey::from_bytes(raw_key, "repo_key");
  if (!key) return tl::unexpected(key.error());
  return Repository::open(root, &*key);
}

Result<RepoLock> Repository::lock_shared() const {
  int fd = ::open((root_ + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error(errno, "open", root_ + "/.lock");
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0) {
    int e = errno;
    ::close(fd);
    if (e == EWOULDBLOCK)
      return make_error(ErrorCode::conflict,
                        "the backup repository is being pruned or a backup deleted; retry");
    return errno_error(e, "flock", root_ + "/.lock");
  }
  return RepoLock(fd);
}

Result<RepoLock> Repository::lock_exclusive() const {
  int fd = ::open((root_ + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error(errno, "open", root_ + "/.lock");
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    ::close(fd);
    if (e == EWOULDBLOCK)
      return make_error(ErrorCode::conflict, "a backup is running in the repository; retry");
    return errno_error(e, "flock", root_ + "/.lock");
  }
  return RepoLock(fd);
}

std::string Repository::chunk_path(const std::string& digest) const {
  return root_ + "/chunks/" + digest.substr(0, 2) + "/" + digest;
}

std::string Repository::chunk_id(const void* data, size_t size) const {
  if (key_) return key_->chunk_id(data, size);
  Sha256 h;
  h.update(data, size);
  return h.hex_final();
}

Result<Repository::PutResult> Repository::put_chunk(const void* data, size_t size,
                                                    PendingChunks* pending) const {
  std::string id = chunk_id(data, size);
  if (!key_) return store_blob(id, std::string_view(static_cast<const char*>(data), size), pending);
  // The chunk's id is its additional data: a blob renamed to another id fails its tag.
  auto blob =
      key_->seal(BlobKind::chunk, std::string_view(static_cast<const char*>(data), size), id);
  if (!blob) return tl::unexpected(blob.error());
  return store_blob(id, *blob, pending);
}

Result<Repository::PutResult> Repository::put_chunk_blob(const std::string& digest,
                                                         std::string_view blob,
                                                         PendingChunks* pending) const {
  if (!is_sha256_hex(digest)) return invalid_argument("digest", "not a chunk id");
  return store_blob(digest, blob, pending);
}

Result<Repository::PutResult> Repository::store_blob(const std::string& digest,
                                                     std::string_view blob,
                                                     PendingChunks* pending) const {
  PutResult r{digest, false};
  std::string path = chunk_path(r.digest);
  if (pending) {
    // Claimed before the write, so another thread putting the same data skips it (a failed
    // put fails the whole backup, whose pending chunks are all dropped).
    std::lock_guard lk(pending->mu);
    if (!pending->digests.insert(r.digest).second) return r;
  }
  struct stat st {};
  // The same data has the same stored length (an encrypted blob: data + kBlobOverhead).
  if (::stat(path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == blob.size()) return r;
  std::string dir = root_ + "/chunks/" + r.digest.substr(0, 2);
  if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) return errno_error(errno, "mkdir", dir);
  std::string tmp = fmt::format("{}/.tmp-{}-{}", dir, ::getpid(), tmp_counter.fetch_add(1));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) return errno_error(errno, "create", tmp);
  auto w = write_all(fd, blob, tmp);
  if (w && !pending && ::fdatasync(fd) != 0) w = errno_error(errno, "fdatasync", tmp);
  // Start the writeback now (it does not wait for it): commit()'s fdatasync then finds
  // the data mostly on disk, and a large backup does not pile up dirty pages. Advisory:
  // without it the data is written back later.
  if (w && pending) (void)::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  if (::close(fd) != 0 && w) w = errno_error(errno, "close", tmp);
  if (w && pending) {
    std::lock_guard lk(pending->mu);
    pending->renames.emplace_back(tmp, path);
    r.stored = true;
    return r;
  }
  if (w && ::rename(tmp.c_str(), path.c_str()) != 0) w = errno_error(errno, "rename", path);
  if (!w) {
    ::unlink(tmp.c_str());
    return tl::unexpected(w.error());
  }
  r.stored = true;
  return r;
}

Result<std::string> Repository::checked_blob(const std::string& digest, std::string* plain) const {
  if (!is_sha256_hex(digest)) return invalid_argument("digest", "not a sha256 hex digest");
  auto blob = read_whole(chunk_path(digest));
  if (!blob) return tl::unexpected(blob.error());
  if (!key_) {
    if (chunk_id(blob->data(), blob->size()) != digest)
      return internal_error("chunk " + digest + " is corrupt");
    if (plain) *plain = *blob;
    return blob;
  }
  auto data = key_->open(BlobKind::chunk, *blob, digest);
  if (!data) return internal_error("chunk " + digest + " " + data.error().message);
  if (chunk_id(data->data(), data->size()) != digest)
    return internal_error("chunk " + digest + " is corrupt (its HMAC id differs)");
  if (plain) *plain = std::move(*data);
  return blob;
}

Result<std::string> Repository::read_chunk(const std::string& digest) const {
  std::string plain;
  auto blob = checked_blob(digest, &plain);
  if (!blob) return tl::unexpected(blob.error());
  return plain;
}

Result<std::string> Repository::read_chunk_blob(const std::string& digest) const {
  return checked_blob(digest, nullptr);
}

Status Repository::write_meta(const std::string& path, const std::string& json,
                              std::string_view aad) const {
  if (!key_) return write_file_atomic(path, json, 0640);
  auto blob = key_->seal(BlobKind::metadata, json, aad);
  if (!blob) return tl::unexpected(blob.error());
  return write_file_atomic(path, *blob, 0640);
}

Result<nlohmann::json> Repository::read_meta(const std::string& path, std::string_view aad) const {
  if (!key_) return read_json(path);
  auto blob = read_whole(path);
  if (!blob) return tl::unexpected(blob.error());
  auto text = key_->open(BlobKind::metadata, *blob, aad);
  if (!text) return internal_error(path + " " + text.error().message);
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded()) return internal_error(path + " is not valid JSON");
  return j;
}

Status Repository::begin_backup(const std::string& id) const {
  if (auto s = validate_backup_id(id); !s) return s;
  std::string dir = backup_dir(id);
  if (::mkdir(dir.c_str(), 0750) != 0) {
    if (errno == EEXIST) return make_error(ErrorCode::already_exists, "backup " + id + " exists");
    return errno_error(errno, "mkdir", dir);
  }
  return {};
}

Status Repository::write_index(const std::string& id, const DiskIndex& idx) const {
  if (auto s = validate_backup_id(id); !s) return s;
  if (auto s = validate_disk_name(idx.disk); !s) return s;
  return write_meta(backup_dir(id) + "/" + idx.disk + ".idx", to_json(idx).dump(),
                    "index " + id + "/" + idx.disk);
}

Result<DiskIndex> Repository::read_index(const std::string& id, const std::string& disk) const {
  if (auto s = validate_backup_id(id); !s) return tl::unexpected(s.error());
  if (auto s = validate_disk_name(disk); !s) return tl::unexpected(s.error());
  auto j = read_meta(backup_dir(id) + "/" + disk + ".idx", "index " + id + "/" + disk);
  if (!j) return tl::unexpected(j.error());
  auto idx = parse_index(*j);
  if (!idx) return tl::unexpected(idx.error().wrap("backup " + id + " disk " + disk));
  if (idx->disk != disk) return internal_error("backup " + id + ": index names another disk");
  return idx;
}

Status Repository::commit(const Manifest& m, PendingChunks* pending) const {
  if (auto s = validate_backup_id(m.id); !s) return s;
  if (pending && !pending->renames.empty()) {
    // Each new chunk's data made durable, then its name, then the folders holding the
    // names (per file, not syncfs: the file system may be shared with busy neighbours).
    // From a few threads at once: each fdatasync also flushes the device's cache, and
    // the block layer merges flushes that arrive together (one after another, a backup of
    // 1 GiB in 4 MiB chunks waited for 256 flushes in a row).
    std::set<std::string> dirs;
    const auto& renames = pending->renames;
    const size_t nthreads = std::min<size_t>(kSyncThreads, renames.size());
    std::vector<Status> sync_status(nthreads);
    std::vector<std::thread> syncers;
    for (size_t t = 0; t < nthreads; ++t)
      syncers.emplace_back([&, t] {
        for (size_t k = t; k < renames.size(); k += nthreads) {
          const std::string& tmp = renames[k].first;
          int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
          if (fd < 0) {
            sync_status[t] = errno_error(errno, "open", tmp);
            return;
          }
          int rc = ::fdatasync(fd);
          int e = errno;
          ::close(fd);
          if (rc != 0) {
            sync_status[t] = errno_error(e, "fdatasync", tmp);
            return;
          }
        }
      });
    for (auto& th : syncers) th.join();
    for (auto& st : sync_status)
      if (!st) return st;
    for (auto& [tmp, final_path] : pending->renames) {
      if (::rename(tmp.c_str(), final_path.c_str()) != 0)
        return errno_error(errno, "rename", final_path);
      dirs.insert(final_path.substr(0, final_path.rfind('/')));
    }
    pending->renames.clear();
    pending->digests.clear();
    for (auto& d : dirs)
      if (auto s = fsync_parent_dir(d + "/x"); !s) return s;
  }
  // Indexes were written durably (write_file_atomic); the manifest makes the backup exist.
  return write_meta(backup_dir(m.id) + "/manifest.json", to_json(m).dump(2), "manifest " + m.id);
}

Result<Manifest> Repository::read_manifest(const std::string& id) const {
  if (auto s = validate_backup_id(id); !s) return tl::unexpected(s.error());
  auto j = read_meta(backup_dir(id) + "/manifest.json", "manifest " + id);
  if (!j) {
    if (j.error().code == ErrorCode::not_found) return not_found("no backup " + id);
    return tl::unexpected(j.error());
  }
  auto m = parse_manifest(*j);
  if (!m) return tl::unexpected(m.error().wrap("backup " + id));
  if (m->id != id) return internal_error("backup " + id + ": manifest names another id");
  return m;
}

Status Repository::record_vm_spec(const std::string& id, const nlohmann::json& spec) const {
  if (!spec.is_object()) return invalid_argument("vm_spec", "not an object");
  auto m = read_manifest(id);
  if (!m) return tl::unexpected(m.error());
  m->vm_spec = spec;
  return write_meta(backup_dir(id) + "/manifest.json", to_json(*m).dump(2), "manifest " + id);
}

Result<std::vector<Manifest>> Repository::list(const std::string& vm) const {
  std::vector<Manifest> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(root_ + "/backups", ec)) {
    std::string id = e.path().filename().string();
    if (!validate_backup_id(id)) continue;
    auto m = read_manifest(id);
    if (!m) {
      if (m.error().code == ErrorCode::not_found) continue;  // incomplete: gc removes it
      return tl::unexpected(m.error());
    }
    if (vm.empty() || m->vm == vm) out.push_back(std::move(*m));
  }
  if (ec) return internal_error("list " + root_ + "/backups: " + ec.message());
  std::sort(out.begin(), out.end(), [](const Manifest& a, const Manifest& b) {
    return a.created_unix_ms != b.created_unix_ms ? a.created_unix_ms < b.created_unix_ms
                                                  : a.id < b.id;
  });
  return out;
}

Result<std::optional<Manifest>> Repository::latest(const std::string& vm) const {
  auto l = list(vm);
  if (!l) return tl::unexpected(l.error());
  if (l->empty()) return std::optional<Manifest>{};
  return std::optional<Manifest>{l->back()};
}

Result<VerifyReport> Repository::verify(const std::string& id) const {
  auto m = read_manifest(id);
  VerifyReport rep;
  if (!m) {
    if (m.error().code != ErrorCode::internal) return tl::unexpected(m.error());
    // Unreadable, altered or failing authentication: the backup is damaged, a finding.
    rep.problems.push_back("manifest: " + m.error().message);
    return rep;
  }
  for (auto& d : m->disks) {
    auto idx = read_index(id, d.name);
    if (!idx) {
      rep.problems.push_back(idx.error().message);
      continue;
    }
    if (idx->size != d.size) rep.problems.push_back("disk " + d.name + ": index size differs");
    for (size_t i = 0; i < idx->chunks.size(); ++i) {
      const auto& c = idx->chunks[i];
      if (c.empty()) continue;
      auto data = read_chunk(c);
      if (!data) {
        rep.problems.push_back(
            fmt::format("disk {} chunk {}: {}", d.name, i, data.error().message));
        continue;
      }
      if (data->size() != chunk_length(idx->size, idx->chunk_size, i))
        rep.problems.push_back(fmt::format("disk {} chunk {}: wrong length", d.name, i));
      ++rep.chunks_checked;
      rep.bytes_checked += data->size();
    }
  }
  return rep;
}

Status Repository::remove(const std::string& id) const {
  if (auto s = validate_backup_id(id); !s) return s;
  std::error_code ec;
  if (!fs::exists(backup_dir(id) + "/manifest.json", ec)) return not_found("no backup " + id);
  // The manifest first: the backup stops existing at once, even if the rest fails.
  if (::unlink((backup_dir(id) + "/manifest.json").c_str()) != 0)
    return errno_error(errno, "unlink", backup_dir(id) + "/manifest.json");
  fs::remove_all(backup_dir(id), ec);
  if (ec) return internal_error("remove " + backup_dir(id) + ": " + ec.message());
  return {};
}

Result<GcReport> Repository::gc() const {
  GcReport rep;
  std::set<std::string> live;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(root_ + "/backups", ec)) {
    std::string id = e.path().filename().string();
    if (!fs::exists(e.path() / "manifest.json")) {
      fs::remove_all(e.path(), ec);
      if (ec) return internal_error("remove " + e.path().string() + ": " + ec.message());
      ++rep.incomplete_removed;
      continue;
    }
    auto m = read_manifest(id);
    // A backup whose manifest cannot be read keeps everything: never delete on a doubt.
    if (!m) return tl::unexpected(m.error().wrap("gc stopped"));
    for (auto& d : m->disks) {
      auto idx = read_index(id, d.name);
      if (!idx) return tl::unexpected(idx.error().wrap("gc stopped"));
      for (auto& c : idx->chunks)
        if (!c.empty()) live.insert(c);
    }
  }
  if (ec) return internal_error("list backups: " + ec.message());
  for (auto& sub : fs::directory_iterator(root_ + "/chunks", ec)) {
    if (!sub.is_directory()) continue;
    for (auto& f : fs::directory_iterator(sub.path(), ec)) {
      std::string name = f.path().filename().string();
      if (live.count(name)) continue;
      uint64_t sz = f.file_size(ec);
      if (ec) sz = 0;
      if (::unlink(f.path().c_str()) != 0) return errno_error(errno, "unlink", f.path());
      // Temp files of killed writers count as removed bytes, not chunks.
      if (name.rfind(".tmp-", 0) != 0) ++rep.chunks_removed;
      rep.bytes_removed += sz;
    }
  }
  if (ec) return internal_error("list chunks: " + ec.message());
  return rep;
}

}  // namespace strata::backup
