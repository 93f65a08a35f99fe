// Repository sync (docs/internals/backup.md "Sync"): copies every complete backup of one
// repository that a second one lacks, as the off-site copy Proxmox Backup Server's sync
// job makes. Per backup, in the writer's order and with its crash safety: the chunks the
// target lacks (temp files, fdatasync, rename, their folders fsynced; chunks already in the
// target are skipped, so deduplication carries over), then the indexes, the manifest last.
// A sync stopped at any point leaves only unreferenced chunks and folders without a
// manifest in the target (its gc removes them), never a half backup.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "strata/backup/repository.h"
#include "strata/common/error.h"

namespace strata::backup {

struct SyncProgress {
  uint64_t backups_total = 0;  // backups the target lacked when the sync started
  uint64_t backups_done = 0;
  uint64_t bytes_copied = 0;    // chunk bytes written to the target
  uint64_t chunks_copied = 0;
  uint64_t chunks_skipped = 0;  // already in the target (deduplicated)
  std::string backup;           // the backup being copied ("" between backups)
  // "chunks": copying the backup's chunks; "committing": its chunks are all in the target
  // (still under temp names), the indexes and manifest are next; "done": it exists there;
  // "removing": remove_vanished is removing `backup` from the target.
  std::string phase;
};

struct SyncOptions {
  // Reread every chunk the sync wrote from the target and rehash it, and read back each
  // copied backup's manifest and indexes.
  bool verify = false;
  // After the copy, remove the target's backups the source no longer has (pruned or
  // deleted there), then gc the target: the target mirrors the source's retention, as
  // Proxmox Backup Server's sync job does with remove-vanished. Skipped while the source
  // has no backup at all and the target has some: an empty source is far likelier a wrong
  // or unmounted folder than a retention that kept nothing.
  bool remove_vanished = false;
  // Called as the sync goes (after each chunk, at each phase); on the calling thread.
  std::function<void(const SyncProgress&)> progress;
  // Asked between chunks: true stops the sync (cancelled; what is copied stays valid).
  std::function<bool()> stop;
};

struct SyncReport {
  SyncProgress totals;
  std::vector<std::string> copied;           // backup ids, in the order copied (oldest first)
  std::vector<std::string> already_present;  // complete in the target before the sync
  uint64_t chunks_verified = 0;
  std::vector<std::string> problems;  // verify: what did not read back right (empty: fine)
  // remove_vanished: the target's backups removed (oldest first), what the target's gc
  // freed, and why nothing was removed when the safeguard above held ("" otherwise).
  std::vector<std::string> removed;
  GcReport gc;
  std::string removal_skipped;
};

// Copies `from`'s complete backups missing in `to` (by id; oldest first). Holds `from`'s
// shared lock (its backups may run, a prune or gc there waits) and `to`'s exclusive lock
// (the sync is the target's only writer; a gc there waits): conflict when either is held
// the other way. A folder without a manifest in the target (an earlier sync stopped) is
// replaced. A source chunk whose content does not match its digest stops the sync
// (internal) before anything of that backup is committed. With remove_vanished, the
// removals come after every copy (a stop before them removes nothing) and each is atomic
// (Repository::remove unlinks the manifest first); the gc then frees their chunks.
Result<SyncReport> sync_repository(const Repository& from, const Repository& to,
                                   const SyncOptions& opts = {});

}  // namespace strata::backup
