// Backup retention and schedule routes (routes_backups.cc) through ApiService::dispatch on
// the manager's parts (an in-memory store, a real repository folder, no agent): prune's
// plan and deletions and its refusals naming the field; schedules created, listed, shown
// and deleted, and refused with 4xx JSON errors naming the field.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "manager_parts.h"
#include "strata/manager/api/api_service.h"

namespace strata::manager {
namespace {

using nlohmann::json;

class BackupRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(parts_.build());
    api_ = std::make_unique<ApiService>(parts_.deps());
    auto repo = backup::Repository::open(parts_.backup_repo);
    ASSERT_TRUE(repo);
    repo_.emplace(std::move(*repo));
  }

  HttpResponse call(const std::string& method, const std::string& path, const std::string& body) {
    HttpRequest r;
    r.method = method;
    r.path = path;
    r.body = body;
    if (!body.empty()) r.headers["content-type"] = "application/json";
    r.headers["authorization"] = "Bearer " + parts_.admin;
    r.remote_address = "127.0.0.1";
    r.peer_is_local = true;
    return api_->dispatch(r);
  }
  // A backup with an empty disk list: enough for listing and pruning.
  void backup(const std::string& id, const std::string& vm, int64_t created_ms) {
    ASSERT_TRUE(repo_->begin_backup(id));
    backup::Manifest m{id, vm, created_ms, "full", "", false, {}, nullptr};
    ASSERT_TRUE(repo_->commit(m));
  }
  std::string error_field(const HttpResponse& r) {
    auto j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.contains("error")) return "<no error>";
    return j["error"].value("field", "");
  }

  test_support::ManagerParts parts_;
  std::unique_ptr<ApiService> api_;
  std::optional<backup::Repository> repo_;
};

TEST_F(BackupRoutesTest, PrunePlansThenDeletesAndNamesBadFields) {
  for (int i = 0; i < 4; ++i) backup("web-" + std::to_string(i), "web", 1000 + i);
  auto plan = call("POST", "/api/v1/backups/prune", R"({"vm":"web","keep_last":2,"dry_run":true})");
  ASSERT_EQ(plan.status, 200u) << plan.body;
  auto p = json::parse(plan.body);
  EXPECT_EQ(p["dry_run"], true);
  ASSERT_EQ(p["keep"].size(), 2u);
  EXPECT_EQ(p["keep"][0]["id"], "web-3");
  EXPECT_EQ(p["keep"][0]["rule"], "keep-last");
  ASSERT_EQ(p["prune"].size(), 2u);
  EXPECT_EQ(p["prune"][1]["id"], "web-0");
  EXPECT_EQ(repo_->list("web")->size(), 4u);

  // Monthly and yearly rules: all four backups are in January 1970, one month and one year.
  auto monthly = call("POST", "/api/v1/backups/prune",
                      R"({"vm":"web","keep_monthly":3,"keep_yearly":1,"dry_run":true})");
  ASSERT_EQ(monthly.status, 200u) << monthly.body;
  auto mp = json::parse(monthly.body);
  ASSERT_EQ(mp["keep"].size(), 1u);
  EXPECT_EQ(mp["keep"][0]["id"], "web-3");
  EXPECT_EQ(mp["keep"][0]["rule"], "keep-monthly");
  EXPECT_EQ(mp["keep"][0]["period"], "1970-01");
  EXPECT_EQ(mp["prune"].size(), 3u);

  auto done = call("POST", "/api/v1/backups/prune", R"({"vm":"web","keep_last":2})");
  ASSERT_EQ(done.status, 200u) << done.body;
  EXPECT_EQ(json::parse(done.body)["dry_run"], false);
  EXPECT_EQ(repo_->list("web")->size(), 2u);

  auto bad = [&](const std::string& body) {
    auto r = call("POST", "/api/v1/backups/prune", body);
    EXPECT_EQ(r.status, 400u) << body << " -> " << r.body;
    return error_field(r);
  };
  EXPECT_EQ(bad(R"({"vm":"web","keep_last":-1})"), "keep_last");
  EXPECT_EQ(bad(R"({"vm":"web","keep_daily":"7"})"), "keep_daily");
  EXPECT_EQ(bad(R"({"vm":"web"})"), "keep_last");
  EXPECT_EQ(bad(R"({"keep_last":1})"), "vm");
  EXPECT_EQ(bad(R"({"vm":"web","selector":{"a":"b"},"keep_last":1})"), "vm");
  EXPECT_EQ(bad(R"({"selector":{"a":1},"keep_last":1})"), "selector.a");
  EXPECT_EQ(bad(R"({"selector":{},"keep_last":1})"), "selector");
  EXPECT_EQ(bad(R"({"vm":"web","keep_last":1,"keep_hourly":1})"), "keep_hourly");
  EXPECT_EQ(bad(R"({"vm":"web","keep_monthly":-1})"), "keep_monthly");
  EXPECT_EQ(bad(R"({"vm":"web","keep_yearly":100001})"), "keep_yearly");
  EXPECT_EQ(repo_->list("web")->size(), 2u);

  // Restore names exactly one of vm and new_vm.
  for (const char* body : {R"({})", R"({"vm":"a","new_vm":"b"})"}) {
    auto r = call("POST", "/api/v1/backups/web-3/restore", body);
    EXPECT_EQ(r.status, 400u) << body << " -> " << r.body;
    EXPECT_EQ(error_field(r), "vm") << body;
  }
  auto bad_new = call("POST", "/api/v1/backups/web-3/restore", R"({"new_vm":"Bad_Name"})");
  EXPECT_EQ(bad_new.status, 400u) << bad_new.body;
  EXPECT_EQ(error_field(bad_new), "new_vm");
  // A datastore is where a new VM's disks go: with vm (disks replaced where they are), or
  // not a string, refused naming it.
  for (const char* body :
       {R"({"vm":"web","datastore":"shared"})", R"({"new_vm":"c","datastore":1})"}) {
    auto r = call("POST", "/api/v1/backups/web-3/restore", body);
    EXPECT_EQ(r.status, 400u) << body << " -> " << r.body;
    EXPECT_EQ(error_field(r), "datastore") << body;
  }
}

