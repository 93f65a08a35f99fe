// Locates the guest images built by scripts/guest-images and parses their manifest.env
// (KEY=VALUE lines, one pair of surrounding double quotes stripped; see docs/guest-images.md).
// Header-only: integration tests include it directly.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace strata::integration {

struct GuestImages {
  std::string dir;                            // ${STRATA_IMAGES:-<repo>/.cache/images}
  std::map<std::string, std::string> values;  // empty when manifest.env is missing

  std::string get(const std::string& key) const {
    auto it = values.find(key);
    return it == values.end() ? std::string() : it->second;
  }

  // Empty when every key is present and names a readable file (for *_CMDLINE and other
  // non-path keys only presence is checked); otherwise a reason to print with SKIPPED.
  std::string missing(const std::vector<std::string>& path_keys,
                      const std::vector<std::string>& other_keys = {}) const {
    if (values.empty()) return "no guest images in " + dir + " (run scripts/guest-images)";
    for (const auto& k : other_keys)
      if (!values.count(k)) return k + " missing from " + dir + "/manifest.env";
    for (const auto& k : path_keys) {
      auto v = get(k);
      if (v.empty()) return k + " missing from " + dir + "/manifest.env (run scripts/guest-images)";
      if (::access(v.c_str(), R_OK) != 0) return k + "=" + v + " is not readable";
    }
    return "";
  }
};

// `repo_dir` is the source tree (the default images folder is <repo>/.cache/images).
inline GuestImages load_guest_images(const std::string& repo_dir) {
  GuestImages g;
  const char* env = std::getenv("STRATA_IMAGES");
  g.dir = (env && *env) ? env : repo_dir + "/.cache/images";
  std::ifstream in(g.dir + "/manifest.env");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos || eq == 0) continue;
    std::string v = line.substr(eq + 1);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    g.values[line.substr(0, eq)] = v;
  }
  return g;
}

}  // namespace strata::integration
