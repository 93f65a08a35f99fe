// The backup repository with disks in memory (strata/backup/repository.h, disk_backup.h):
// full and incremental backups, deduplication, restore, verify, delete + gc, the lock, and
// a writer killed with SIGKILL mid-backup (a forked child).
#include "strata/backup/repository.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "strata/backup/disk_backup.h"

namespace strata::backup {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kCs = 64 << 10;  // small chunks keep the tests fast

// A disk in memory: a source (data = non-zero chunk-size blocks, dirty = what the test
// wrote since mark_clean) and a sink.
class MemDisk final : public DiskSource, public DiskSink {
 public:
  explicit MemDisk(uint64_t size) : bytes(size, 0) {}
  uint64_t size() const override { return bytes.size(); }
  Result<std::vector<Extent>> data_extents() override {
    std::vector<Extent> out;
    for (uint64_t off = 0; off < bytes.size(); off += kCs) {
      uint64_t len = std::min<uint64_t>(kCs, bytes.size() - off);
      if (!all_zero(bytes.data() + off, len)) out.push_back({off, len});
    }
    return out;
  }
  Result<std::vector<Extent>> dirty_extents() override { return dirty; }
  Status read(uint64_t off, size_t len, void* buf) override {
    ++reads;
    std::memcpy(buf, bytes.data() + off, len);
    return {};
  }
  Status write(uint64_t off, size_t len, const void* buf) override {
    std::memcpy(bytes.data() + off, buf, len);
    return {};
  }
  Status flush() override { return {}; }
  void fill_random(uint64_t off, uint64_t len, uint32_t seed) {
    std::mt19937 rng(seed);
    for (uint64_t i = 0; i < len; ++i) bytes[off + i] = static_cast<char>(rng());
    dirty.push_back({off, len});
  }
  std::string bytes;
  std::vector<Extent> dirty;
  int reads = 0;
};

class RepoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("strata-repo-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    auto r = Repository::open(root_.string());
    ASSERT_TRUE(r) << r.error().to_string();
    repo_.emplace(std::move(*r));
  }
  void TearDown() override { fs::remove_all(root_); }

  // What the driver does per backup: lock, folder, one disk, indexes, manifest.
  Result<Manifest> backup(const std::string& id, MemDisk& d, const std::string& parent = "") {
    auto lock = repo_->lock_shared();
    if (!lock) return tl::unexpected(lock.error());
    if (auto s = repo_->begin_backup(id); !s) return tl::unexpected(s.error());
    std::optional<DiskIndex> pidx;
    if (!parent.empty()) {
      auto p = repo_->read_index(parent, "root");
      if (!p) return tl::unexpected(p.error());
      pidx = *p;
    }
    Repository::PendingChunks pending;  // as the driver: chunks named at commit
    auto r = backup_disk(*repo_, d, "root", pidx ? &*pidx : nullptr, kCs, {}, &pending);
    if (!r) return tl::unexpected(r.error());
    if (auto s = repo_->write_index(id, r->index); !s) return tl::unexpected(s.error());
    Manifest m{id,
               "vm1",
               ++clock_ms_,
               parent.empty() ? "full" : "incremental",
               parent,
               false,
               {DiskRecord{"root", d.size(), "", r->stats.bytes_read, r->stats.bytes_new,
                           r->stats.chunks_read, r->stats.zero_chunks}},
               nullptr};
    if (auto s = repo_->commit(m, &pending); !s) return tl::unexpected(s.error());
    d.dirty.clear();
    return m;
  }

  std::string restore(const std::string& id, uint64_t size) {
    MemDisk out(size);
    auto idx = repo_->read_index(id, "root");
    EXPECT_TRUE(idx) << idx.error().to_string();
    if (!idx) return {};
    auto s = restore_disk(*repo_, *idx, out);
    EXPECT_TRUE(s) << s.error().to_string();
    return out.bytes;
  }

  size_t chunk_files() {
    size_t n = 0;
    for (auto& e : fs::recursive_directory_iterator(root_ / "chunks"))
      if (e.is_regular_file()) ++n;
    return n;
  }

  fs::path root_;
  std::optional<Repository> repo_;
  int64_t clock_ms_ = 1000;
};

