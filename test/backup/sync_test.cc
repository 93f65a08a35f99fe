// Repository sync (strata/backup/sync.h) over real repository folders: a disk image file
// (sparse raw, on the file system) backed up through backup_disk, synced to a second
// repository, verified there and restored from it byte for byte; deduplication carries
// over; a sync killed (SIGKILL, a forked child) between its chunks and its manifest leaves
// the target valid, and the next sync completes it.
#include "strata/backup/sync.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "strata/backup/disk_backup.h"

namespace strata::backup {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kSyncCs = 64 << 10;

// A disk image file read and written with pread/pwrite; its data extents from
// SEEK_DATA/SEEK_HOLE (a sparse file's holes are not read).
class ImageFile final : public DiskSource, public DiskSink {
 public:
  ImageFile(const std::string& path, uint64_t size) : path_(path), size_(size) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ >= 0) (void)!::ftruncate(fd_, static_cast<off_t>(size));
  }
  ~ImageFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  uint64_t size() const override { return size_; }
  Result<std::vector<Extent>> data_extents() override {
    std::vector<Extent> out;
    off_t at = 0;
    while (static_cast<uint64_t>(at) < size_) {
      off_t data = ::lseek(fd_, at, SEEK_DATA);
      if (data < 0) break;  // ENXIO: no data after `at`
      off_t hole = ::lseek(fd_, data, SEEK_HOLE);
      if (hole < 0) hole = static_cast<off_t>(size_);
      out.push_back({static_cast<uint64_t>(data), static_cast<uint64_t>(hole - data)});
      at = hole;
    }
    return out;
  }
  Result<std::vector<Extent>> dirty_extents() override { return dirty; }
  Status read(uint64_t off, size_t len, void* buf) override {
    if (::pread(fd_, buf, len, static_cast<off_t>(off)) != static_cast<ssize_t>(len))
      return internal_error("pread " + path_);
    return {};
  }
  Status write(uint64_t off, size_t len, const void* buf) override {
    if (::pwrite(fd_, buf, len, static_cast<off_t>(off)) != static_cast<ssize_t>(len))
      return internal_error("pwrite " + path_);
    return {};
  }
  Status flush() override { return ::fdatasync(fd_) == 0 ? Status{} : internal_error("fsync"); }
  void fill_random(uint64_t off, uint64_t len, uint32_t seed) {
    std::mt19937 rng(seed);
    std::string b(len, 0);
    for (auto& c : b) c = static_cast<char>(rng());
    ASSERT_TRUE(write(off, len, b.data()));
    dirty.push_back({off, len});
  }
  std::string contents() const {
    std::ifstream f(path_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  std::vector<Extent> dirty;

 private:
  std::string path_;
  uint64_t size_;
  int fd_ = -1;
};

class SyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("strata-sync-" + std::to_string(::getpid()));
    fs::remove_all(base_);
    for (auto sub : {"primary", "offsite", "images"}) fs::create_directories(base_ / sub);
    auto a = Repository::open((base_ / "primary").string());
    auto b = Repository::open((base_ / "offsite").string());
    ASSERT_TRUE(a && b);
    primary_.emplace(std::move(*a));
    offsite_.emplace(std::move(*b));
  }
  void TearDown() override { fs::remove_all(base_); }

  // What the agent does per backup, from an image file: lock, folder, index, manifest.
  Manifest backup(const std::string& id, ImageFile& img, const std::string& parent = "") {
    auto lock = primary_->lock_shared();
    EXPECT_TRUE(lock);
    EXPECT_TRUE(primary_->begin_backup(id));
    std::optional<DiskIndex> pidx;
    if (!parent.empty()) pidx = *primary_->read_index(parent, "root");
    Repository::PendingChunks pending;
    auto r = backup_disk(*primary_, img, "root", pidx ? &*pidx : nullptr, kSyncCs, {}, &pending);
    EXPECT_TRUE(r) << r.error().to_string();
    EXPECT_TRUE(primary_->write_index(id, r->index));
    Manifest m{id,
               "vm1",
               ++clock_ms_,
               parent.empty() ? "full" : "incremental",
               parent,
               false,
               {DiskRecord{"root", img.size(), "strata-" + id, r->stats.bytes_read,
                           r->stats.bytes_new, r->stats.chunks_read, r->stats.zero_chunks}},
               nlohmann::json{{"name", "vm1"}}};
    EXPECT_TRUE(primary_->commit(m, &pending));
    img.dirty.clear();
    return m;
  }

  std::string restore_from(const Repository& repo, const std::string& id, uint64_t size) {
    ImageFile out((base_ / "images" / ("restored-" + id)).string(), size);
    auto idx = repo.read_index(id, "root");
    EXPECT_TRUE(idx) << idx.error().to_string();
    if (!idx) return {};
    auto s = restore_disk(repo, *idx, out);
    EXPECT_TRUE(s) << s.error().to_string();
    return out.contents();
  }

  size_t files_in(const fs::path& p, bool temps) {
    size_t n = 0;
    for (auto& e : fs::recursive_directory_iterator(p))
      if (e.is_regular_file() && (e.path().filename().string().rfind(".tmp-", 0) == 0) == temps)
        ++n;
    return n;
  }

  fs::path base_;
  std::optional<Repository> primary_, offsite_;
  int64_t clock_ms_ = 1000;
};

