// Which user QEMU runs as (see strata/agent/qemu_user.h).
#include "strata/agent/qemu_user.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace strata::agent {

Result<QemuUserDecision> decide_qemu_user(const std::optional<std::string>& flag, uid_t euid,
                                          const UserLookup& lookup) {
  if (flag && flag->empty()) return invalid_argument("qemu-user", "must name a user");
  if (euid != 0) {
    if (!flag) return QemuUserDecision{std::nullopt, "agent is not root: QEMU runs as the agent's user"};
    auto u = lookup(*flag);
    if (u && u->uid == euid)
      return QemuUserDecision{std::nullopt, "--qemu-user names the agent's own user"};
    return make_error(ErrorCode::failed_precondition,
                      "--qemu-user " + *flag + " needs the agent to run as root", "qemu-user");
  }
  const std::string name = flag ? *flag : kDefaultQemuUser;
  auto u = lookup(name);
  if (!u) {
    if (flag) return invalid_argument("qemu-user", "no user named " + name);
    return QemuUserDecision{std::nullopt, std::string("no user ") + kDefaultQemuUser +
                                              " (scripts/setup creates it): QEMU runs as root"};
  }
  if (u->uid == 0)
    return QemuUserDecision{std::nullopt, "--qemu-user " + name + " is uid 0: QEMU runs as root"};
  return QemuUserDecision{std::move(*u), "QEMU runs as " + name};
}

std::optional<QemuUser> lookup_system_user(const std::string& name) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found)
    return std::nullopt;
  QemuUser u{name, pw.pw_uid, pw.pw_gid, {}};
  int n = 32;
  std::vector<gid_t> groups(static_cast<size_t>(n));
  if (::getgrouplist(name.c_str(), pw.pw_gid, groups.data(), &n) < 0) {
    groups.resize(static_cast<size_t>(n));
    if (::getgrouplist(name.c_str(), pw.pw_gid, groups.data(), &n) < 0) n = 0;
  }
  groups.resize(static_cast<size_t>(std::max(n, 0)));
  u.groups = std::move(groups);
  if (std::find(u.groups.begin(), u.groups.end(), u.gid) == u.groups.end())
    u.groups.insert(u.groups.begin(), u.gid);
  return u;
}

Status check_searchable_by(const std::string& path, const QemuUser& user) {
  namespace fs = std::filesystem;
  fs::path p = fs::absolute(path).lexically_normal();
  fs::path cur = "/";
  std::vector<fs::path> chain = {cur};
  for (const auto& part : p.relative_path()) {
    if (part.empty()) continue;
    cur /= part;
    chain.push_back(cur);
  }
  for (const auto& dir : chain) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0)
      return internal_error("stat " + dir.string() + ": " + std::strerror(errno));
    bool in_group = std::find(user.groups.begin(), user.groups.end(), st.st_gid) != user.groups.end() ||
                    st.st_gid == user.gid;
    mode_t bit = st.st_uid == user.uid ? S_IXUSR : in_group ? S_IXGRP : S_IXOTH;
    if ((st.st_mode & bit) == 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return make_error(ErrorCode::failed_precondition,
                        "QEMU's user " + user.name + " cannot search " + dir.string() + " (mode " +
                            mode + "): let it (chmod o+x " + dir.string() +
                            ") or run QEMU as root with --qemu-user root");
    }
  }
  return {};
}

}  // namespace strata::agent
