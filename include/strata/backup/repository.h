// A backup repository (docs/internals/backup.md): a folder holding deduplicated chunks
// (chunks/ab/<id>: the sha256, or in an encrypted repository the HMAC-SHA256 id of an
// AES-256-GCM blob), and per backup a folder with one index per disk and a manifest
// written last. The root comes from the manager's configuration only; every other path
// is built here from validated ids and disk names.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "strata/backup/crypto.h"
#include "strata/backup/index.h"
#include "strata/common/error.h"

namespace strata::backup {

struct DiskRecord {
  std::string name;
  uint64_t size = 0;
  std::string bitmap;       // the dirty bitmap created for the next incremental ("" none)
  uint64_t bytes_read = 0;  // read from the VM's disk for this backup
  uint64_t bytes_new = 0;   // chunks this backup added to the repository
  uint64_t chunks_read = 0;
  uint64_t zero_chunks = 0;
};

struct Manifest {
  std::string id;
  std::string vm;
  int64_t created_unix_ms = 0;
  std::string kind;     // "full" | "incremental"
  std::string parent;   // incremental: the backup it extends; else ""
  bool frozen = false;  // the guest's filesystems were frozen at the backup point
  std::vector<DiskRecord> disks;
  // The VM's spec (model::VmSpec as JSON) as the manager knew it when the backup was made,
  // added by the manager once the backup exists (record_vm_spec): what a restore into a
  // new VM creates. Null in backups made before it was recorded (the field is optional).
  nlohmann::json vm_spec;
};
nlohmann::json to_json(const Manifest& m);
Result<Manifest> parse_manifest(const nlohmann::json& j);

// Disk names name index files: 1-64 of [A-Za-z0-9_.-], not starting with '.' or '-'.
Status validate_disk_name(std::string_view name);

struct VerifyReport {
  uint64_t chunks_checked = 0;
  uint64_t bytes_checked = 0;
  std::vector<std::string> problems;  // empty: the backup is intact
};

struct GcReport {
  uint64_t chunks_removed = 0;
  uint64_t bytes_removed = 0;
  uint64_t incomplete_removed = 0;  // backup folders without a manifest
};

// flock on REPO/.lock; released when destroyed.
class RepoLock {
 public:
  RepoLock(RepoLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  RepoLock& operator=(RepoLock&&) = delete;
  RepoLock(const RepoLock&) = delete;
  RepoLock& operator=(const RepoLock&) = delete;
  ~RepoLock();

 private:
  friend class Repository;
  explicit RepoLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// The repository's mode, recorded in REPO/config.json when it is initialised (the first
// open of a folder that holds no backup): {"version":1,"encryption":"none"} or
// {"version":1,"encryption":"aes-256-gcm","key_fingerprint":"<32 hex>"}, never the key.
inline constexpr std::string_view kEncryptionNone = "none";
inline constexpr std::string_view kEncryptionAesGcm = "aes-256-gcm";

class Repository {
 public:
  // `root` must be an absolute path to an existing folder; chunks/ and backups/ are made.
  // With `key` the repository is encrypted (docs/internals/backup.md "Encryption"). A
  // folder without config.json is initialised in the mode asked for when it holds no
  // backup and no chunk; one that does (written before config.json existed) is plain.
  // failed_precondition, naming the problem, when the mode or the key does not match the
  // config: an encrypted repository opened without a key or with another key, a plain one
  // opened with a key.
  static Result<Repository> open(const std::string& root, const RepoKey* key = nullptr);

  const std::string& root() const { return root_; }
  bool encrypted() const { return key_ != nullptr; }
  // The key's fingerprint ("" for a plain repository).
  std::string key_fingerprint() const { return key_ ? key_->fingerprint() : std::string(); }
  // The key (null for a plain repository): what the manager hands the agent that writes.
  const RepoKey* key() const { return key_.get(); }

  // Backups hold the shared lock for their whole run; delete and gc the exclusive one.
  // Neither waits: conflict when the other kind is held.
  Result<RepoLock> lock_shared() const;
  Result<RepoLock> lock_exclusive() const;

  struct PutResult {
    std::string digest;
    bool stored = false;  // false: the chunk was already there (deduplicated)
  };
  // Chunks a backup wrote as temp files, renamed to their digests by commit() once the
  // file system has been flushed: a chunk file under its final name is always whole,
  // without an fsync per chunk. Several threads may put chunks into one (mu guards it).
  struct PendingChunks {
    std::mutex mu;
    std::vector<std::pair<std::string, std::string>> renames;  // temp -> final
    std::set<std::string> digests;                             // deduplication within the backup
  };
  // A chunk's id: sha256 of the data in a plain repository, HMAC-SHA256 under the key's
  // chunk-id sub-key in an encrypted one.
  std::string chunk_id(const void* data, size_t size) const;
  // Stores a chunk under its id (encrypted first in an encrypted repository). With `pending`: a
  // temp file now, its final name at commit(); without: temp file, fdatasync, rename at once.
  // Either way a chunk file is whole or absent. With `pending` the temp file's writeback is started
  // at once (sync_file_range), so the disk writes while the backup reads on and commit() mostly
  // finds clean files. Safe to call from several threads.
  Result<PutResult> put_chunk(const void* data, size_t size,
                              PendingChunks* pending = nullptr) const;
  // Reads a chunk and checks its digest (internal naming the chunk when it differs); in an
  // encrypted repository decrypts it first (internal when its GCM tag does not check).
  Result<std::string> read_chunk(const std::string& digest) const;
  // The chunk file as stored (the encrypted blob, or the data of a plain repository),
  // checked as read_chunk does: what a sync between repositories of one key copies.
  Result<std::string> read_chunk_blob(const std::string& digest) const;
  // Stores a blob read_chunk_blob returned from a repository in the same mode and with the
  // same key, under `digest`, as put_chunk stores (the caller checked the modes: sync).
  Result<PutResult> put_chunk_blob(const std::string& digest, std::string_view blob,
                                   PendingChunks* pending = nullptr) const;
  std::string chunk_path(const std::string& digest) const;

  // Makes backups/<id>/ (already_exists if present).
  Status begin_backup(const std::string& id) const;
  Status write_index(const std::string& id, const DiskIndex& idx) const;
  Result<DiskIndex> read_index(const std::string& id, const std::string& disk) const;
  // Flushes the file system, gives `pending` chunks their final names and flushes again
  // (every chunk and index durable), then writes the manifest: from then on the backup
  // exists.
  Status commit(const Manifest& m, PendingChunks* pending = nullptr) const;
  Result<Manifest> read_manifest(const std::string& id) const;
  // Adds the VM's spec (a JSON object) to a complete backup's manifest, rewritten
  // atomically (readers see the old or the new one). not_found when it does not exist.
  Status record_vm_spec(const std::string& id, const nlohmann::json& spec) const;
  // Complete backups (with a manifest), oldest first; `vm` filters when not empty.
  Result<std::vector<Manifest>> list(const std::string& vm = "") const;
  // The newest complete backup of `vm`, if any.
  Result<std::optional<Manifest>> latest(const std::string& vm) const;

  // Rehashes every chunk each index of the backup names (in an encrypted repository: checks
  // each chunk's GCM tag and its HMAC id). A manifest that cannot be read or fails
  // authentication is a problem of the report, not an error.
  Result<VerifyReport> verify(const std::string& id) const;
  // Removes the backup's folder (caller holds the exclusive lock; then gc).
  Status remove(const std::string& id) const;
  // Removes chunks no index names and backup folders without a manifest (caller holds
  // the exclusive lock, so no backup is running).
  Result<GcReport> gc() const;

 private:
  Repository(std::string root, std::shared_ptr<const RepoKey> key)
      : root_(std::move(root)), key_(std::move(key)) {}
  std::string backup_dir(const std::string& id) const { return root_ + "/backups/" + id; }
  Result<PutResult> store_blob(const std::string& digest, std::string_view blob,
                               PendingChunks* pending) const;
  Result<std::string> checked_blob(const std::string& digest, std::string* plain) const;
  // Manifests and indexes: JSON in a plain repository, sealed (metadata sub-key, `aad`
  // naming the file) in an encrypted one.
  Status write_meta(const std::string& path, const std::string& json, std::string_view aad) const;
  Result<nlohmann::json> read_meta(const std::string& path, std::string_view aad) const;
  std::string root_;
  std::shared_ptr<const RepoKey> key_;  // null: plain
};

// Repository::open with the key as raw bytes, as it crosses gRPC ("" for a plain
// repository; invalid_argument when not 32 bytes).
Result<Repository> open_repository(const std::string& root, std::string_view raw_key);

}  // namespace strata::backup
