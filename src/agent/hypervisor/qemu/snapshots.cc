// The snapshot record of a VM (see snapshots.h).
#include "snapshots.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "strata/common/atomic_file.h"
#include "vm_dir.h"

namespace strata::agent::qemu {

using nlohmann::json;

const SnapshotRecord* SnapshotTree::find(const std::string& name) const {
  for (auto& s : snapshots)
    if (s.name == name) return &s;
  return nullptr;
}

SnapshotRecord* SnapshotTree::find(const std::string& name) {
  for (auto& s : snapshots)
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<std::string> SnapshotTree::children(const std::string& name) const {
  std::vector<std::string> out;
  for (auto& s : snapshots)
    if (s.parent == name) out.push_back(s.name);
  return out;
}

std::vector<std::string> SnapshotTree::lineage(const std::string& name) const {
  std::vector<std::string> out;
  for (const SnapshotRecord* s = find(name); s && out.size() <= snapshots.size();
       s = find(s->parent))
    out.push_back(s->name);
  return out;
}

std::vector<std::string> SnapshotTree::all_files() const {
  std::vector<std::string> out;
  for (auto& [d, f] : active) out.push_back(f);
  for (auto& s : snapshots)
    for (auto& [d, f] : s.files) out.push_back(f);
  return out;
}

std::string snapshot_tree_to_json(const SnapshotTree& t) {
  json snaps = json::array();
  for (auto& s : t.snapshots)
    snaps.push_back({{"name", s.name},
                     {"parent", s.parent},
                     {"created_unix_ms", s.created_unix_ms},
                     {"consistency", s.consistency},
                     {"vm_state", s.vm_state},
                     {"files", s.files}});
  json j = {{"version", 1},
            {"next_layer", t.next_layer},
            {"current", t.current},
            {"active", t.active},
            {"snapshots", snaps}};
  return j.dump(2) + "\n";
}

Result<SnapshotTree> snapshot_tree_from_json(const std::string& text) {
  auto bad = [](const std::string& why) {
    return internal_error(std::string(kSnapshotsFile) + ": " + why);
  };
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  auto str_map = [](const json& m, std::map<std::string, std::string>& out) {
    if (!m.is_object()) return false;
    for (auto& [k, v] : m.items()) {
      if (!v.is_string()) return false;
      out[k] = v.get<std::string>();
    }
    return true;
  };
  SnapshotTree t;
  if (!j.contains("version") || j["version"] != 1) return bad("unknown version");
  if (!j.contains("next_layer") || !j["next_layer"].is_number_unsigned()) return bad("next_layer");
  t.next_layer = j["next_layer"].get<uint64_t>();
  if (!j.contains("current") || !j["current"].is_string()) return bad("current");
  t.current = j["current"].get<std::string>();
  if (!j.contains("active") || !str_map(j["active"], t.active)) return bad("active");
  if (!j.contains("snapshots") || !j["snapshots"].is_array()) return bad("snapshots");
  for (auto& s : j["snapshots"]) {
    SnapshotRecord r;
    if (!s.is_object()) return bad("a snapshot is not an object");
    for (auto* k : {"name", "parent", "consistency", "vm_state"})
      if (!s.contains(k) || !s[k].is_string()) return bad(std::string("snapshot ") + k);
    if (!s.contains("created_unix_ms") || !s["created_unix_ms"].is_number_integer())
      return bad("snapshot created_unix_ms");
    r.name = s["name"].get<std::string>();
    r.parent = s["parent"].get<std::string>();
    r.consistency = s["consistency"].get<std::string>();
    r.vm_state = s["vm_state"].get<std::string>();
    r.created_unix_ms = s["created_unix_ms"].get<int64_t>();
    if (!s.contains("files") || !str_map(s["files"], r.files)) return bad("snapshot files");
    t.snapshots.push_back(std::move(r));
  }
  if (!t.current.empty() && !t.find(t.current)) return bad("current names no snapshot");
  for (auto& s : t.snapshots)
    if (!s.parent.empty() && !t.find(s.parent)) return bad("parent of " + s.name + " missing");
  return t;
}

Result<SnapshotTree> read_snapshot_tree(const std::string& vm_dir) {
  auto text = read_small_file(vm_dir + "/" + kSnapshotsFile);
  if (!text) return tl::unexpected(text.error());
  return snapshot_tree_from_json(*text);
}

Status write_snapshot_tree(const std::string& vm_dir, const SnapshotTree& t) {
  return write_file_atomic(vm_dir + "/" + kSnapshotsFile, snapshot_tree_to_json(t), kVmFileMode);
}

}  // namespace strata::agent::qemu
