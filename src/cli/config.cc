// Server URL / token resolution: flag > env > config file > default (see config.h).
#include "strata/cli/config.h"

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "strata/common/json.h"
#include "strata/common/secret_file.h"

namespace strata::cli {

namespace {

std::string trim(std::string s) {
  auto issp = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  while (!s.empty() && issp(s.back())) s.pop_back();
  size_t i = 0;
  while (i < s.size() && issp(s[i])) ++i;
  return s.substr(i);
}

struct FileConfig {
  std::optional<std::string> server, token, ca_file;
  std::string path;
};

Result<FileConfig> load_file(const ConfigInputs& in) {
  FileConfig fc;
  auto explicit_path = in.env("STRATA_CONFIG");
  if (explicit_path && !explicit_path->empty()) {
    fc.path = *explicit_path;
  } else {
    auto home = in.env("HOME");
    if (!home || home->empty()) return fc;
    fc.path = *home + "/.config/strata/config.json";
  }
  auto text = in.read_file(fc.path);
  if (!text) {
    if (explicit_path && !explicit_path->empty())
      return invalid_argument("STRATA_CONFIG", "config file " + fc.path + " cannot be read");
    return fc;
  }
  auto parsed = parse_json(*text, JsonLimits{.max_depth = 4, .max_values = 100});
  if (!parsed)
    return invalid_argument("config", "config file " + fc.path + ": " + parsed.error().message);
  if (!parsed->is_object())
    return invalid_argument("config", "config file " + fc.path + " is not a JSON object");
  const nlohmann::json& j = *parsed;
  for (auto& [k, v] : j.items()) {
    if (k != "server" && k != "token" && k != "ca_file")
      return invalid_argument("config", "config file " + fc.path + ": unknown key '" + k +
                                            "' (allowed: server, token, ca_file)");
    if (!v.is_string())
      return invalid_argument("config",
                              "config file " + fc.path + ": '" + k + "' must be a string");
  }
  if (j.contains("server")) fc.server = j["server"].get<std::string>();
  if (j.contains("token")) fc.token = j["token"].get<std::string>();
  if (j.contains("ca_file")) fc.ca_file = j["ca_file"].get<std::string>();
  return fc;
}

}  // namespace

Result<ClientConfig> resolve_config(const ConfigInputs& in) {
  ClientConfig c;
  c.server_source = "default";
  c.token_source = "none";
  auto file = load_file(in);
  if (!file) return tl::unexpected(file.error());
  std::string file_src = "file:" + file->path;

  if (in.flag_server) {
    c.server = *in.flag_server;
    c.server_source = "flag";
  } else if (auto e = in.env("STRATA_SERVER"); e && !e->empty()) {
    c.server = *e;
    c.server_source = "env";
  } else if (file->server) {
    c.server = *file->server;
    c.server_source = file_src;
  }

  if (in.flag_token) {
    c.token = *in.flag_token;
    c.token_source = "flag";
  } else if (auto e = in.env("STRATA_TOKEN"); e && !e->empty()) {
    c.token = *e;
    c.token_source = "env";
  } else if (auto tf = in.env("STRATA_TOKEN_FILE"); tf && !tf->empty()) {
    if (in.read_secret) {
      auto secret = in.read_secret(*tf);
      if (!secret) {
        Error e = secret.error();
        e.field = "STRATA_TOKEN_FILE";
        e.message = "STRATA_TOKEN_FILE: " + e.message;
        return tl::unexpected(e);
      }
      c.token = trim(*secret);
    } else {
      auto text = in.read_file(*tf);
      if (!text)
        return invalid_argument("STRATA_TOKEN_FILE", "token file " + *tf + " cannot be read");
      c.token = trim(*text);
    }
    c.token_source = "env-file:" + *tf;
  } else if (file->token) {
    // A config file that holds the token is a token file: group or others able to read it
    // is refused as for STRATA_TOKEN_FILE (the same check, the same "chmod 600" advice).
    if (in.read_secret) {
      if (auto st = in.read_secret(file->path); !st) {
        Error e = st.error();
        e.field = "config";
        e.message = "config file " + file->path + " holds a token: " + e.message;
        return tl::unexpected(e);
      }
    }
    c.token = *file->token;
    c.token_source = file_src;
  }
  if (in.flag_ca_file)
    c.ca_file = *in.flag_ca_file;
  else if (auto e = in.env("STRATA_CA_FILE"); e && !e->empty())
    c.ca_file = *e;
  else if (file->ca_file)
    c.ca_file = *file->ca_file;
  while (!c.server.empty() && c.server.back() == '/') c.server.pop_back();
  return c;
}

std::optional<std::string> real_env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (!v) return std::nullopt;
  return std::string(v);
}

Result<std::string> real_read_secret(const std::string& path) {
  return read_secret_file(path, "token file");
}

std::optional<std::string> real_read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace strata::cli