TEST_F(SyncTest, CopiesMissingBackupsWhichVerifyAndRestoreFromTheTarget) {
  ImageFile img((base_ / "images" / "disk.raw").string(), 64 * kSyncCs + 100);
  ASSERT_TRUE(img.ok());
  img.fill_random(0, 8 * kSyncCs, 1);
  img.fill_random(40 * kSyncCs, 4 * kSyncCs, 2);
  backup("b1", img);
  const std::string v1 = img.contents();
  img.fill_random(2 * kSyncCs, kSyncCs, 3);
  img.fill_random(64 * kSyncCs, 100, 4);  // the short last chunk
  backup("b2", img, "b1");
  const std::string v2 = img.contents();

  std::vector<SyncProgress> seen;
  SyncOptions o;
  o.verify = true;
  o.progress = [&](const SyncProgress& p) { seen.push_back(p); };
  auto r = sync_repository(*primary_, *offsite_, o);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->copied, (std::vector<std::string>{"b1", "b2"}));
  EXPECT_EQ(r->totals.backups_done, 2u);
  EXPECT_EQ(r->totals.chunks_copied, 14u);  // 12 of b1, 2 new in b2
  EXPECT_EQ(r->totals.bytes_copied, 13 * kSyncCs + 100);
  EXPECT_EQ(r->totals.chunks_skipped, 11u);  // b2 shares 11 chunks with b1, copied first
  EXPECT_EQ(r->chunks_verified, 14u);
  EXPECT_TRUE(r->problems.empty()) << r->problems.front();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front().backups_total, 2u);
  EXPECT_EQ(seen.back().backups_done, 2u);
  for (size_t i = 1; i < seen.size(); ++i)
    EXPECT_GE(seen[i].bytes_copied, seen[i - 1].bytes_copied);

  // The copy stands alone: verified and restored from the target, byte for byte.
  for (const char* id : {"b1", "b2"}) {
    auto v = offsite_->verify(id);
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->problems.empty()) << id;
    auto m = offsite_->read_manifest(id);
    ASSERT_TRUE(m);
    EXPECT_EQ(to_json(*m), to_json(*primary_->read_manifest(id)));
  }
  EXPECT_EQ(restore_from(*offsite_, "b1", img.size()), v1);
  EXPECT_EQ(restore_from(*offsite_, "b2", img.size()), v2);

  // Nothing new: nothing copied. A third backup: only it, and only its new chunk.
  auto again = sync_repository(*primary_, *offsite_);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->copied.empty());
  EXPECT_EQ(again->already_present.size(), 2u);
  img.fill_random(50 * kSyncCs, kSyncCs, 5);
  backup("b3", img, "b2");
  auto third = sync_repository(*primary_, *offsite_);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->copied, (std::vector<std::string>{"b3"}));
  EXPECT_EQ(third->totals.chunks_copied, 1u);
  EXPECT_EQ(third->totals.chunks_skipped, 13u);  // deduplicated against the target
  EXPECT_EQ(restore_from(*offsite_, "b3", img.size()), img.contents());
}

