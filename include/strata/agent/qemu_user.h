// The unprivileged user QEMU runs as. The shim drops to it (setgroups/setgid/setuid)
// before exec'ing QEMU, because QEMU's own -runas is a setuid() that the seccomp filter
// of `-sandbox elevateprivileges=deny` forbids. The decision which user, if any, is a pure
// function of the --qemu-user flag, the agent's euid and a user lookup, so it is tested
// without root.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "strata/common/error.h"

namespace strata::agent {

// The system user made by scripts/setup (useradd --system strata-qemu).
inline constexpr const char* kDefaultQemuUser = "strata-qemu";

struct QemuUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups (e.g. kvm for /dev/kvm)
};

struct QemuUserDecision {
  std::optional<QemuUser> user;  // nullopt: QEMU keeps the agent's own user
  std::string reason;            // for the log line and the host inventory
};

// Looks a user up by name: nullopt when there is no such user.
using UserLookup = std::function<std::optional<QemuUser>(const std::string& name)>;

// `flag` is --qemu-user (nullopt when not given). Rules:
//  - agent not root: no drop (it cannot setuid); an explicit --qemu-user naming another
//    user than the agent's own is an error.
//  - agent root, no flag: strata-qemu if that user exists, else no drop (reason says so).
//  - agent root, --qemu-user NAME: NAME must exist; a uid-0 user (e.g. root) is the
//    explicit opt-out (no drop).
Result<QemuUserDecision> decide_qemu_user(const std::optional<std::string>& flag, uid_t euid,
                                          const UserLookup& lookup);

// The real lookup: the passwd database and the user's group list.
std::optional<QemuUser> lookup_system_user(const std::string& name);

// Checks that `user` can search every folder from / down to `path` (inclusive), so QEMU
// can reach the files under it: failed_precondition naming the first folder it cannot.
Status check_searchable_by(const std::string& path, const QemuUser& user);

}  // namespace strata::agent
