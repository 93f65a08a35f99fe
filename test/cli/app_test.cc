// Argument parsing -> request building through the real command tree (--dry-run prints
// the request instead of sending it), usage errors, help and completion.
#include "strata/cli/app.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include <stdlib.h>
#include <unistd.h>

namespace strata::cli {
namespace {

struct Run {
  int code;
  std::string out, err;
};

Run run(std::vector<std::string> args) {
  std::ostringstream out, err;
  CliIo io(out, err);
  io.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  io.read_file = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  args.insert(args.begin(), "strata");
  int code = run_cli(args, io);
  return {code, out.str(), err.str()};
}

TEST(App, VmCreateDryRunShowsTheRequest) {
  auto r =
      run({"vm",      "create", "web-1",  "--vcpus",           "2",     "--memory",   "512M",
           "--image", "deb",    "--disk", "name=data,size=1G", "--nic", "bridge=br0", "--label",
           "app=web", "--host", "h1",     "--anti-affinity",   "g",     "--no-start", "--dry-run"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "POST /api/v1/vms\n"
            "{\n"
            "  \"anti_affinity_group\": \"g\",\n"
            "  \"disks\": [\n"
            "    {\n"
            "      \"boot\": true,\n"
            "      \"image\": \"deb\",\n"
            "      \"name\": \"root\"\n"
            "    },\n"
            "    {\n"
            "      \"name\": \"data\",\n"
            "      \"size_bytes\": 1073741824\n"
            "    }\n"
            "  ],\n"
            "  \"host\": \"h1\",\n"
            "  \"labels\": {\n"
            "    \"app\": \"web\"\n"
            "  },\n"
            "  \"memory_mib\": 512,\n"
            "  \"name\": \"web-1\",\n"
            "  \"nics\": [\n"
            "    {\n"
            "      \"bridge\": \"br0\",\n"
            "      \"mode\": \"bridge\"\n"
            "    }\n"
            "  ],\n"
            "  \"start\": false,\n"
            "  \"vcpus\": 2\n"
            "}\n");
}

TEST(App, GlobalOptionsWorkAfterSubcommands) {
  auto r = run({"vm", "stop", "v1", "--force", "--timeout", "2m", "--dry-run", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "POST /api/v1/vms/v1/stop\n{\n  \"force\": true,\n  \"timeout_s\": 120\n}\n");
  auto l = run({"--dry-run", "host", "label", "h1", "zone=a", "gpu-"});
  ASSERT_EQ(l.code, 0) << l.err;
  EXPECT_EQ(l.out.substr(0, l.out.find('\n')), "PATCH /api/v1/hosts/h1");
  EXPECT_EQ(run({"vm", "list", "-l", "app=web", "--dry-run"}).out,
            "GET /api/v1/vms?label=app%3Dweb\n");
  EXPECT_EQ(run({"events", "--after", "5", "--dry-run"}).out,
            "GET /api/v1/events?limit=100&after=5\n");
  EXPECT_EQ(run({"events", "-f", "--dry-run"}).out, "GET /api/v1/events/stream\n");
  EXPECT_EQ(run({"vm", "console", "v1", "--until", "READY", "--dry-run"}).out,
            "GET /api/v1/vms/v1/console?tail=65536\n");
  EXPECT_EQ(run({"token", "create", "ci", "--role", "viewer", "--ttl", "1h", "--dry-run"}).code, 0);
}

TEST(App, UsageErrorsExitTwo) {
  for (std::vector<std::string> bad : std::vector<std::vector<std::string>>{
           {},
           {"vm"},
           {"vm", "create", "x", "--vcpus", "1"},                     // no --memory
           {"vm", "create", "x", "--vcpus", "1", "--memory", "-1G"},  // negative size
           {"vm", "create", "x", "--vcpus", "1", "--memory", "512M", "--frobnicate"},
           {"vm", "create", "x", "--vcpus", "two", "--memory", "512M"},
           {"vm", "stop", "x", "--timeout", "soon"},
           {"host", "maintenance", "h1", "maybe"},
           {"token", "create", "t", "--role", "root"},
           {"-o", "xml", "vm", "list"},
           {"nonsense"},
       }) {
    auto r = run(bad);
    std::string joined;
    for (const auto& a : bad) joined += a + " ";
    EXPECT_EQ(r.code, 2) << joined << "\n" << r.err;
    EXPECT_NE(r.err.find("error"), std::string::npos) << joined;
  }
  auto r = run({"vm", "create", "x", "--vcpus", "1", "--memory", "1.5G", "--dry-run"});
  EXPECT_NE(r.err.find("--memory"), std::string::npos) << r.err;
}

// cloud-init flags: files read through CliIo::read_file (keys one a line, comments
// skipped), the body's cloud_init object, and usage errors (exit 2) before any request.
TEST(App, VmCreateCloudInitFlags) {
  const std::string key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvZ0pQ3b2x3bY4mJbQf alice@laptop";
  auto files = [&](const std::string& path) -> std::optional<std::string> {
    if (path == "/k/alice.pub") return "# laptop\n" + key + "\n\n";
    if (path == "/k/empty.pub") return "# nothing here\n";
    if (path == "/ud/cfg.yaml") return std::string("#cloud-config\npackages: [htop]\n");
    return std::nullopt;
  };
  auto run_with = [&](std::vector<std::string> args) {
    std::ostringstream out, err;
    CliIo io(out, err);
    io.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    io.read_file = files;
    args.insert(args.begin(), {"strata", "vm", "create", "web-1", "--vcpus", "1", "--memory",
                               "512M", "--kernel", "k", "--nic", "user", "--nic", "bridge=br0"});
    int code = run_cli(args, io);
    return cli::Run{code, out.str(), err.str()};
  };
  auto r = run_with({"--hostname", "web1.example.org", "--user", "alice", "--ssh-key",
                     "/k/alice.pub", "--password-hash", "$6$salt$hash", "--sudo", "--ip", "dhcp",
                     "--ip", "192.0.2.10/24,gw=192.0.2.1,dns=192.0.2.53,dns=192.0.2.54",
                     "--cloud-init-user-data", "/ud/cfg.yaml", "--dry-run"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto body = nlohmann::json::parse(r.out.substr(r.out.find('\n') + 1));
  EXPECT_EQ(body["cloud_init"],
            nlohmann::json::parse(R"({"hostname":"web1.example.org",
              "users":[{"name":"alice","ssh_authorized_keys":[")" + key + R"("],
                        "password_hash":"$6$salt$hash","sudo":true}],
              "network":[{"nic":0,"dhcp4":true},
                         {"nic":1,"address":"192.0.2.10/24","gateway":"192.0.2.1",
                          "nameservers":["192.0.2.53","192.0.2.54"]}],
              "user_data":"#cloud-config\npackages: [htop]\n"})"))
      << body.dump(2);
  // No cloud-init flag: no cloud_init member.
  r = run_with({"--dry-run"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find("cloud_init"), std::string::npos) << r.out;

  struct Bad {
    std::vector<std::string> args;
    std::string says;
  } bad[] = {
      {{"--sudo"}, "--sudo needs --user"},
      {{"--ssh-key", "/k/alice.pub"}, "--ssh-key needs --user"},
      {{"--password-hash", "$6$s$h"}, "--password-hash needs --user"},
      {{"--user", "alice", "--password-hash", "hunter2"}, "crypt(3)"},
      {{"--user", "alice", "--ssh-key", "/k/missing.pub"}, "cannot read /k/missing.pub"},
      {{"--user", "alice", "--ssh-key", "/k/empty.pub"}, "no public key"},
      {{"--cloud-init-user-data", "/nope"}, "cannot read /nope"},
      {{"--ip", "dhcp", "--ip", "dhcp", "--ip", "dhcp"}, "one --ip per --nic"},
      {{"--ip", "192.0.2.10"}, "ADDRESS/PREFIX"},
      {{"--ip", "192.0.2.10/24,gateway=1.2.3.4"}, "cannot read 'gateway=1.2.3.4'"},
  };
  for (const auto& b : bad) {
    auto args = b.args;
    args.push_back("--dry-run");
    auto res = run_with(args);
    EXPECT_EQ(res.code, 2) << b.says << "\n" << res.out << res.err;
    EXPECT_NE(res.err.find(b.says), std::string::npos) << res.err;
    EXPECT_EQ(res.out, "") << b.says;  // nothing sent, nothing printed
  }
}

TEST(App, HelpEverywhereExitsZero) {
  for (std::vector<std::string> h :
       std::vector<std::vector<std::string>>{{"--help"},
                                             {"vm", "--help"},
                                             {"vm", "create", "--help"},
                                             {"vm", "console", "-h"},
                                             {"host", "label", "--help"},
                                             {"events", "--help"}}) {
    auto r = run(h);
    EXPECT_EQ(r.code, 0) << h.back();
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << r.out;
  }
  EXPECT_NE(run({"vm", "create", "--help"}).out.find("--anti-affinity"), std::string::npos);
  for (const char* flag : {"--hostname", "--user", "--ssh-key", "--password-hash", "--sudo",
                           "--ip", "--cloud-init-user-data"})
    EXPECT_NE(run({"vm", "create", "--help"}).out.find(flag), std::string::npos) << flag;
}

TEST(App, BackupCommandsBuildTheirRequests) {
  auto c = run({"backup", "create", "web-1", "--full", "--dry-run"});
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(c.out, "POST /api/v1/vms/web-1/backups\n{\n  \"full\": true\n}\n");
  auto i = run({"backup", "create", "web-1", "--dry-run"});
  ASSERT_EQ(i.code, 0) << i.err;
  EXPECT_EQ(i.out, "POST /api/v1/vms/web-1/backups\n{}\n");
  auto l = run({"backup", "list", "--vm", "web-1", "--dry-run"});
  ASSERT_EQ(l.code, 0) << l.err;
  EXPECT_EQ(l.out.rfind("GET /api/v1/backups?vm=web-1", 0), 0u) << l.out;
  auto v = run({"backup", "verify", "web-1-20261130-2133-00ab", "--dry-run"});
  ASSERT_EQ(v.code, 0) << v.err;
  EXPECT_EQ(v.out.rfind("POST /api/v1/backups/web-1-20261130-2133-00ab/verify", 0), 0u) << v.out;
  auto r = run({"backup", "restore", "b1", "--vm", "web-2", "--dry-run"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "POST /api/v1/backups/b1/restore\n{\n  \"vm\": \"web-2\"\n}\n");
  auto rn = run({"backup", "restore", "b1", "--new-vm", "web-3", "--dry-run"});
  ASSERT_EQ(rn.code, 0) << rn.err;
  EXPECT_EQ(rn.out, "POST /api/v1/backups/b1/restore\n{\n  \"new_vm\": \"web-3\"\n}\n");
  EXPECT_EQ(run({"backup", "restore", "b1", "--dry-run"}).code, 2);
  EXPECT_EQ(run({"backup", "restore", "b1", "--vm", "a", "--new-vm", "b", "--dry-run"}).code, 2);
  auto d = run({"backup", "delete", "b1", "--dry-run"});
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(d.out.rfind("DELETE /api/v1/backups/b1", 0), 0u) << d.out;
  auto p = run({"backup", "prune", "web-1", "--keep-last", "3", "--keep-weekly", "4",
                "--keep-monthly", "6", "--keep-yearly", "2", "--plan", "--dry-run"});
  ASSERT_EQ(p.code, 0) << p.err;
  EXPECT_EQ(nlohmann::json::parse(p.out.substr(p.out.find('\n') + 1)),
            (nlohmann::json{{"vm", "web-1"},
                            {"keep_last", 3},
                            {"keep_weekly", 4},
                            {"keep_monthly", 6},
                            {"keep_yearly", 2},
                            {"dry_run", true}}))
      << p.out;
  EXPECT_EQ(p.out.rfind("POST /api/v1/backups/prune\n", 0), 0u) << p.out;
  auto ps = run({"backup", "prune", "--selector", "tier=web", "--keep-daily", "7", "--dry-run"});
  ASSERT_EQ(ps.code, 0) << ps.err;
  EXPECT_NE(ps.out.find("\"selector\": {\n    \"tier\": \"web\""), std::string::npos) << ps.out;
  EXPECT_EQ(run({"backup", "prune", "--keep-last", "1", "--dry-run"}).code, 2);  // no target
  auto pt = run({"backup", "prune", "web-1", "--keep-last", "30", "--sync-target", "--dry-run"});
  ASSERT_EQ(pt.code, 0) << pt.err;
  EXPECT_EQ(nlohmann::json::parse(pt.out.substr(pt.out.find('\n') + 1)),
            (nlohmann::json{{"vm", "web-1"}, {"keep_last", 30}, {"sync_target", true}}))
      << pt.out;
  auto sy = run({"backup", "sync", "--verify", "--dry-run"});
  ASSERT_EQ(sy.code, 0) << sy.err;
  EXPECT_EQ(sy.out, "POST /api/v1/backups/sync\n{\n  \"verify\": true\n}\n");
  auto sy0 = run({"backup", "sync", "--dry-run"});
  ASSERT_EQ(sy0.code, 0) << sy0.err;
  EXPECT_EQ(sy0.out, "POST /api/v1/backups/sync\n{}\n");
  EXPECT_EQ(run({"backup", "sync", "--to", "/mnt/offsite", "--dry-run"}).code, 2);  // no paths
  EXPECT_EQ(run({"backup", "prune", "w", "--selector", "a=b", "--keep-last", "1"}).code, 2);
  auto sc =
      run({"backup",    "schedule", "create",       "nightly", "--selector", "tier=web",
           "--at",      "02:30",    "--days",       "mon,tue", "--days",     "fri",
           "--full-on", "mon",      "--keep-daily", "7",       "--sync",     "--sync-keep-weekly",
           "8",         "--dry-run"});
  ASSERT_EQ(sc.code, 0) << sc.err;
  EXPECT_EQ(sc.out.rfind("POST /api/v1/backup-schedules\n", 0), 0u) << sc.out;
  EXPECT_EQ(nlohmann::json::parse(sc.out.substr(sc.out.find('\n') + 1)),
            (nlohmann::json{{"name", "nightly"},
                            {"time", "02:30"},
                            {"selector", {{"tier", "web"}}},
                            {"days", {"mon", "tue", "fri"}},
                            {"full_on", {"mon"}},
                            {"retention", {{"keep_daily", 7}}},
                            {"sync", true},
                            {"sync_retention", {{"keep_weekly", 8}}}}))
      << sc.out;
  EXPECT_EQ(run({"backup", "schedule", "create", "n", "--at", "01:00", "--dry-run"}).code, 2);
  auto sl = run({"backup", "schedule", "list", "--dry-run"});
  EXPECT_EQ(sl.out.rfind("GET /api/v1/backup-schedules", 0), 0u) << sl.out;
  auto sd = run({"backup", "schedule", "delete", "nightly", "--dry-run"});
  EXPECT_EQ(sd.out.rfind("DELETE /api/v1/backup-schedules/nightly", 0), 0u) << sd.out;
  auto s = run({"backup", "show", "a/../b", "--dry-run"});  // ids are escaped into the path
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(s.out.find("/../"), std::string::npos) << s.out;
  EXPECT_EQ(run({"backup", "restore", "b1"}).code, 2);  // --vm missing
  auto h = run({"backup", "--help"});
  EXPECT_EQ(h.code, 0);
  for (const char* verb : {"create", "list", "show", "verify", "restore", "delete"})
    EXPECT_NE(h.out.find(verb), std::string::npos) << verb;
}

TEST(App, VmImportBuildsItsRequestAndRefusesWhatItCannotSend) {
  char tmpl[] = "/tmp/strata-cli-import-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "0123456789", 10), 10);
  ::close(fd);
  std::string ova = std::string(tmpl) + ".ova";
  ASSERT_EQ(::rename(tmpl, ova.c_str()), 0);
  auto r = run({"vm", "import", ova, "--name", "web-1", "--host", "h 1", "--start", "--dry-run"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "POST /api/v1/vms/import?format=ova&name=web-1&host=h%201&start=true\n<10 "
                   "bytes from " + ova + ">\n");
  auto m = run({"vm", "import", ova, "--network-map", "VM Network=br0", "--network-map",
                "default=br1", "--dry-run"});
  EXPECT_EQ(m.code, 0) << m.err;
  EXPECT_NE(
      m.out.find("&network_map=%7B%22VM%20Network%22%3A%22br0%22%2C%22default%22%3A%22br1%22%7D"),
      std::string::npos)
      << m.out;
  for (const char* bad : {"default", "=br0", "default=br 0", "default=a-very-long-bridge-name"}) {
    auto b = run({"vm", "import", ova, "--network-map", bad, "--dry-run"});
    EXPECT_EQ(b.code, 2) << bad;
    EXPECT_NE(b.err.find("--network-map"), std::string::npos) << bad << ": " << b.err;
  }
  auto twice =
      run({"vm", "import", ova, "--network-map", "a=br0", "--network-map", "a=br1", "--dry-run"});
  EXPECT_EQ(twice.code, 2);
  // The format comes from the name, or --format.
  auto f = run({"vm", "import", ova, "--format", "libvirt", "--dry-run"});
  EXPECT_EQ(f.code, 2);  // read_file finds nothing in this test: "cannot read"
  EXPECT_NE(f.err.find("cannot read"), std::string::npos) << f.err;
  std::string other = ova + ".bin";
  ASSERT_EQ(::rename(ova.c_str(), other.c_str()), 0);
  auto u = run({"vm", "import", other, "--dry-run"});
  EXPECT_EQ(u.code, 2);
  EXPECT_NE(u.err.find("--format"), std::string::npos) << u.err;
  ::unlink(other.c_str());
  auto missing = run({"vm", "import", "/nonexistent/x.ova", "--dry-run"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("not a readable regular file"), std::string::npos) << missing.err;
  EXPECT_EQ(run({"vm", "import", "/nonexistent/x.ova", "--format", "vmx"}).code, 2);
}

TEST(App, VmSnapshotCommandsBuildTheirRequests) {
  auto c = run({"vm", "snapshot", "create", "web-1", "before-upgrade", "--dry-run"});
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(c.out, "POST /api/v1/vms/web-1/snapshots\n{\n  \"name\": \"before-upgrade\"\n}\n");
  auto r = run({"vm", "snapshot", "revert", "web-1", "s1", "--dry-run"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("POST /api/v1/vms/web-1/snapshots/s1/revert", 0), 0u) << r.out;
  auto d = run({"vm", "snapshot", "delete", "web-1", "s1", "--dry-run"});
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(d.out.rfind("DELETE /api/v1/vms/web-1/snapshots/s1", 0), 0u) << d.out;
  auto l = run({"vm", "snapshot", "list", "web-1", "--dry-run"});
  ASSERT_EQ(l.code, 0) << l.err;
  EXPECT_EQ(l.out.rfind("GET /api/v1/vms/web-1/snapshots", 0), 0u) << l.out;
  EXPECT_EQ(run({"vm", "snapshot", "create", "web-1"}).code, 2);  // NAME missing
  auto h = run({"vm", "snapshot", "--help"});
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("revert"), std::string::npos) << h.out;
}

TEST(App, VmTemplateAndCloneCommandsBuildTheirRequests) {
  auto t = run({"vm", "template", "base", "--dry-run"});
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_EQ(t.out.rfind("POST /api/v1/vms/base/template", 0), 0u) << t.out;
  auto d = run({"vm", "clone", "base", "web-2", "--dry-run"});
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(d.out, "POST /api/v1/vms/base/clone\n{\n  \"name\": \"web-2\"\n}\n");
  auto l = run({"vm", "clone", "base", "web-2", "--linked", "--dry-run"});
  ASSERT_EQ(l.code, 0) << l.err;
  EXPECT_NE(l.out.find("\"linked\": true"), std::string::npos) << l.out;
  auto f = run({"vm", "clone", "base", "web-2", "--full", "--dry-run"});
  ASSERT_EQ(f.code, 0) << f.err;
  EXPECT_NE(f.out.find("\"linked\": false"), std::string::npos) << f.out;
  EXPECT_EQ(run({"vm", "clone", "base", "web-2", "--full", "--linked"}).code, 2);
  EXPECT_EQ(run({"vm", "clone", "base"}).code, 2);  // NEW missing
  auto h = run({"vm", "clone", "--help"});
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("--linked"), std::string::npos) << h.out;
}

TEST(App, PlanCommandsBuildTheirRequests) {
  auto a = run({"plan", "capacity", "--add", "10", "x", "2c4G", "--selector", "zone=a", "--dry-run"});
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out.rfind("POST /api/v1/plan/capacity\n", 0), 0u) << a.out;
  for (const char* part : {"\"count\": 10", "\"vcpus\": 2", "\"memory_mib\": 4096", "\"zone\": \"a\""})
    EXPECT_NE(a.out.find(part), std::string::npos) << part << "\n" << a.out;
  auto one = run({"plan", "capacity", "--add", "3x1c512M", "--dry-run"});
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_NE(one.out.find("\"count\": 3"), std::string::npos) << one.out;
  auto s = run({"plan", "capacity", "--size", "1c1G", "--accelerator", "tcg", "--dry-run"});
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(s.out.find("count"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("\"accelerator\": \"tcg\""), std::string::npos) << s.out;
  auto d = run({"plan", "host-down", "h1", "h2", "--ha-only", "--dry-run"});
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(d.out.rfind("POST /api/v1/plan/host-down\n", 0), 0u) << d.out;
  EXPECT_EQ(run({"plan", "capacity", "--add", "10 x big", "--dry-run"}).code, 2);
  EXPECT_EQ(run({"plan", "capacity", "--dry-run"}).code, 2);
  EXPECT_EQ(run({"plan", "capacity", "--add", "1x1c1G", "--size", "1c1G"}).code, 2);
  EXPECT_EQ(run({"plan", "capacity", "--help"}).code, 0);
}

TEST(App, BalanceCommandsBuildTheirRequests) {
  auto p = run({"balance", "plan", "--dry-run"});
  ASSERT_EQ(p.code, 0) << p.err;
  EXPECT_EQ(p.out, "GET /api/v1/balance\n");
  auto a = run({"balance", "apply", "--wait", "--wait-timeout", "5m", "--dry-run"});
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out.rfind("POST /api/v1/balance/apply\n", 0), 0u) << a.out;
  EXPECT_EQ(run({"balance", "apply", "--wait-timeout", "soon", "--dry-run"}).code, 2);
  EXPECT_EQ(run({"balance"}).code, 2) << "a subcommand is required";
  EXPECT_EQ(run({"balance", "apply", "--help"}).code, 0);
}

TEST(App, VmMigrateNoTlsSaysSoInTheBody) {
  auto plain = run({"vm", "migrate", "web", "--to", "h2", "--no-tls", "--dry-run"});
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_NE(plain.out.find("\"tls\": false"), std::string::npos) << plain.out;
  auto deflt = run({"vm", "migrate", "web", "--dry-run"});
  ASSERT_EQ(deflt.code, 0) << deflt.err;
  EXPECT_EQ(deflt.out.find("tls"), std::string::npos) << "absent: the cluster default\n" << deflt.out;
  EXPECT_EQ(run({"vm", "migrate", "web", "--cancel", "--no-tls"}).code, 2);
  EXPECT_EQ(deflt.out.find("auto_converge"), std::string::npos) << deflt.out;
  auto ac = run({"vm", "migrate", "web", "--auto-converge", "--dry-run"});
  ASSERT_EQ(ac.code, 0) << ac.err;
  EXPECT_NE(ac.out.find("\"auto_converge\": true"), std::string::npos) << ac.out;
  EXPECT_EQ(run({"vm", "migrate", "web", "--cancel", "--auto-converge"}).code, 2);
}

TEST(App, CompletionCoversTheTree) {
  auto r = run({"completion", "bash"});
  ASSERT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("complete -F _strata strata"), std::string::npos);
  EXPECT_NE(r.out.find("\"vm/create\") words=\""), std::string::npos);
  EXPECT_NE(r.out.find("--anti-affinity"), std::string::npos);
  EXPECT_NE(r.out.find("\"host\") words=\"list show label maintenance"), std::string::npos);
}

TEST(App, ClientVersionNeedsNoServer) {
  auto r = run({"version", "--client"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("client: ", 0), 0u) << r.out;
}

}  // namespace
}  // namespace strata::cli
