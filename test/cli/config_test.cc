// Server/token resolution: flag > env > config file > default.
#include "strata/cli/config.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace strata::cli {
namespace {

struct World {
  std::map<std::string, std::string> env, files;
  ConfigInputs inputs() {
    ConfigInputs in;
    in.env = [this](const std::string& k) -> std::optional<std::string> {
      auto it = env.find(k);
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
    in.read_file = [this](const std::string& p) -> std::optional<std::string> {
      auto it = files.find(p);
      if (it == files.end()) return std::nullopt;
      return it->second;
    };
    return in;
  }
};

TEST(Config, DefaultWithoutAnything) {
  World w;
  auto c = resolve_config(w.inputs()).value();
  EXPECT_EQ(c.server, "http://127.0.0.1:7480");
  EXPECT_EQ(c.token, "");
  EXPECT_EQ(c.server_source, "default");
}

TEST(Config, FlagBeatsEnvBeatsFile) {
  World w;
  w.env["HOME"] = "/home/u";
  w.files["/home/u/.config/strata/config.json"] = R"({"server":"http://file:1","token":"ftok"})";
  auto file_only = resolve_config(w.inputs()).value();
  EXPECT_EQ(file_only.server, "http://file:1");
  EXPECT_EQ(file_only.token, "ftok");
  EXPECT_EQ(file_only.token_source, "file:/home/u/.config/strata/config.json");

  w.env["STRATA_SERVER"] = "http://env:2/";
  w.env["STRATA_TOKEN"] = "etok";
  auto env = resolve_config(w.inputs()).value();
  EXPECT_EQ(env.server, "http://env:2");  // trailing slash trimmed
  EXPECT_EQ(env.token, "etok");

  auto in = w.inputs();
  in.flag_server = "http://flag:3";
  in.flag_token = "flagtok";
  auto flag = resolve_config(in).value();
  EXPECT_EQ(flag.server, "http://flag:3");
  EXPECT_EQ(flag.token, "flagtok");
  EXPECT_EQ(flag.server_source, "flag");
}

TEST(Config, TokenFileIsTrimmedAndLosesToStrataToken) {
  World w;
  w.env["STRATA_TOKEN_FILE"] = "/run/tok";
  w.files["/run/tok"] = "  secret\n";
  EXPECT_EQ(resolve_config(w.inputs()).value().token, "secret");
  w.env["STRATA_TOKEN"] = "direct";
  EXPECT_EQ(resolve_config(w.inputs()).value().token, "direct");
  w.env.erase("STRATA_TOKEN");
  w.files.erase("/run/tok");
  auto missing = resolve_config(w.inputs());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().field, "STRATA_TOKEN_FILE");
}

// A token file that others can read is refused (the real file system, real modes).
TEST(Config, TokenFileReadableByOthersIsRefused) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "strata-cfg-XXXXXX").string();
  ASSERT_TRUE(::mkdtemp(tmpl.data()));
  std::string path = tmpl + "/token";
  std::ofstream(path) << "secret\n";
  World w;
  w.env["STRATA_TOKEN_FILE"] = path;
  ConfigInputs in = w.inputs();
  in.read_secret = real_read_secret;
  ::chmod(path.c_str(), 0644);
  auto loose = resolve_config(in);
  ASSERT_FALSE(loose);
  EXPECT_EQ(loose.error().code, ErrorCode::permission_denied);
  EXPECT_EQ(loose.error().field, "STRATA_TOKEN_FILE");
  EXPECT_NE(loose.error().message.find("chmod 600"), std::string::npos) << loose.error().message;
  ::chmod(path.c_str(), 0600);
  auto ok = resolve_config(in);
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(ok->token, "secret");
  std::filesystem::remove_all(tmpl);
}

// The config file holds a token too: one that others can read is refused like a token
// file, but only when its token is the one used (a flag or STRATA_TOKEN wins without
// reading it as a secret). A config file with only "server" may stay world-readable.
TEST(Config, ConfigFileWithATokenReadableByOthersIsRefused) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "strata-cfg-XXXXXX").string();
  ASSERT_TRUE(::mkdtemp(tmpl.data()));
  std::string path = tmpl + "/config.json";
  std::ofstream(path) << R"({"server":"https://m:7443","token":"ftok"})";
  World w;
  w.env["STRATA_CONFIG"] = path;
  ConfigInputs in = w.inputs();
  in.read_file = real_read_file;
  in.read_secret = real_read_secret;
  ::chmod(path.c_str(), 0644);
  auto loose = resolve_config(in);
  ASSERT_FALSE(loose);
  EXPECT_EQ(loose.error().code, ErrorCode::permission_denied);
  EXPECT_EQ(loose.error().field, "config");
  EXPECT_NE(loose.error().message.find("chmod 600"), std::string::npos) << loose.error().message;
  EXPECT_NE(loose.error().message.find(path), std::string::npos) << loose.error().message;
  w.env["STRATA_TOKEN"] = "etok";
  auto env_wins = resolve_config(in);
  ASSERT_TRUE(env_wins) << env_wins.error().to_string();
  EXPECT_EQ(env_wins->token, "etok");
  w.env.erase("STRATA_TOKEN");
  ::chmod(path.c_str(), 0600);
  auto ok = resolve_config(in);
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(ok->token, "ftok");
  EXPECT_EQ(ok->server, "https://m:7443");
  std::ofstream(path, std::ios::trunc) << R"({"server":"https://m:7443"})";
  ::chmod(path.c_str(), 0644);
  auto server_only = resolve_config(in);
  ASSERT_TRUE(server_only) << server_only.error().to_string();
  EXPECT_EQ(server_only->token, "");
  std::filesystem::remove_all(tmpl);
}

TEST(Config, StrataConfigOverridesHomeAndMustExist) {
  World w;
  w.env["HOME"] = "/home/u";
  w.env["STRATA_CONFIG"] = "/etc/strata.json";
  w.files["/home/u/.config/strata/config.json"] = R"({"server":"http://home:1"})";
  w.files["/etc/strata.json"] = R"({"server":"http://etc:1"})";
  EXPECT_EQ(resolve_config(w.inputs()).value().server, "http://etc:1");
  w.files.erase("/etc/strata.json");
  EXPECT_FALSE(resolve_config(w.inputs()));
}

TEST(Config, CaFileComesFromFlagEnvOrFile) {
  World w;
  w.env["HOME"] = "/home/u";
  w.files["/home/u/.config/strata/config.json"] = R"({"ca_file":"/file/ca.crt"})";
  EXPECT_EQ(resolve_config(w.inputs()).value().ca_file, "/file/ca.crt");
  w.env["STRATA_CA_FILE"] = "/env/ca.crt";
  EXPECT_EQ(resolve_config(w.inputs()).value().ca_file, "/env/ca.crt");
  auto in = w.inputs();
  in.flag_ca_file = "/flag/ca.crt";
  EXPECT_EQ(resolve_config(in).value().ca_file, "/flag/ca.crt");
}

TEST(Config, BadFilesAreRejectedWithThePath) {
  World w;
  w.env["STRATA_CONFIG"] = "/c.json";
  for (const char* text : {"not json", "[1]", R"({"server":1})", R"({"sever":"typo"})"}) {
    w.files["/c.json"] = text;
    auto r = resolve_config(w.inputs());
    ASSERT_FALSE(r) << text;
    EXPECT_NE(r.error().message.find("/c.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace strata::cli
