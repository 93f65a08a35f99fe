// Where the CLI finds its server URL and token. Precedence: flag > environment > config
// file > default. The environment and file system are passed in, so resolution is pure
// and testable.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "strata/common/error.h"

namespace strata::cli {

inline constexpr const char* kDefaultServer = "http://127.0.0.1:7480";

struct ClientConfig {
  std::string server = kDefaultServer;
  std::string token;          // may be empty (then no Authorization header is sent)
  std::string server_source;  // "flag", "env", "file:<path>", "default": for messages
  std::string token_source;
  std::string ca_file;  // PEM CA(s) that verify an https server; empty: system trust store
};

struct ConfigInputs {
  std::optional<std::string> flag_server;
  std::optional<std::string> flag_token;
  std::optional<std::string> flag_ca_file;
  // getenv-like; returns nullopt when unset.
  std::function<std::optional<std::string>(const std::string&)> env;
  // Reads a whole file; nullopt when it does not exist or cannot be read.
  std::function<std::optional<std::string>(const std::string&)> read_file;
  // Reads a secret file (STRATA_TOKEN_FILE, and the config file when the token comes from
  // it), refusing one that group or others can access; returns it trimmed. Unset: read_file
  // without that check (tests with a fake file system).
  std::function<Result<std::string>(const std::string&)> read_secret;
};

// Env: STRATA_SERVER, STRATA_TOKEN, STRATA_TOKEN_FILE (STRATA_TOKEN wins over it),
// STRATA_CA_FILE, STRATA_CONFIG (config file path; default
// $HOME/.config/strata/config.json). The file is JSON {"server": "...", "token": "...",
// "ca_file": "..."}; every key optional, others rejected. A missing
// default file is fine; a missing $STRATA_CONFIG or STRATA_TOKEN_FILE is an error.
Result<ClientConfig> resolve_config(const ConfigInputs& in);

// The process's real environment and file system.
std::optional<std::string> real_env(const std::string& name);
std::optional<std::string> real_read_file(const std::string& path);
// strata::read_secret_file: mode must not allow group/other access.
Result<std::string> real_read_secret(const std::string& path);

}  // namespace strata::cli
