// Filesystem helpers for the image store: symlink-refusing lookups and confinement checks.
// Internal to strata_agent_storage.
#pragma once

#include <string>

#include "strata/common/error.h"

namespace strata::agent::storage {

enum class Kind { absent, file, dir, symlink, other };

// lstat() classification; never follows a symlink.
Result<Kind> lstat_kind(const std::string& path);

// Makes `path` a directory if absent; refuses a symlink or non-directory in its place.
Status ensure_dir(const std::string& path);

// The resolved `path` (realpath) must lie strictly inside `root` (itself canonical).
Status check_inside(const std::string& root, const std::string& path);

// `path` must exist as a regular file (not a symlink) inside `root`.
// absent → not_found, symlink → permission_denied, other types → failed_precondition.
Status check_regular_file(const std::string& root, const std::string& path);

// Copies a regular file to a new file `dest` (O_EXCL) and fsyncs it.
Status copy_file(const std::string& source, const std::string& dest);

// Removes every entry of directory `name` inside `parent` and the directory itself,
// without following symlinks (a symlinked `name` is refused). Absent → ok.
Status remove_dir_flat(const std::string& parent, const std::string& name);

// rename() that fails with already_exists instead of replacing `to`.
Status rename_noreplace(const std::string& from, const std::string& to);

}  // namespace strata::agent::storage