TEST_F(RepoTest, FullThenIncrementalReadOnlyWhatChangedAndBothRestore) {
  MemDisk d(40 * kCs + 100);  // a short last chunk
  d.fill_random(0, 10 * kCs, 1);
  d.fill_random(20 * kCs, 10 * kCs + 100, 2);
  std::memcpy(d.bytes.data() + 30 * kCs, d.bytes.data(), kCs);  // a duplicate of chunk 0
  auto full = backup("b1", d);
  ASSERT_TRUE(full) << full.error().to_string();
  const std::string v1 = d.bytes;
  EXPECT_EQ(full->disks[0].chunks_read, 21u);  // 10 + 11 data chunks, the rest zero
  EXPECT_EQ(full->disks[0].zero_chunks, 20u);
  EXPECT_EQ(full->disks[0].bytes_new, 20 * kCs);  // chunk 30 deduplicated
  EXPECT_EQ(chunk_files(), 20u);

  // ~5 %: two chunks rewritten, one of them the short last one.
  d.fill_random(5 * kCs, kCs, 3);
  d.fill_random(40 * kCs, 100, 4);  // was zero
  d.reads = 0;
  auto inc = backup("b2", d, "b1");
  ASSERT_TRUE(inc) << inc.error().to_string();
  EXPECT_EQ(d.reads, 2);
  EXPECT_EQ(inc->disks[0].bytes_read, kCs + 100);
  EXPECT_EQ(inc->disks[0].bytes_new, kCs + 100);
  EXPECT_EQ(chunk_files(), 22u);

  EXPECT_EQ(restore("b1", d.size()), v1);
  EXPECT_EQ(restore("b2", d.size()), d.bytes);
  auto v = repo_->verify("b2");
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->problems.empty());
  EXPECT_EQ(v->chunks_checked, 22u);
}

// The manager records the VM's spec in a complete backup's manifest; a manifest without
// one (written before the field existed) still reads, with a null spec.
TEST_F(RepoTest, TheVmSpecIsRecordedAndOlderManifestsStillRead) {
  MemDisk d(2 * kCs);
  d.fill_random(0, kCs, 1);
  ASSERT_TRUE(backup("b1", d));
  auto before = repo_->read_manifest("b1");
  ASSERT_TRUE(before) << before.error().to_string();
  EXPECT_TRUE(before->vm_spec.is_null());
  EXPECT_FALSE(to_json(*before).contains("vm_spec")) << "an older manifest's shape is kept";

  nlohmann::json spec = {{"name", "vm1"}, {"memory_mib", 256}};
  ASSERT_TRUE(repo_->record_vm_spec("b1", spec));
  auto after = repo_->read_manifest("b1");
  ASSERT_TRUE(after) << after.error().to_string();
  EXPECT_EQ(after->vm_spec, spec);
  EXPECT_EQ(after->disks.size(), 1u);
  EXPECT_EQ(after->created_unix_ms, before->created_unix_ms);
  EXPECT_EQ(repo_->record_vm_spec("nope", spec).error().code, ErrorCode::not_found);
  EXPECT_FALSE(repo_->record_vm_spec("b1", nlohmann::json::array()));
  auto bad = to_json(*after);
  bad["vm_spec"] = "text";
  EXPECT_FALSE(parse_manifest(bad));
}

