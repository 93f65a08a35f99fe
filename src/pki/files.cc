// Whole-file reads and atomic, mode-first writes for keys and certificates (see pki.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "strata/common/atomic_file.h"
#include "strata/pki/pki.h"

namespace strata::pki {

Status write_file_atomic(const std::string& path, const std::string& content, unsigned mode) {
  // The one home for atomic writes: mode at creation, every result checked, folder fsync.
  return strata::write_file_atomic(path, content, mode);
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return internal_error("cannot read " + path);
  return ss.str();
}

}  // namespace strata::pki