// remove_vanished: what the source pruned goes from the target too (after the copies, its
// chunks freed by the target's gc, the rest still restoring byte for byte); a plain sync
// never removes; an empty source removes nothing (a wrong or unmounted folder, likelier
// than a retention that kept nothing).
TEST_F(SyncTest, RemoveVanishedMirrorsTheSourcesPrunesButNeverEmptiesTheTarget) {
  ImageFile img((base_ / "images" / "disk.raw").string(), 16 * kSyncCs);
  ASSERT_TRUE(img.ok());
  img.fill_random(0, 4 * kSyncCs, 1);
  backup("b1", img);
  img.fill_random(8 * kSyncCs, 2 * kSyncCs, 2);
  backup("b2", img, "b1");
  const std::string v2 = img.contents();
  ASSERT_TRUE(sync_repository(*primary_, *offsite_));
  ASSERT_EQ(offsite_->list()->size(), 2u);

  // b1 pruned in the source (its 4 chunks stay: b2 names them too); b3 is new.
  {
    auto lock = primary_->lock_exclusive();
    ASSERT_TRUE(lock);
    ASSERT_TRUE(primary_->remove("b1"));
  }
  img.fill_random(12 * kSyncCs, kSyncCs, 3);
  backup("b3", img, "b2");
  auto plain = sync_repository(*primary_, *offsite_);
  ASSERT_TRUE(plain);
  EXPECT_TRUE(plain->removed.empty());
  EXPECT_EQ(offsite_->list()->size(), 3u) << "a plain sync never removes";

  std::vector<std::string> phases;
  SyncOptions o;
  o.remove_vanished = true;
  o.progress = [&](const SyncProgress& p) {
    if (p.phase == "removing") phases.push_back(p.backup);
  };
  auto mirror = sync_repository(*primary_, *offsite_, o);
  ASSERT_TRUE(mirror) << mirror.error().to_string();
  EXPECT_EQ(mirror->removed, std::vector<std::string>{"b1"});
  EXPECT_EQ(phases, std::vector<std::string>{"b1"});
  EXPECT_EQ(mirror->gc.chunks_removed, 0u) << "b1's chunks are all b2's too";
  EXPECT_TRUE(mirror->removal_skipped.empty());
  auto left = offsite_->list();
  ASSERT_TRUE(left);
  ASSERT_EQ(left->size(), 2u);
  EXPECT_EQ((*left)[0].id, "b2");
  EXPECT_EQ((*left)[1].id, "b3");
  EXPECT_EQ(restore_from(*offsite_, "b2", img.size()), v2);
  EXPECT_TRUE(offsite_->verify("b3")->problems.empty());

  // b2 and b3 gone from the source, b4 a full backup of other data: the target keeps only
  // b4, and the chunks only b2 and b3 named are freed.
  {
    auto lock = primary_->lock_exclusive();
    ASSERT_TRUE(lock);
    ASSERT_TRUE(primary_->remove("b2"));
    ASSERT_TRUE(primary_->remove("b3"));
  }
  ImageFile other((base_ / "images" / "other.raw").string(), 2 * kSyncCs);
  ASSERT_TRUE(other.ok());
  other.fill_random(0, 2 * kSyncCs, 9);
  backup("b4", other);
  auto second = sync_repository(*primary_, *offsite_, o);
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_EQ(second->removed, (std::vector<std::string>{"b2", "b3"}));
  EXPECT_EQ(second->gc.chunks_removed, 7u);  // b1's 4, b2's 2, b3's 1
  ASSERT_EQ(offsite_->list()->size(), 1u);
  EXPECT_EQ(offsite_->list()->front().id, "b4");

  // An empty source: nothing is removed, and the report says why.
  {
    auto lock = primary_->lock_exclusive();
    ASSERT_TRUE(lock);
    ASSERT_TRUE(primary_->remove("b4"));
  }
  auto empty = sync_repository(*primary_, *offsite_, o);
  ASSERT_TRUE(empty) << empty.error().to_string();
  EXPECT_TRUE(empty->removed.empty());
  EXPECT_NE(empty->removal_skipped.find("the source has no backups"), std::string::npos);
  EXPECT_EQ(offsite_->list()->size(), 1u);
}

