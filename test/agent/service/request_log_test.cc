// RequestLog: LRU bound, persistence across reopen (an agent restart), torn-line
// tolerance, compaction, and waiting on an id that is in flight.
#include "strata/agent/service/request_log.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/syscall_trace.h"

namespace strata::agent::service {
namespace {

namespace fs = std::filesystem;

class RequestLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-reqlog-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "request-ids.jsonl").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  static RequestRecord rec(int code, std::string response) {
    // Binary bytes on purpose: responses are serialized protobuf.
    return RequestRecord{"StartVm", "00ff",
                         RequestOutcome{code, "msg", std::string("\x01\x00\x02", 3), response}};
  }
  void put(RequestLog& log, const std::string& id, RequestRecord r) {
    ASSERT_FALSE(log.begin(id).has_value());
    ASSERT_TRUE(log.finish(id, std::move(r)));
  }

  fs::path dir_;
  std::string path_;
};

TEST(RequestId, Validation) {
  EXPECT_TRUE(validate_request_id("r-0123abcd"));
  EXPECT_TRUE(validate_request_id("mgr:task.42_x"));
  EXPECT_EQ(validate_request_id("").error().field, "request_id");
  EXPECT_FALSE(validate_request_id(std::string(129, 'a')));
  EXPECT_FALSE(validate_request_id("has space"));
  EXPECT_FALSE(validate_request_id("slash/no"));
}

TEST(RequestId, FingerprintIsStableAndSensitive) {
  EXPECT_EQ(fingerprint(""), "cbf29ce484222325");  // FNV-1a 64 offset basis
  EXPECT_EQ(fingerprint("abc"), fingerprint("abc"));
  EXPECT_NE(fingerprint("abc"), fingerprint("abd"));
}

TEST_F(RequestLogTest, RemembersOutcomeExactly) {
  auto log = RequestLog::open(path_, 16);
  ASSERT_TRUE(log);
  std::string bytes("\x00\x01\xfe\xff", 4);
  put(**log, "a", rec(0, bytes));
  auto again = (*log)->begin("a");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->outcome.response, bytes);
  EXPECT_EQ(again->outcome.details, std::string("\x01\x00\x02", 3));
  EXPECT_EQ(again->method, "StartVm");
}

TEST_F(RequestLogTest, SurvivesReopen) {
  {
    auto log = RequestLog::open(path_, 16);
    ASSERT_TRUE(log);
    put(**log, "a", rec(0, "resp-a"));
    put(**log, "b", rec(5, ""));
  }
  auto log = RequestLog::open(path_, 16);
  ASSERT_TRUE(log);
  EXPECT_EQ((*log)->size(), 2u);
  auto a = (*log)->peek("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->outcome.response, "resp-a");
  auto b = (*log)->peek("b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->outcome.status_code, 5);
}

TEST_F(RequestLogTest, EvictsLeastRecentlyUsedBeyondCapacity) {
  auto log = RequestLog::open(path_, 3);
  ASSERT_TRUE(log);
  put(**log, "a", rec(0, "a"));
  put(**log, "b", rec(0, "b"));
  put(**log, "c", rec(0, "c"));
  ASSERT_TRUE((*log)->begin("a"));  // touch a: b is now the oldest
  put(**log, "d", rec(0, "d"));
  EXPECT_EQ((*log)->size(), 3u);
  EXPECT_FALSE((*log)->peek("b"));
  EXPECT_TRUE((*log)->peek("a"));
  EXPECT_TRUE((*log)->peek("d"));
}

TEST_F(RequestLogTest, FileStaysBoundedByCompaction) {
  {
    auto log = RequestLog::open(path_, 4);
    ASSERT_TRUE(log);
    for (int i = 0; i < 100; ++i) put(**log, "id" + std::to_string(i), rec(0, "x"));
  }
  std::ifstream in(path_);
  size_t lines = 0;
  for (std::string l; std::getline(in, l);) ++lines;
  EXPECT_LE(lines, 8u);
  auto log = RequestLog::open(path_, 4);
  ASSERT_TRUE(log);
  EXPECT_EQ((*log)->size(), 4u);
  EXPECT_TRUE((*log)->peek("id99"));
  EXPECT_FALSE((*log)->peek("id95"));
}

// Compaction (at every open, and when the file holds twice the capacity) writes a new file
// and renames it over the old one; every remembered id is appended to the new file after
// that. Without an fsync of the folder, a power loss can bring back the old name (the old
// file) and lose every id remembered since: the new file's name must be durable first.
TEST_F(RequestLogTest, CompactionMakesTheNewNameDurable) {
  {
    auto log = RequestLog::open(path_, 4);
    ASSERT_TRUE(log);
    put(**log, "before", rec(0, "x"));
  }
  std::string why;
  auto trace = strata::testing::trace_syscalls(
      "rename,renameat,renameat2,openat,fsync",
      [this] {
        auto log = RequestLog::open(path_, 4);  // compacts
        if (!log) return 1;
        for (int i = 0; i < 10; ++i) {  // past 2 x capacity: compacts again
          if ((*log)->begin("id" + std::to_string(i)).has_value()) return 2;
          if (!(*log)->finish("id" + std::to_string(i), rec(0, "x"))) return 3;
        }
        return 0;
      },
      &why);
  if (!trace) GTEST_SKIP() << "SKIPPED: " << why;
  std::string all;
  for (const auto& l : *trace) all += l + "\n";
  ASSERT_EQ(all.find("TRACED FUNCTION FAILED"), std::string::npos) << why << "\n" << all;
  EXPECT_TRUE(strata::testing::rename_then_dir_fsync(*trace, path_, dir_.string())) << all;
}

TEST_F(RequestLogTest, TornLastLineIsSkipped) {
  {
    auto log = RequestLog::open(path_, 16);
    ASSERT_TRUE(log);
    put(**log, "a", rec(0, "a"));
  }
  {
    std::ofstream out(path_, std::ios::app);
    out << R"({"id":"b","method":"Sta)";  // crash mid-write
  }
  auto log = RequestLog::open(path_, 16);
  ASSERT_TRUE(log);
  EXPECT_EQ((*log)->size(), 1u);
  EXPECT_TRUE((*log)->peek("a"));
}

TEST_F(RequestLogTest, AbandonedIdIsNotRemembered) {
  auto log = RequestLog::open("", 16);
  ASSERT_TRUE(log);
  ASSERT_FALSE((*log)->begin("a"));
  (*log)->abandon("a");
  EXPECT_FALSE((*log)->begin("a"));  // runs again
  (*log)->abandon("a");
}

TEST_F(RequestLogTest, ConcurrentRepeatWaitsForTheFirst) {
  auto log = RequestLog::open("", 16);
  ASSERT_TRUE(log);
  ASSERT_FALSE((*log)->begin("a"));  // first caller is "executing"
  std::optional<RequestRecord> seen;
  std::thread second([&] { seen = (*log)->begin("a"); });
  // The second caller cannot proceed until the first finishes; its result is the first's.
  ASSERT_TRUE((*log)->finish("a", rec(0, "first")));
  second.join();
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->outcome.response, "first");
}

}  // namespace
}  // namespace strata::agent::service
