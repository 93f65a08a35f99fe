// VM folder records: round trip, and a full disk (tiny tmpfs, root) that fails the write
// cleanly and keeps the previous state.json readable.
#include "vm_dir.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/tiny_tmpfs.h"

namespace strata::agent::qemu {
namespace {

StateRecord running(const std::string& reason) {
  StateRecord r;
  r.state = model::VmState::running;
  r.changed_unix_ms = 1234;
  r.reason = reason;
  r.pid = 42;
  r.accelerator = "tcg";
  return r;
}

TEST(VmDir, StateRecordRoundTrips) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "strata-vmdir-XXXXXX").string();
  ASSERT_TRUE(::mkdtemp(tmpl.data()));
  ASSERT_TRUE(write_state_record(tmpl, running("started")));
  auto back = read_state_record(tmpl);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->reason, "started");
  EXPECT_EQ(back->pid, 42);
  std::filesystem::remove_all(tmpl);
}

// A damaged state.json (numbers out of range, floats, wrong types) reads its numbers as the
// defaults: get<int>() of 1e300 was undefined behaviour and a large integer was narrowed.
TEST(VmDir, DamagedNumbersInTheStateRecordReadAsDefaults) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "strata-vmdir-XXXXXX").string();
  ASSERT_TRUE(::mkdtemp(tmpl.data()));
  std::ofstream(tmpl + "/" + kStateFile)
      << R"({"state":"running","reason":"r","pid":1e300,"changed_unix_ms":3.5e30,)"
      << R"("last_exit":{"code":4294967296,"at_unix_ms":"x","qemu_pid":-1e300}})";
  auto back = read_state_record(tmpl);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->pid, 0);
  EXPECT_EQ(back->changed_unix_ms, 0);
  EXPECT_EQ(back->reason, "r");
  ASSERT_TRUE(back->last_exit);
  EXPECT_EQ(back->last_exit->code, 0);
  EXPECT_EQ(back->last_exit->at_unix_ms, 0);
  std::filesystem::remove_all(tmpl);
}

TEST(VmDir, FullDiskFailsTheStateWriteAndKeepsThePreviousState) {
  strata::testing::TinyTmpfs tiny(256 * 1024);
  if (!tiny.mounted()) GTEST_SKIP() << "SKIPPED: " << tiny.why_not();
  ASSERT_TRUE(write_state_record(tiny.path(), running("started")));
  tiny.fill();
  // A reason long enough that the new file needs more blocks than are left.
  auto st = write_state_record(tiny.path(), running(std::string(64 * 1024, 'r')));
  ASSERT_FALSE(st) << "a short state.json must not be renamed into place";
  EXPECT_EQ(st.error().code, ErrorCode::resource_exhausted);
  EXPECT_NE(st.error().message.find("state.json"), std::string::npos) << st.error().message;
  auto back = read_state_record(tiny.path());
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->reason, "started");
}

}  // namespace
}  // namespace strata::agent::qemu