TEST_F(SyncTest, RefusesItselfAndABusyTarget) {
  auto self = sync_repository(*primary_, *primary_);
  ASSERT_FALSE(self);
  EXPECT_EQ(self.error().code, ErrorCode::invalid_argument);
  auto held = offsite_->lock_shared();  // a backup or a reader in the target
  ASSERT_TRUE(held);
  auto busy = sync_repository(*primary_, *offsite_);
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, ErrorCode::conflict);
}

TEST_F(SyncTest, ACorruptSourceChunkIsNotCarriedOver) {
  ImageFile img((base_ / "images" / "disk.raw").string(), 4 * kSyncCs);
  img.fill_random(0, 4 * kSyncCs, 1);
  backup("b1", img);
  auto idx = primary_->read_index("b1", "root");
  ASSERT_TRUE(idx);
  {
    std::fstream f(primary_->chunk_path(idx->chunks[1]), std::ios::in | std::ios::out);
    f.seekp(10);
    f.put('\x7f');
  }
  auto r = sync_repository(*primary_, *offsite_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("corrupt"), std::string::npos) << r.error().message;
  EXPECT_TRUE(offsite_->list()->empty());
}

// A sync stopped (asked to) or killed with SIGKILL between the chunks and the manifest:
// the target holds no half backup, what it holds verifies, gc removes the leftovers and
// the next sync completes the copy.
TEST_F(SyncTest, AStoppedOrKilledSyncLeavesTheTargetValid) {
  ImageFile img((base_ / "images" / "disk.raw").string(), 32 * kSyncCs);
  img.fill_random(0, 4 * kSyncCs, 1);
  backup("b1", img);
  img.fill_random(8 * kSyncCs, 16 * kSyncCs, 2);
  backup("b2", img, "b1");

  // Stopped in the middle of b2's chunks (b1 done).
  int calls = 0;
  SyncOptions stop;
  stop.stop = [&] { return ++calls > 4 + 6; };
  auto stopped = sync_repository(*primary_, *offsite_, stop);
  ASSERT_FALSE(stopped);
  ASSERT_EQ(offsite_->list()->size(), 1u);
  EXPECT_TRUE(offsite_->verify("b1")->problems.empty());

  // Killed at b2's "committing" point: every chunk written (as temp files), no manifest.
  fflush(nullptr);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    SyncOptions o;
    o.progress = [](const SyncProgress& p) {
      if (p.backup == "b2" && p.phase == "committing") ::raise(SIGKILL);
    };
    auto r = sync_repository(*primary_, *offsite_, o);
    ::_exit(r ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the sync finished before it was killed";
  auto l = offsite_->list();
  ASSERT_TRUE(l);
  ASSERT_EQ(l->size(), 1u);  // b2 does not exist in the target
  EXPECT_TRUE(offsite_->verify("b1")->problems.empty());
  EXPECT_GE(files_in(base_ / "offsite" / "chunks", true), 16u);  // b2's, not yet named
  for (auto& e : fs::recursive_directory_iterator(base_ / "offsite" / "chunks")) {
    auto name = e.path().filename().string();
    if (!e.is_regular_file() || name.rfind(".tmp-", 0) == 0) continue;
    EXPECT_TRUE(offsite_->read_chunk(name)) << name;  // a named chunk is whole
  }
  {
    auto lock = offsite_->lock_exclusive();  // the killed sync's lock died with it
    ASSERT_TRUE(lock) << lock.error().to_string();
    auto gc = offsite_->gc();
    ASSERT_TRUE(gc) << gc.error().to_string();
    EXPECT_EQ(gc->chunks_removed, 0u);
  }
  EXPECT_EQ(files_in(base_ / "offsite" / "chunks", true), 0u);

  auto done = sync_repository(*primary_, *offsite_);
  ASSERT_TRUE(done) << done.error().to_string();
  EXPECT_EQ(done->copied, (std::vector<std::string>{"b2"}));
  EXPECT_EQ(restore_from(*offsite_, "b2", img.size()), img.contents());
}

}  // namespace
}  // namespace strata::backup