// POST /api/v1/backups/sync: the target is the manager's configuration, never the request
// (a path in the body is an unknown field); 4xx naming the field; 202 with the task.
TEST_F(BackupRoutesTest, SyncTakesNoPathAndStartsATask) {
  auto bad = [&](const std::string& body) {
    auto r = call("POST", "/api/v1/backups/sync", body);
    EXPECT_EQ(r.status, 400u) << body << " -> " << r.body;
    return error_field(r);
  };
  EXPECT_EQ(bad(R"({"to":"/tmp/elsewhere"})"), "to");
  EXPECT_EQ(bad(R"({"verify":"yes"})"), "verify");
  EXPECT_EQ(bad(R"({"remove_vanished":1})"), "remove_vanished");
  auto unconfigured = call("POST", "/api/v1/backups/sync", "");
  EXPECT_GE(unconfigured.status, 400u);
  EXPECT_LT(unconfigured.status, 500u);
  EXPECT_NE(unconfigured.body.find("backup-sync-repo"), std::string::npos) << unconfigured.body;

  char tmpl[] = "/tmp/strata-api-offsite-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string offsite = tmpl;
  auto target = backup::Repository::open(offsite);
  ASSERT_TRUE(target);
  parts_.backups->set_sync_target(*target);
  backup("web-1", "web", 1000);
  auto ok = call("POST", "/api/v1/backups/sync", R"({"verify":true,"remove_vanished":true})");
  ASSERT_EQ(ok.status, 202u) << ok.body;
  auto task = json::parse(ok.body)["task"];
  EXPECT_EQ(task["kind"], "backup.sync");
  // The worker copies; its end is awaited (bounded) before the folder goes.
  store::TaskRecord t;
  for (int i = 0; i < 1000 && t.state != "succeeded" && t.state != "failed"; ++i) {
    if (auto got = parts_.store->get_task(task["id"].get<std::string>())) t = *got;
    if (t.state != "succeeded" && t.state != "failed")
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(t.state, "succeeded") << t.message;
  EXPECT_EQ(target->list()->size(), 1u);
  auto result = json::parse(t.result);
  EXPECT_EQ(result["remove_vanished"], true);
  EXPECT_EQ(result["removed"], json::array()) << "nothing vanished";
  std::filesystem::remove_all(offsite);
}

TEST_F(BackupRoutesTest, SchedulesAreCreatedListedShownDeletedAndValidated) {
  auto made = call("POST", "/api/v1/backup-schedules",
                   R"({"name":"nightly","selector":{"tier":"web"},"time":"02:30",)"
                   R"("full_on":["sun"],"retention":{"keep_daily":7,"keep_weekly":4,)"
                   R"("keep_yearly":2}})");
  ASSERT_EQ(made.status, 201u) << made.body;
  auto s = json::parse(made.body);
  EXPECT_EQ(s["name"], "nightly");
  EXPECT_EQ(s["selector"], (json{{"tier", "web"}}));
  EXPECT_EQ(s["days"].size(), 7u);
  EXPECT_EQ(s["retention"]["keep_weekly"], 4);
  EXPECT_EQ(s["retention"]["keep_monthly"], 0);
  EXPECT_EQ(s["retention"]["keep_yearly"], 2);
  EXPECT_EQ(s["sync"], false);
  EXPECT_GT(s["next_run_unix_ms"].get<int64_t>(), s["last_slot_unix_ms"].get<int64_t>());
  EXPECT_EQ(
      call("POST", "/api/v1/backup-schedules", R"({"name":"nightly","vm":"x","time":"01:00"})")
          .status,
      409u);

  auto list = call("GET", "/api/v1/backup-schedules", "");
  ASSERT_EQ(list.status, 200u) << list.body;
  ASSERT_EQ(json::parse(list.body)["schedules"].size(), 1u);
  auto one = call("GET", "/api/v1/backup-schedules/nightly", "");
  ASSERT_EQ(one.status, 200u) << one.body;
  EXPECT_EQ(json::parse(one.body)["time"], "02:30");
  EXPECT_EQ(call("GET", "/api/v1/backup-schedules/nope", "").status, 404u);

  auto bad = [&](const std::string& body) {
    auto r = call("POST", "/api/v1/backup-schedules", body);
    EXPECT_EQ(r.status, 400u) << body << " -> " << r.body;
    return error_field(r);
  };
  EXPECT_EQ(bad(R"({"vm":"web","time":"02:30"})"), "name");
  EXPECT_EQ(bad(R"({"name":"Bad_Name","vm":"web","time":"02:30"})"), "name");
  EXPECT_EQ(bad(R"({"name":"a","vm":"web","time":"2:30"})"), "time");
  EXPECT_EQ(bad(R"({"name":"a","vm":"web","time":"25:00"})"), "time");
  EXPECT_EQ(bad(R"({"name":"a","selector":"tier=web","time":"02:30"})"), "selector");
  EXPECT_EQ(bad(R"({"name":"a","vm":"web","time":"02:30","days":["mo"]})"), "days[0]");
  EXPECT_EQ(bad(R"({"name":"a","vm":"web","time":"02:30","retention":{"keep_last":-2}})"),
            "retention.keep_last");
  EXPECT_EQ(json::parse(call("GET", "/api/v1/backup-schedules", "").body)["schedules"].size(), 1u);

  auto del = call("DELETE", "/api/v1/backup-schedules/nightly", "");
  ASSERT_EQ(del.status, 200u) << del.body;
  EXPECT_EQ(call("DELETE", "/api/v1/backup-schedules/nightly", "").status, 404u);
  size_t audits = 0;
  auto events = parts_.store->list_events(0, 0);
  ASSERT_TRUE(events);
  for (auto& e : *events)
    audits += e.action == "backup.schedule.create" || e.action == "backup.schedule.delete";
  EXPECT_GE(audits, 2u);
}

}  // namespace
}  // namespace strata::manager
