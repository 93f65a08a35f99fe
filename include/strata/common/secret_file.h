// Reading a secret (API token, join token, database password) from a file instead of a
// command line, where every local user could read it in `ps`. The file must not be
// readable or writable by group or others: a loose file is refused with a message that
// says how to fix it, as ssh does for keys.
#pragma once

#include <string>
#include <string_view>

#include "strata/common/error.h"

namespace strata {

// The file's content with trailing whitespace (the newline) removed. Errors:
//   not_found          the file does not exist
//   permission_denied  mode allows group/other access ("chmod 600 PATH"), or not readable
//   invalid_argument   not a regular file, empty, or larger than 64 KiB
// `what` names the secret in messages ("token file", "--join-token-file").
Result<std::string> read_secret_file(const std::string& path, std::string_view what);
// The same with another size limit: a file of many secrets (one join token per simulated
// host, `strata-agent sim --join-tokens-file`).
Result<std::string> read_secret_file(const std::string& path, std::string_view what,
                                     size_t max_bytes);

}  // namespace strata
