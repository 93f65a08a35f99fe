// e2e: `stratad --all-in-one` with a real strata-agent and the tiny guest. Creates a VM
// over HTTP, waits for STRATA-READY on the console WebSocket, stops and deletes it; checks
// bad input over the wire; SIGTERM exits cleanly. Skips (with the reason) when the
// binaries, the guest images, QEMU or root are missing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>
#include <tuple>
#include <utility>

#include "../../common/test_util.h"
#include "../../common/tiny_watchdog.h"
#include "strata/cli/http_client.h"
#include "strata/common/process.h"
#include "strata/enroll/http_client.h"

extern char** environ;

namespace strata::manager {
namespace {

using enroll::http_request;
using enroll::HttpResult;

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

std::map<std::string, std::string> read_manifest(const std::string& path) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    std::string v = line.substr(eq + 1);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    out[line.substr(0, eq)] = v;
  }
  return out;
}

using test::slurp;

template <typename F>
bool wait_until(std::chrono::seconds timeout, F&& pred) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(250ms);
  }
  return false;
}

class AllInOne : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string stratad = STRATAD_BINARY, agent = STRATA_AGENT_BINARY;
    if (stratad.empty() || !fs::exists(stratad)) GTEST_SKIP() << "stratad is not built";
    if (agent.empty() || !fs::exists(agent)) GTEST_SKIP() << "strata-agent is not built";
    if (geteuid() != 0) GTEST_SKIP() << "needs root (the agent runs QEMU with taps/state folders)";
    if (find_executable("qemu-system-x86_64").empty()) GTEST_SKIP() << "qemu-system-x86_64 missing";
    const char* env = std::getenv("STRATA_IMAGES");
    std::string images = env ? env : std::string(STRATA_SOURCE_DIR) + "/.cache/images";
    manifest_ = read_manifest(images + "/manifest.env");
    for (const char* k : {"TINY_KERNEL", "TINY_INITRD", "TINY_BASE"})
      if (!manifest_.count(k) || !fs::exists(manifest_[k]))
        GTEST_SKIP() << "tiny guest image missing (" << k << "); run scripts/guest-images tiny";

    dir_ = fs::temp_directory_path() / ("stratad-e2e-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "images");
    // The kernel the old way, on the host itself (an image the catalog does not know must
    // keep working); initrd and base disk go through stratad's catalog in the test.
    auto r = run_checked({agent, "image", "import", "--images", (dir_ / "images").string(),
                          "tiny-kernel", manifest_["TINY_KERNEL"]});
    ASSERT_TRUE(r) << r.error().to_string();
    std::vector<std::string> argv = {stratad, "--all-in-one", "--data-dir", dir_.string(),
                                     "--listen", "127.0.0.1:0", "--agent-binary", agent,
                                     "--accel", "tcg", "--host-name", "e2e-host",
                                     "--heartbeat-ms", "500"};
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    std::string log = (dir_ / "stratad.log").string();
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    ASSERT_EQ(posix_spawn(&pid_, stratad.c_str(), &fa, nullptr, cargv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    std::regex api_re("API (http://127\\.0\\.0\\.1:[0-9]+)");
    ASSERT_TRUE(wait_until(180s, [&] {
      std::smatch m;
      std::string text = slurp(log);
      if (std::regex_search(text, m, api_re)) base_ = m[1];
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return true;
      }
      return !base_.empty();
    })) << slurp(log);
    ASSERT_FALSE(base_.empty()) << "stratad exited: " << slurp(log);
    token_ = slurp((dir_ / "admin.token").string());
    while (!token_.empty() && token_.back() == '\n') token_.pop_back();
    ASSERT_FALSE(token_.empty());
    EXPECT_EQ(fs::status(dir_ / "admin.token").permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);
  }

  void TearDown() override {
    if (pid_ > 0) {
      // A failed test may leave its VM: force it off and delete it through the API.
      if (!base_.empty() && http_request(base_, "GET", "/api/v1/vms/e2e-tiny", "", token_)
                                    .value_or(HttpResult{}).status == 200) {
        http_request(base_, "POST", "/api/v1/vms/e2e-tiny/stop", R"({"force":true})", token_);
        http_request(base_, "DELETE", "/api/v1/vms/e2e-tiny", "", token_);
        wait_until(30s, [&] {
          return http_request(base_, "GET", "/api/v1/vms/e2e-tiny", "", token_)
                     .value_or(HttpResult{}).status == 404;
        });
      }
      kill(pid_, SIGTERM);
      int st = 0;
      waitpid(pid_, &st, 0);
    }
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  HttpResult call(const std::string& method, const std::string& path, const std::string& body = "",
                  const std::string& token = "<admin>") {
    auto r = http_request(base_, method, path, body, token == "<admin>" ? token_ : token);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : HttpResult{};
  }
  json get_json(const std::string& path) {
    auto r = call("GET", path);
    auto j = json::parse(r.body, nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }

  // Reads a console WebSocket (`kind`: "console" serial, "vnc" graphical; a query may follow)
  // until `done(what was read)` or the timeout passes, after typing `input` if any. Reads
  // are asynchronous so the timeout holds even when nothing arrives.
  std::string console_read(const std::string& vm, const std::function<bool(const std::string&)>& done,
                           std::chrono::seconds timeout, const std::string& kind = "console",
                           const std::string& input = "") {
    namespace beast = boost::beast;
    namespace websocket = beast::websocket;
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::resolver resolver(ioc);
    std::string hostport = base_.substr(7);
    auto colon = hostport.rfind(':');
    websocket::stream<beast::tcp_stream> ws(ioc);
    std::string seen;
    try {
      beast::get_lowest_layer(ws).connect(
          resolver.resolve(hostport.substr(0, colon), hostport.substr(colon + 1)));
      ws.set_option(websocket::stream_base::decorator([&](websocket::request_type& req) {
        req.set(beast::http::field::authorization, "Bearer " + token_);
      }));
      ws.handshake(hostport, "/api/v1/vms/" + vm + "/" + kind);
      if (!input.empty()) ws.write(boost::asio::buffer(input));  // typed into the console
      auto end = std::chrono::steady_clock::now() + timeout;
      while (std::chrono::steady_clock::now() < end && !done(seen)) {
        beast::flat_buffer buf;
        bool got = false;
        beast::error_code rec;
        ws.async_read(buf, [&](beast::error_code ec, size_t) {
          got = true;
          rec = ec;
        });
        ioc.restart();
        ioc.run_for(end - std::chrono::steady_clock::now());
        if (!got) {  // timed out: cancel the read and let its handler run
          beast::get_lowest_layer(ws).cancel();
          ioc.restart();
          ioc.run();
          break;
        }
        if (rec) break;
        seen += beast::buffers_to_string(buf.data());
      }
      beast::get_lowest_layer(ws).close();
    } catch (const std::exception& e) {
      seen += std::string("\n[websocket: ") + e.what() + "]";
    }
    return seen;
  }
  std::string console_until(const std::string& vm, const std::string& needle,
                            std::chrono::seconds timeout, const std::string& kind = "console",
                            const std::string& input = "") {
    return console_read(
        vm, [&](const std::string& seen) { return seen.find(needle) != std::string::npos; },
        timeout, kind, input);
  }

  // Speaks RFB 3.8 over the VNC WebSocket up to the server's ServerInit: "WxH" of the
  // guest's framebuffer, or what went wrong.
  std::string vnc_server_init(const std::string& vm) {
    namespace beast = boost::beast;
    namespace websocket = beast::websocket;
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::resolver resolver(ioc);
    std::string hostport = base_.substr(7);
    auto colon = hostport.rfind(':');
    websocket::stream<beast::tcp_stream> ws(ioc);
    std::string in;  // bytes received and not consumed yet
    try {
      beast::get_lowest_layer(ws).connect(
          resolver.resolve(hostport.substr(0, colon), hostport.substr(colon + 1)));
      ws.set_option(websocket::stream_base::decorator([&](websocket::request_type& req) {
        req.set(beast::http::field::authorization, "Bearer " + token_);
      }));
      ws.handshake(hostport, "/api/v1/vms/" + vm + "/vnc");
      ws.binary(true);
      auto need = [&](size_t n) {
        while (in.size() < n) {
          beast::get_lowest_layer(ws).expires_after(20s);
          beast::flat_buffer buf;
          ws.read(buf);
          in += beast::buffers_to_string(buf.data());
        }
        std::string out = in.substr(0, n);
        in.erase(0, n);
        return out;
      };
      auto send = [&](const std::string& b) { ws.write(boost::asio::buffer(b)); };
      std::string version = need(12);
      if (version != "RFB 003.008\n") return "version: " + version;
      send("RFB 003.008\n");
      auto count = static_cast<uint8_t>(need(1)[0]);
      std::string types = need(count);
      if (types.find('\x01') == std::string::npos) return "no security type None";
      send(std::string(1, '\x01'));
      if (need(4) != std::string(4, '\0')) return "security result not OK";
      send(std::string(1, '\x01'));  // ClientInit, shared
      std::string init = need(4);
      auto u16 = [&](size_t at) {
        return (static_cast<uint8_t>(init[at]) << 8) | static_cast<uint8_t>(init[at + 1]);
      };
      beast::error_code ec;
      ws.close(websocket::close_code::normal, ec);
      return std::to_string(u16(0)) + "x" + std::to_string(u16(2));
    } catch (const std::exception& e) {
      return std::string("[websocket: ") + e.what() + "] after " + std::to_string(in.size()) +
             " bytes";
    }
  }

  std::map<std::string, std::string> manifest_;
  fs::path dir_;
  pid_t pid_ = -1;
  std::string base_;
  std::string token_;
};

TEST_F(AllInOne, VmLifecycleWithConsole) {
  ASSERT_TRUE(wait_until(120s, [&] {
    auto hosts = get_json("/api/v1/hosts")["hosts"];
    return hosts.size() == 1 && hosts[0]["state"] == "up";
  })) << get_json("/api/v1/hosts").dump() << slurp((dir_ / "agent.log").string());

  // Upload into the catalog (streamed, application/octet-stream); not on the host yet.
  auto colon = base_.rfind(':');
  cli::HttpClient uploader(cli::Endpoint{"127.0.0.1", base_.substr(colon + 1), ""}, token_);
  for (auto [name, kind, key] : {std::tuple{"tiny-initrd", "initrd", "TINY_INITRD"},
                                 std::tuple{"tiny-base", "disk", "TINY_BASE"}}) {
    auto up = uploader.upload(
        {"POST", std::string("/api/v1/images?name=") + name + "&kind=" + kind, std::nullopt},
        manifest_[key], {});
    ASSERT_TRUE(up) << up.error().to_string();
    EXPECT_EQ((*up)["name"], name);
  }
  EXPECT_FALSE(fs::exists(dir_ / "images" / "images" / "tiny-base"));

  json body = {{"name", "e2e-tiny"},
               {"vcpus", 1},
               {"memory_mib", 128},
               {"kernel", "tiny-kernel"},
               {"initrd", "tiny-initrd"},
               {"cmdline", manifest_.count("TINY_CMDLINE") ? manifest_["TINY_CMDLINE"]
                                                           : "console=ttyS0"},
               {"disks", {{{"name", "root"}, {"image", "tiny-base"}}}},
               {"nics", {{{"mode", "user"}}}},
               {"watchdog", {{"action", "reset"}}}};
  auto created = call("POST", "/api/v1/vms", body.dump());
  ASSERT_EQ(created.status, 202u) << created.body;
  ASSERT_TRUE(wait_until(180s, [&] {
    return get_json("/api/v1/vms/e2e-tiny")["status"]["state"] == "running";
  })) << get_json("/api/v1/vms/e2e-tiny").dump();

  std::string console = console_until("e2e-tiny", "STRATA-READY", 120s);
  EXPECT_NE(console.find("STRATA-READY"), std::string::npos) << console;
  // The graphical console: QEMU's VNC server greets with its RFB version through stratad's
  // WebSocket, the agent's StreamDisplay and the VM's vnc.sock; the handshake goes both ways
  // up to the framebuffer's size (twice: one display connection per session).
  std::string rfb = console_until("e2e-tiny", "RFB 003.008\n", 20s, "vnc");
  EXPECT_EQ(rfb.substr(0, 12), "RFB 003.008\n") << rfb;
  for (int i = 0; i < 2; ++i) {
    std::string size = vnc_server_init("e2e-tiny");
    EXPECT_TRUE(size.find('x') != std::string::npos && size.find('[') == std::string::npos &&
                size.substr(0, 2) != "0x")
        << size;
    std::cout << "graphical console: RFB handshake through stratad, framebuffer " << size << "\n";
  }
  // The guest watchdog, end to end: the guest arms its i6300esb and never feeds it (a hung
  // guest; test/common/tiny_watchdog.h); QEMU resets the guest in place, the agent reports
  // it and the manager records vm.watchdog.
  EXPECT_EQ(get_json("/api/v1/vms/e2e-tiny")["spec"]["watchdog"]["action"], "reset");
  const std::string arm = test::kArmTinyWatchdog;
  std::string armed;
  for (int i = 0; i < 10 && armed.find("WD-2-ARMED") == std::string::npos; ++i)
    armed = console_until("e2e-tiny", "WD-2-ARMED", 10s, "console", arm);
  ASSERT_NE(armed.find("WD-2-ARMED"), std::string::npos) << armed;
  json fired;
  ASSERT_TRUE(wait_until(60s, [&] {
    const json events = get_json("/api/v1/events?limit=1000")["events"];  // owned: iterated
    for (const auto& e : events)
      if (e["action"] == "vm.watchdog") fired = e;
    return !fired.is_null();
  })) << get_json("/api/v1/events?limit=1000").dump();
  EXPECT_EQ(fired["result"], "reset");
  EXPECT_EQ(fired["target"], "vm/e2e-tiny");
  // Reset in place: the guest boots again (its ready line after the armed one, in the
  // console's history) and the VM stays running.
  auto rebooted = [](const std::string& seen) {
    auto armed_at = seen.find("WD-2-ARMED");
    auto ready_at = seen.rfind("STRATA-READY");
    return armed_at != std::string::npos && ready_at != std::string::npos && ready_at > armed_at;
  };
  std::string again = console_read("e2e-tiny", rebooted, 120s, "console?tail=1048576");
  EXPECT_TRUE(rebooted(again)) << again;
  EXPECT_EQ(get_json("/api/v1/vms/e2e-tiny")["status"]["state"], "running");

  // Hot-plug over the API: a blank disk joins the running guest on hot-plug slot 1 (the guest
  // sees it), the spec records the slot, and the disk leaves again; a bad body is 400 naming
  // the field.
  auto bad_disk = call("POST", "/api/v1/vms/e2e-tiny/disks", R"({"name":"data1","size_bytes":0})");
  EXPECT_EQ(bad_disk.status, 400u) << bad_disk.body;
  EXPECT_EQ(json::parse(bad_disk.body)["error"]["field"], "disk.size_bytes") << bad_disk.body;
  auto task_ends = [&](const HttpResult& accepted) {
    EXPECT_EQ(accepted.status, 202u) << accepted.body;
    const std::string id = json::parse(accepted.body)["task"]["id"].get<std::string>();
    json t;
    EXPECT_TRUE(wait_until(90s, [&] {
      t = get_json("/api/v1/tasks/" + id);
      return t["state"] == "succeeded" || t["state"] == "failed";
    })) << t.dump();
    return t;
  };
  json attached = task_ends(
      call("POST", "/api/v1/vms/e2e-tiny/disks", R"({"name":"data1","size_bytes":33554432})"));
  EXPECT_EQ(attached["state"], "succeeded") << attached.dump();
  const json disks = get_json("/api/v1/vms/e2e-tiny")["spec"]["disks"];
  ASSERT_EQ(disks.size(), 2u) << disks.dump();
  EXPECT_EQ(disks[1]["hotplug_slot"], 1) << disks.dump();
  std::string sees;
  for (int i = 0; i < 10 && sees.find("VDB-65536") == std::string::npos; ++i)
    sees = console_until("e2e-tiny", "VDB-65536", 5s, "console",
                         "echo VDB-$(cat /sys/block/vdb/size)\n");
  EXPECT_NE(sees.find("VDB-65536"), std::string::npos) << sees;
  json detached = task_ends(call("DELETE", "/api/v1/vms/e2e-tiny/disks/data1"));
  EXPECT_EQ(detached["state"], "succeeded") << detached.dump();
  EXPECT_EQ(get_json("/api/v1/vms/e2e-tiny")["spec"]["disks"].size(), 1u);

  // The manager pushed the catalog images to the host before defining the VM.
  auto holders = get_json("/api/v1/images/tiny-base")["hosts"];
  ASSERT_EQ(holders.size(), 1u) << holders.dump();
  EXPECT_EQ(holders[0]["host"], "e2e-host");
  EXPECT_TRUE(fs::exists(dir_ / "images" / "images" / "tiny-initrd"));
  // A VM uses it: the catalog refuses to delete it.
  EXPECT_EQ(call("DELETE", "/api/v1/images/tiny-base").status, 409u);

  auto stop = call("POST", "/api/v1/vms/e2e-tiny/stop", R"({"timeout_s":30})");
  ASSERT_EQ(stop.status, 202u) << stop.body;
  EXPECT_TRUE(wait_until(90s, [&] {
    return get_json("/api/v1/vms/e2e-tiny")["status"]["state"] == "stopped";
  })) << get_json("/api/v1/vms/e2e-tiny").dump();

  auto del = call("DELETE", "/api/v1/vms/e2e-tiny");
  ASSERT_EQ(del.status, 202u) << del.body;
  EXPECT_TRUE(wait_until(60s, [&] { return call("GET", "/api/v1/vms/e2e-tiny").status == 404; }));

  auto events = get_json("/api/v1/events?limit=1000")["events"];
  std::set<std::string> actions;
  for (const auto& e : events) actions.insert(e["action"].get<std::string>());
  for (const char* a : {"host.enroll", "vm.create", "vm.stop", "vm.delete", "vm.deleted"})
    EXPECT_TRUE(actions.count(a)) << a << " missing in " << events.dump();

  kill(pid_, SIGTERM);
  int st = 0;
  ASSERT_EQ(waitpid(pid_, &st, 0), pid_);
  pid_ = -1;
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << slurp((dir_ / "stratad.log").string());
}

TEST_F(AllInOne, BadInputOverTheWire) {
  EXPECT_EQ(call("POST", "/api/v1/vms", "{not json").status, 400u);
  auto wrong = call("POST", "/api/v1/vms", R"({"name":"a","vcpus":"x","memory_mib":64})");
  EXPECT_EQ(wrong.status, 400u);
  EXPECT_EQ(json::parse(wrong.body)["error"]["field"], "vcpus");
  auto unknown = call("POST", "/api/v1/vms", R"({"name":"a","vcpus":1,"memory_mib":64,"x":1})");
  EXPECT_EQ(json::parse(unknown.body)["error"]["field"], "x");
  EXPECT_EQ(call("POST", "/api/v1/vms", std::string(10 << 20, ' ')).status, 413u);
  EXPECT_EQ(call("GET", "/api/v1/vms", "", "").status, 401u);
  EXPECT_EQ(call("GET", "/api/v1/vms", "", "sta_invalid").status, 401u);
  EXPECT_EQ(call("POST", "/api/v1/vms", R"({"name":"UPPER","vcpus":1,"memory_mib":64})").status,
            400u);
  EXPECT_EQ(call("POST", "/api/v1/vms", R"({"name":"a","vcpus":1,"memory_mib":-1})").status, 400u);
  EXPECT_EQ(
      call("POST", "/api/v1/vms", R"({"name":"a","vcpus":1,"memory_mib":18446744073709551615})")
          .status,
      400u);
  ASSERT_TRUE(wait_until(120s, [&] {
    auto hosts = get_json("/api/v1/hosts")["hosts"];
    return hosts.size() == 1 && hosts[0]["state"] == "up";
  }));
  auto huge = call("POST", "/api/v1/vms", R"({"name":"huge","vcpus":1,"memory_mib":16000000,"kernel":"tiny-kernel"})");
  EXPECT_EQ(huge.status, 422u) << huge.body;
  EXPECT_NE(huge.body.find("memory"), std::string::npos) << huge.body;
}

}  // namespace
}  // namespace strata::manager