TEST_F(RepoTest, AnIncrementalOverAResizedDiskIsRefused) {
  MemDisk d(4 * kCs);
  d.fill_random(0, kCs, 1);
  ASSERT_TRUE(backup("b1", d));
  MemDisk bigger(8 * kCs);
  auto r = backup("b2", bigger, "b1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::failed_precondition);
}

TEST_F(RepoTest, VerifyFindsACorruptAndAMissingChunk) {
  MemDisk d(4 * kCs);
  d.fill_random(0, 2 * kCs, 1);
  ASSERT_TRUE(backup("b1", d));
  auto idx = repo_->read_index("b1", "root");
  ASSERT_TRUE(idx);
  {
    std::fstream f(repo_->chunk_path(idx->chunks[0]), std::ios::in | std::ios::out);
    f.seekp(10);
    f.put('\x5a' ^ d.bytes[10]);
  }
  fs::remove(repo_->chunk_path(idx->chunks[1]));
  auto v = repo_->verify("b1");
  ASSERT_TRUE(v);
  ASSERT_EQ(v->problems.size(), 2u);
  EXPECT_NE(v->problems[0].find("corrupt"), std::string::npos) << v->problems[0];
  EXPECT_NE(v->problems[1].find("does not exist"), std::string::npos) << v->problems[1];
  MemDisk out(4 * kCs);
  EXPECT_FALSE(restore_disk(*repo_, *idx, out));  // a restore never writes bad data silently
}

TEST_F(RepoTest, DeleteThenGcKeepsChunksOtherBackupsName) {
  MemDisk d(8 * kCs);
  d.fill_random(0, 4 * kCs, 1);
  ASSERT_TRUE(backup("b1", d));
  d.fill_random(0, kCs, 2);
  ASSERT_TRUE(backup("b2", d, "b1"));
  EXPECT_EQ(chunk_files(), 5u);
  auto lock = repo_->lock_exclusive();
  ASSERT_TRUE(lock);
  ASSERT_TRUE(repo_->remove("b1"));
  auto gc = repo_->gc();
  ASSERT_TRUE(gc) << gc.error().to_string();
  EXPECT_EQ(gc->chunks_removed, 1u);  // b1's chunk 0, rewritten in b2
  EXPECT_EQ(chunk_files(), 4u);
  auto l = repo_->list();
  ASSERT_TRUE(l);
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ(restore("b2", d.size()), d.bytes);  // the child restores alone
  EXPECT_EQ(repo_->remove("b1").error().code, ErrorCode::not_found);
}

TEST_F(RepoTest, GcWaitsForNoBackupAndBackupsForNoGc) {
  auto shared = repo_->lock_shared();
  ASSERT_TRUE(shared);
  auto ex = repo_->lock_exclusive();
  ASSERT_FALSE(ex);
  EXPECT_EQ(ex.error().code, ErrorCode::conflict);
  EXPECT_TRUE(repo_->lock_shared());  // backups run side by side
}

TEST_F(RepoTest, RefusesUnsafeNames) {
  EXPECT_EQ(repo_->begin_backup("../x").error().field, "id");
  EXPECT_EQ(repo_->read_index("b1", "../../etc").error().field, "disk");
  EXPECT_FALSE(repo_->read_chunk("../../../etc/passwd"));
  EXPECT_FALSE(Repository::open("relative/path"));
  EXPECT_FALSE(Repository::open("/nonexistent/strata-repo"));
}

// A source whose read at one offset fails (and counts reads), over a MemDisk.
class FailingSource final : public DiskSource {
 public:
  FailingSource(MemDisk& d, uint64_t fail_at) : d_(d), fail_at_(fail_at) {}
  uint64_t size() const override { return d_.size(); }
  Result<std::vector<Extent>> data_extents() override { return d_.data_extents(); }
  Result<std::vector<Extent>> dirty_extents() override { return d_.dirty_extents(); }
  Status read(uint64_t off, size_t len, void* buf) override {
    ++reads;
    if (off == fail_at_) return unavailable("nbd read: injected");
    return d_.read(off, len, buf);
  }
  int reads = 0;

 private:
  MemDisk& d_;
  uint64_t fail_at_;
};

// A sink whose n-th write fails.
class FailingSink final : public DiskSink {
 public:
  explicit FailingSink(int fail_on) : fail_on_(fail_on) {}
  Status write(uint64_t, size_t, const void*) override {
    return ++writes == fail_on_ ? unavailable("nbd write: injected") : Status{};
  }
  Status flush() override { return {}; }
  int writes = 0;

 private:
  int fail_on_;
};

// The reader stops at a failed read: the backup fails naming the disk, after its threads
// have ended (nothing reads into a freed buffer), and the next backup of the disk works.
TEST_F(RepoTest, AReadErrorMidDiskFailsTheBackupAndStopsReading) {
  MemDisk d(64 * kCs);
  d.fill_random(0, d.size(), 1);
  FailingSource src(d, 20 * kCs);
  Repository::PendingChunks pending;
  auto r = backup_disk(*repo_, src, "root", nullptr, kCs, {}, &pending);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("read disk root"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("injected"), std::string::npos) << r.error().message;
  EXPECT_EQ(src.reads, 21);  // chunks 0..20, none after the failure
  auto again = backup("b1", d);
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(restore("b1", d.size()), d.bytes);
}

// Chunks are hashed and stored by several threads: identical chunks arriving together
// are still stored once (the digest is claimed before the write).
TEST_F(RepoTest, IdenticalChunksHashedInParallelAreStoredOnce) {
  MemDisk d(64 * kCs);
  d.fill_random(0, kCs, 1);
  for (uint64_t i = 1; i < 64; ++i) std::memcpy(d.bytes.data() + i * kCs, d.bytes.data(), kCs);
  auto b = backup("b1", d);
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_EQ(b->disks[0].chunks_read, 64u);
  EXPECT_EQ(b->disks[0].bytes_new, kCs);
  EXPECT_EQ(chunk_files(), 1u);
  EXPECT_EQ(restore("b1", d.size()), d.bytes);
}

// Progress (backup and restore) is reported on the calling thread, growing, ending at
// the total of the chunks read or written.
TEST_F(RepoTest, ProgressRunsOnTheCallingThreadUpToTheTotal) {
  MemDisk d(32 * kCs + 100);
  d.fill_random(0, 8 * kCs, 1);
  d.fill_random(16 * kCs, 16 * kCs + 100, 2);
  const auto self = std::this_thread::get_id();
  std::vector<std::pair<uint64_t, uint64_t>> seen;
  bool other_thread = false;
  auto record = [&](uint64_t done, uint64_t total) {
    other_thread |= std::this_thread::get_id() != self;
    seen.emplace_back(done, total);
  };
  ASSERT_TRUE(repo_->begin_backup("b1"));
  auto r = backup_disk(*repo_, d, "root", nullptr, kCs, record);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(other_thread);
  ASSERT_EQ(seen.size(), 25u);  // 8 + 17 data chunks
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GT(seen[i].first, seen[i - 1].first);
  EXPECT_EQ(seen.back().first, 24 * kCs + 100);
  EXPECT_EQ(seen.back().second, 24 * kCs + 100);

  seen.clear();
  MemDisk out(d.size());
  ASSERT_TRUE(restore_disk(*repo_, r->index, out, record));
  EXPECT_FALSE(other_thread);
  ASSERT_EQ(seen.size(), 25u);
  EXPECT_EQ(seen.back().first, 24 * kCs + 100);
  EXPECT_EQ(out.bytes, d.bytes);
}

// A failed write ends the restore with that error, its reading threads stopped.
TEST_F(RepoTest, ARestoreStopsAtAFailedWrite) {
  MemDisk d(64 * kCs);
  d.fill_random(0, d.size(), 1);
  ASSERT_TRUE(backup("b1", d));
  auto idx = repo_->read_index("b1", "root");
  ASSERT_TRUE(idx);
  FailingSink sink(10);
  auto s = restore_disk(*repo_, *idx, sink);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("injected"), std::string::npos) << s.error().message;
  EXPECT_EQ(sink.writes, 10);
}

