// VM folder records (see vm_dir.h).
#include "vm_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <type_traits>
#include <utility>

namespace strata::agent::qemu {

using nlohmann::json;

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<std::string> read_small_file(const std::string& path, size_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return not_found(path + " does not exist");
    return internal_error("stat " + path + ": " + std::strerror(errno));
  }
  if (static_cast<size_t>(st.st_size) > max_bytes)
    return invalid_argument("path", path + " is too large");
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

Result<json> read_json(const std::string& path) {
  auto text = read_small_file(path);
  if (!text) return tl::unexpected(text.error());
  json j = json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return internal_error(path + " is not a JSON object");
  return j;
}

template <typename T>
T get_or(const json& j, const char* key, T def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // get<int>() of a float converts with a cast that is undefined out of range (a damaged
    // file: 1e300), and narrows a large integer: only an integer within T's range is read.
    if (it->is_number_unsigned())
      return std::in_range<T>(it->get<uint64_t>()) ? static_cast<T>(it->get<uint64_t>()) : def;
    if (it->is_number_integer())
      return std::in_range<T>(it->get<int64_t>()) ? static_cast<T>(it->get<int64_t>()) : def;
    return def;
  }
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    return def;
  }
}

}  // namespace

Status write_exit_record(const std::string& vm_dir, const ExitRecord& r) {
  json j = {{"qemu_pid", r.qemu_pid},
            {"signaled", r.signaled},
            {"code", r.code},
            {"at_unix_ms", r.at_unix_ms}};
  return write_file_atomic(vm_dir + "/" + kExitFile, j.dump() + "\n", kVmFileMode);
}

Result<ExitRecord> read_exit_record(const std::string& vm_dir) {
  auto j = read_json(vm_dir + "/" + kExitFile);
  if (!j) return tl::unexpected(j.error());
  ExitRecord r;
  r.qemu_pid = get_or<int>(*j, "qemu_pid", 0);
  r.signaled = get_or<bool>(*j, "signaled", false);
  r.code = get_or<int>(*j, "code", 0);
  r.at_unix_ms = get_or<int64_t>(*j, "at_unix_ms", 0);
  return r;
}

Status write_state_record(const std::string& vm_dir, const StateRecord& r) {
  json j = {{"state", model::to_string(r.state)},
            {"changed_unix_ms", r.changed_unix_ms},
            {"reason", r.reason},
            {"pid", r.pid},
            {"accelerator", r.accelerator}};
  if (r.last_exit)
    j["last_exit"] = {{"signaled", r.last_exit->signaled},
                      {"code", r.last_exit->code},
                      {"reason", r.last_exit->reason},
                      {"at_unix_ms", r.last_exit->at_unix_ms}};
  if (r.profile.version > 0) j["hardware_profile"] = to_json(r.profile);
  return write_file_atomic(vm_dir + "/" + kStateFile, j.dump(2) + "\n", kVmFileMode);
}

Result<StateRecord> read_state_record(const std::string& vm_dir) {
  auto j = read_json(vm_dir + "/" + kStateFile);
  if (!j) return tl::unexpected(j.error());
  StateRecord r;
  auto st = model::vm_state_from_string(get_or<std::string>(*j, "state", ""));
  if (!st) return internal_error(vm_dir + "/state.json: unknown state");
  r.state = *st;
  r.changed_unix_ms = get_or<int64_t>(*j, "changed_unix_ms", 0);
  r.reason = get_or<std::string>(*j, "reason", "");
  r.pid = get_or<int>(*j, "pid", 0);
  r.accelerator = get_or<std::string>(*j, "accelerator", "");
  if (auto it = j->find("last_exit"); it != j->end() && it->is_object()) {
    VmExit e;
    e.signaled = get_or<bool>(*it, "signaled", false);
    e.code = get_or<int>(*it, "code", 0);
    e.reason = get_or<std::string>(*it, "reason", "");
    e.at_unix_ms = get_or<int64_t>(*it, "at_unix_ms", 0);
    r.last_exit = e;
  }
  if (auto it = j->find("hardware_profile"); it != j->end()) {
    auto p = hardware_profile_from_json(*it);
    if (!p) return tl::unexpected(p.error().wrap(vm_dir + "/state.json"));
    r.profile = *p;
  }
  return r;
}

}  // namespace strata::agent::qemu
