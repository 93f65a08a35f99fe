// Durable whole-file writes and renames: the one home for "write a temp file, fsync it,
// rename it into place, fsync the folder". Every step's result is checked, so a short
// write (full disk) never reaches the final name, and a rename survives a power cut
// (without the folder's fsync the new name may be lost although the data is on disk).
#pragma once

#include <string>
#include <string_view>

#include "strata/common/error.h"

namespace strata {

// Writes `data` to `path` atomically: a new temp file beside it, created with O_EXCL and
// `mode` (so a key is never readable by others, not even briefly; the umask cannot widen
// it and fchmod puts back bits it removed), every write checked, fsync, close checked,
// rename over `path`, fsync of the folder. On any error the temp file is removed and
// `path` keeps its old content. A full disk is resource_exhausted ("no space left ...").
Status write_file_atomic(const std::string& path, std::string_view data, unsigned mode = 0644);

// rename() that fails with already_exists instead of replacing `to`, then fsyncs the
// folder of `to` (and of `from` when it differs). On failure `from` is removed.
Status rename_noreplace(const std::string& from, const std::string& to);

// rename() over `to`, then fsyncs the folder(s), so the new name is durable.
Status rename_durable(const std::string& from, const std::string& to);

// fsyncs the folder that holds `path` (its parent), making a rename or create in it durable.
Status fsync_parent_dir(const std::string& path);

// Writes all of `data` to fd (retrying short writes and EINTR); `what` names the file in
// the error. ENOSPC/EDQUOT become resource_exhausted.
Status write_all(int fd, std::string_view data, const std::string& what);

}  // namespace strata
