// Repository sync (strata/backup/sync.h, docs/internals/backup.md "Sync").
#include "strata/backup/sync.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <filesystem>
#include <set>

namespace strata::backup {

namespace {

bool sync_chunk_present(const Repository& repo, const std::string& digest) {
  struct stat st {};
  // A chunk under its final name is whole (the writers rename it only once durable).
  return ::stat(repo.chunk_path(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void sync_report_progress(const SyncOptions& opts, const SyncProgress& p) {
  if (opts.progress) opts.progress(p);
}

// Reads one copied backup back from the target: the manifest, each index equal to the
// source's, every chunk this sync wrote for it rehashed.
void sync_verify_backup(const Repository& to, const Manifest& m,
                        const std::vector<DiskIndex>& indexes,
                        const std::vector<std::string>& written, SyncReport& rep) {
  auto back = to.read_manifest(m.id);
  if (!back) {
    rep.problems.push_back(fmt::format("backup {}: {}", m.id, back.error().message));
    return;
  }
  if (to_json(*back) != to_json(m))
    rep.problems.push_back(fmt::format("backup {}: manifest differs from the source's", m.id));
  for (const auto& idx : indexes) {
    auto i = to.read_index(m.id, idx.disk);
    if (!i) {
      rep.problems.push_back(fmt::format("backup {}: {}", m.id, i.error().message));
      continue;
    }
    if (i->size != idx.size || i->chunk_size != idx.chunk_size || i->chunks != idx.chunks)
      rep.problems.push_back(
          fmt::format("backup {} disk {}: index differs from the source's", m.id, idx.disk));
  }
  for (const auto& d : written) {
    auto data = to.read_chunk(d);
    if (!data) {
      rep.problems.push_back(fmt::format("backup {}: {}", m.id, data.error().message));
      continue;
    }
    ++rep.chunks_verified;
  }
}

}  // namespace

Result<SyncReport> sync_repository(const Repository& from, const Repository& to,
                                   const SyncOptions& opts) {
  if (from.root() == to.root())
    return invalid_argument("backup_sync_repo", "the sync target is the repository itself");
  // Blobs are copied as they are stored: both repositories plain, or both encrypted with
  // one key. Anything else would need re-encryption (not done), so it is refused.
  if (from.encrypted() != to.encrypted() || from.key_fingerprint() != to.key_fingerprint()) {
    auto mode = [](const Repository& r) {
      return r.encrypted() ? "encrypted with key " + r.key_fingerprint() : std::string("plain");
    };
    return make_error(ErrorCode::failed_precondition,
                      fmt::format("sync refused: the source repository is {} and the target {}; "
                                  "a sync copies chunks as they are stored, so both must be "
                                  "plain or both encrypted with the same key",
                                  mode(from), mode(to)),
                      "backup_sync_repo");
  }
  auto src_lock = from.lock_shared();
  if (!src_lock) return tl::unexpected(src_lock.error().wrap("sync source"));
  auto dst_lock = to.lock_exclusive();
  if (!dst_lock)
    return make_error(ErrorCode::conflict,
                      "the sync target is in use (another sync, a prune or a gc); retry");

  auto src = from.list();
  if (!src) return tl::unexpected(src.error().wrap("sync: list the source"));
  auto dst = to.list();
  if (!dst) return tl::unexpected(dst.error().wrap("sync: list the target"));
  std::set<std::string> present;
  for (const auto& m : *dst) present.insert(m.id);

  SyncReport rep;
  std::vector<const Manifest*> todo;
  for (const auto& m : *src) {
    if (present.count(m.id))
      rep.already_present.push_back(m.id);
    else
      todo.push_back(&m);
  }
  SyncProgress& p = rep.totals;
  p.backups_total = todo.size();
  sync_report_progress(opts, p);

  for (const Manifest* mp : todo) {
    const Manifest& m = *mp;
    p.backup = m.id;
    p.phase = "chunks";
    sync_report_progress(opts, p);
    // Left by a sync stopped before its manifest: nothing references it (we hold the
    // target's exclusive lock, so no other writer is behind it).
    std::error_code ec;
    std::filesystem::remove_all(to.root() + "/backups/" + m.id, ec);
    if (ec) return internal_error("sync: clear " + m.id + " in the target: " + ec.message());

    std::vector<DiskIndex> indexes;
    for (const auto& d : m.disks) {
      auto idx = from.read_index(m.id, d.name);
      if (!idx) return tl::unexpected(idx.error().wrap("sync: backup " + m.id));
      indexes.push_back(std::move(*idx));
    }
    Repository::PendingChunks pending;
    std::vector<std::string> written;
    std::set<std::string> seen;
    for (const auto& idx : indexes) {
      for (const auto& digest : idx.chunks) {
        if (digest.empty() || !seen.insert(digest).second) continue;
        if (opts.stop && opts.stop())
          return make_error(ErrorCode::failed_precondition,
                            fmt::format("sync stopped while copying backup {} ({} of {} "
                                        "backups copied)",
                                        m.id, p.backups_done, p.backups_total));
        if (sync_chunk_present(to, digest)) {
          ++p.chunks_skipped;
          continue;
        }
        // read_chunk_blob rehashes (encrypted: checks the tag and the HMAC id): a corrupt
        // source chunk is not carried to the copy. The blob is copied as it is stored.
        auto data = from.read_chunk_blob(digest);
        if (!data) return tl::unexpected(data.error().wrap("sync: backup " + m.id));
        auto put = to.put_chunk_blob(digest, *data, &pending);
        if (!put) return tl::unexpected(put.error().wrap("sync: backup " + m.id));
        if (put->stored) {
          ++p.chunks_copied;
          p.bytes_copied += data->size();
          written.push_back(digest);
        } else {
          ++p.chunks_skipped;
        }
        sync_report_progress(opts, p);
      }
    }
    p.phase = "committing";
    sync_report_progress(opts, p);
    if (auto st = to.begin_backup(m.id); !st)
      return tl::unexpected(st.error().wrap("sync: backup " + m.id));
    for (const auto& idx : indexes)
      if (auto st = to.write_index(m.id, idx); !st)
        return tl::unexpected(st.error().wrap("sync: backup " + m.id));
    // The chunks made durable and named, then the manifest: from here the copy exists.
    if (auto st = to.commit(m, &pending); !st)
      return tl::unexpected(st.error().wrap("sync: backup " + m.id));
    if (opts.verify) sync_verify_backup(to, m, indexes, written, rep);
    ++p.backups_done;
    p.phase = "done";
    rep.copied.push_back(m.id);
    sync_report_progress(opts, p);
  }
  p.backup.clear();
  p.phase.clear();

  if (opts.remove_vanished) {
    std::set<std::string> in_source;
    for (const auto& m : *src) in_source.insert(m.id);
    if (in_source.empty() && !dst->empty()) {
      rep.removal_skipped = fmt::format(
          "the source has no backups and the target has {}: nothing removed (a wrong or "
          "unmounted source folder?)",
          dst->size());
      return rep;
    }
    p.phase = "removing";
    for (const auto& m : *dst) {  // oldest first, as listed
      if (in_source.count(m.id)) continue;
      if (opts.stop && opts.stop())
        return make_error(ErrorCode::failed_precondition,
                          fmt::format("sync stopped while removing vanished backups ({} "
                                      "removed, every copy done)",
                                      rep.removed.size()));
      p.backup = m.id;
      sync_report_progress(opts, p);
      if (auto st = to.remove(m.id); !st)
        return tl::unexpected(st.error().wrap("sync: remove " + m.id + " from the target"));
      rep.removed.push_back(m.id);
    }
    p.backup.clear();
    if (!rep.removed.empty()) {
      auto gc = to.gc();  // under the target's exclusive lock, held since the start
      if (!gc) return tl::unexpected(gc.error().wrap("sync: gc of the target"));
      rep.gc = *gc;
    }
    p.phase.clear();
    sync_report_progress(opts, p);
  }
  return rep;
}

}  // namespace strata::backup