// A backup writer killed with SIGKILL mid-run leaves no backup, no half chunk under a
// final name, and nothing gc cannot clean; the earlier backup still verifies and a new
// backup succeeds.
TEST_F(RepoTest, AWriterKilledMidBackupCorruptsNothing) {
  MemDisk d(512 * kCs);
  d.fill_random(0, 8 * kCs, 1);
  ASSERT_TRUE(backup("b1", d));
  d.fill_random(0, d.size(), 2);  // every chunk new: a long backup to interrupt
  fflush(nullptr);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto r = backup("b2", d, "b1");
    ::_exit(r ? 0 : 1);
  }
  // Kill it once it has written a few chunks.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (chunk_files() < 40 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child finished before it was killed";
  // Chunks of an uncommitted backup are temp files: none got its final name.
  size_t named = 0, temps = 0;
  for (auto& e : fs::recursive_directory_iterator(root_ / "chunks"))
    if (e.is_regular_file())
      ++(e.path().filename().string().rfind(".tmp-", 0) == 0 ? temps : named);
  EXPECT_EQ(named, 8u);  // b1's
  EXPECT_GE(temps, 30u);

  auto l = repo_->list();
  ASSERT_TRUE(l);
  ASSERT_EQ(l->size(), 1u);  // b2 does not exist
  auto v = repo_->verify("b1");
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->problems.empty());
  // Every chunk file under a final name is whole (its name is its content's digest).
  for (auto& e : fs::recursive_directory_iterator(root_ / "chunks")) {
    auto name = e.path().filename().string();
    if (!e.is_regular_file() || name.rfind(".tmp-", 0) == 0) continue;
    EXPECT_TRUE(repo_->read_chunk(name)) << name;
  }
  {
    auto lock = repo_->lock_exclusive();  // the dead writer's shared lock died with it
    ASSERT_TRUE(lock) << lock.error().to_string();
    auto gc = repo_->gc();
    ASSERT_TRUE(gc) << gc.error().to_string();
    EXPECT_EQ(gc->incomplete_removed, 1u);
    EXPECT_EQ(gc->chunks_removed, 0u);
    // The temp file being written when the kill came may be short.
    EXPECT_GE(gc->bytes_removed, (temps - 1) * kCs);
  }
  EXPECT_EQ(chunk_files(), 8u);
  auto again = backup("b3", d, "b1");
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(restore("b3", d.size()), d.bytes);
}

}  // namespace
}  // namespace strata::backup
