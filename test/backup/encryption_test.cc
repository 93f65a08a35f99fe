// An encrypted backup repository (strata/backup/crypto.h, repository.h; docs/internals/
// backup.md "Encryption"): the key file, round trips, deduplication under HMAC ids, the
// config refusing a wrong key or a plain writer, verify finding a flipped byte in a chunk
// and in a manifest, and sync copying blobs only between repositories of one key.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "strata/backup/crypto.h"
#include "strata/backup/disk_backup.h"
#include "strata/backup/repository.h"
#include "strata/backup/sync.h"
#include "strata/common/sha256.h"

namespace strata::backup {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kEncCs = 64 << 10;

class EncMemDisk final : public DiskSource, public DiskSink {
 public:
  explicit EncMemDisk(uint64_t size) : bytes(size, 0) {}
  uint64_t size() const override { return bytes.size(); }
  Result<std::vector<Extent>> data_extents() override {
    return std::vector<Extent>{{0, bytes.size()}};
  }
  Result<std::vector<Extent>> dirty_extents() override { return std::vector<Extent>{}; }
  Status read(uint64_t off, size_t len, void* buf) override {
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
  }
  std::string bytes;
};

void flip_byte(const std::string& path, size_t at) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(at));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x40);
  f.seekp(static_cast<std::streamoff>(at));
  f.write(&c, 1);
}

class EncryptedRepoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("strata-enc-" + std::to_string(::getpid()));
    fs::remove_all(base_);
    fs::create_directories(base_ / "repo");
    auto k = RepoKey::generate();
    ASSERT_TRUE(k) << k.error().to_string();
    key_.emplace(*k);
    auto r = Repository::open((base_ / "repo").string(), &*key_);
    ASSERT_TRUE(r) << r.error().to_string();
    repo_.emplace(std::move(*r));
  }
  void TearDown() override { fs::remove_all(base_); }

  static Result<Manifest> enc_backup(const Repository& repo, const std::string& id, EncMemDisk& d,
                                     const std::string& vm = "vm1") {
    auto lock = repo.lock_shared();
    if (!lock) return tl::unexpected(lock.error());
    if (auto s = repo.begin_backup(id); !s) return tl::unexpected(s.error());
    Repository::PendingChunks pending;
    auto r = backup_disk(repo, d, "root", nullptr, kEncCs, {}, &pending);
    if (!r) return tl::unexpected(r.error());
    if (auto s = repo.write_index(id, r->index); !s) return tl::unexpected(s.error());
    Manifest m;
    m.id = id;
    m.vm = vm;
    m.created_unix_ms = 1000 + static_cast<int64_t>(id.size());
    m.kind = "full";
    m.disks.push_back({"root", d.size(), "", r->stats.bytes_read, r->stats.bytes_new,
                       r->stats.chunks_read, r->stats.zero_chunks});
    m.vm_spec = nlohmann::json{{"cloud_init", {{"user_data", "password: hunter2"}}}};
    if (auto s = repo.commit(m, &pending); !s) return tl::unexpected(s.error());
    return m;
  }

  std::string dir(const std::string& name) {
    fs::create_directories(base_ / name);
    return (base_ / name).string();
  }

  fs::path base_;
  std::optional<RepoKey> key_;
  std::optional<Repository> repo_;
};

TEST(RepoKeyTest, SealOpenRoundTripAndTamperDetected) {
  auto k = RepoKey::generate();
  ASSERT_TRUE(k);
  auto blob = k->seal(BlobKind::chunk, "hello", "aad");
  ASSERT_TRUE(blob);
  EXPECT_EQ(blob->size(), 5 + kBlobOverhead);
  EXPECT_EQ((*blob)[0], static_cast<char>(kBlobVersion));
  auto plain = k->open(BlobKind::chunk, *blob, "aad");
  ASSERT_TRUE(plain);
  EXPECT_EQ(*plain, "hello");
  // Another aad, another kind (sub-key), a flipped byte, a truncation: all refused.
  EXPECT_FALSE(k->open(BlobKind::chunk, *blob, "other"));
  EXPECT_FALSE(k->open(BlobKind::metadata, *blob, "aad"));
  std::string bad = *blob;
  bad[bad.size() / 2] ^= 1;
  EXPECT_FALSE(k->open(BlobKind::chunk, bad, "aad"));
  EXPECT_FALSE(k->open(BlobKind::chunk, blob->substr(0, 10), "aad"));
  // Two seals of one plaintext differ (random nonce).
  auto again = k->seal(BlobKind::chunk, "hello", "aad");
  ASSERT_TRUE(again);
  EXPECT_NE(*again, *blob);
  // The fingerprint names the key without being a part of it.
  EXPECT_EQ(k->fingerprint().size(), 32u);
  EXPECT_EQ(k->to_hex().find(k->fingerprint()), std::string::npos);
  EXPECT_FALSE(RepoKey::from_bytes("short"));
  EXPECT_FALSE(RepoKey::from_hex(std::string(64, 'z')));
}

TEST_F(EncryptedRepoTest, KeyFileIsCreatedOnce0600AndLoads) {
  std::string path = (base_ / "backup.key").string();
  auto k = create_key_file(path);
  ASSERT_TRUE(k) << k.error().to_string();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = create_key_file(path);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::already_exists);
  auto loaded = load_key_file(path);
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  EXPECT_EQ(loaded->fingerprint(), k->fingerprint());
  ::chmod(path.c_str(), 0644);
  auto loose = load_key_file(path);
  ASSERT_FALSE(loose);
  EXPECT_EQ(loose.error().code, ErrorCode::permission_denied);
}

TEST_F(EncryptedRepoTest, RoundTripDedupAndIdsAreNotSha256) {
  EncMemDisk d(4 * kEncCs);
  d.fill_random(0, kEncCs, 1);
  d.fill_random(kEncCs, kEncCs, 1);  // the same data twice: one chunk
  d.fill_random(2 * kEncCs, kEncCs, 2);
  // chunk 3 stays zero: never stored
  auto m = enc_backup(*repo_, "b1", d);
  ASSERT_TRUE(m) << m.error().to_string();
  auto idx = repo_->read_index("b1", "root");
  ASSERT_TRUE(idx) << idx.error().to_string();
  ASSERT_EQ(idx->chunks.size(), 4u);
  EXPECT_EQ(idx->chunks[0], idx->chunks[1]);
  EXPECT_TRUE(idx->chunks[3].empty());
  EXPECT_EQ(m->disks[0].bytes_new, 2 * kEncCs);
  // The id is the keyed HMAC, not the sha256 of the content.
  Sha256 h;
  h.update(d.bytes.data(), kEncCs);
  EXPECT_NE(idx->chunks[0], h.hex_final());
  EXPECT_EQ(idx->chunks[0], key_->chunk_id(d.bytes.data(), kEncCs));
  // Stored encrypted: the file is the blob, not the data.
  std::ifstream f(repo_->chunk_path(idx->chunks[0]), std::ios::binary);
  std::string stored((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(stored.size(), kEncCs + kBlobOverhead);
  EXPECT_EQ(stored.find(d.bytes.substr(0, 256)), std::string::npos);
  // The manifest (with its cloud-init secret) is not readable on disk.
  std::ifstream mf(base_ / "repo/backups/b1/manifest.json", std::ios::binary);
  std::string mtext((std::istreambuf_iterator<char>(mf)), {});
  EXPECT_EQ(mtext.find("hunter2"), std::string::npos);
  EXPECT_EQ(mtext.find("vm1"), std::string::npos);

  // A second backup of the same data stores nothing new.
  auto m2 = enc_backup(*repo_, "b2", d);
  ASSERT_TRUE(m2);
  EXPECT_EQ(m2->disks[0].bytes_new, 0u);

  EncMemDisk out(d.size());
  ASSERT_TRUE(restore_disk(*repo_, *idx, out));
  EXPECT_EQ(out.bytes, d.bytes);
  auto back = repo_->read_manifest("b1");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->vm_spec, m->vm_spec);
  auto v = repo_->verify("b1");
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->problems.empty());
  EXPECT_EQ(v->chunks_checked, 3u);

  // gc keeps what the indexes name, removes what none does.
  ASSERT_TRUE(repo_->remove("b2"));
  auto gc = repo_->gc();
  ASSERT_TRUE(gc) << gc.error().to_string();
  EXPECT_EQ(gc->chunks_removed, 0u);
  ASSERT_TRUE(repo_->remove("b1"));
  gc = repo_->gc();
  ASSERT_TRUE(gc);
  EXPECT_EQ(gc->chunks_removed, 2u);
}

TEST_F(EncryptedRepoTest, WrongKeyOrNoKeyRefusedAndPlainRepoRefusesAKey) {
  auto other = RepoKey::generate();
  ASSERT_TRUE(other);
  auto wrong = Repository::open((base_ / "repo").string(), &*other);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, ErrorCode::failed_precondition);
  EXPECT_NE(wrong.error().message.find("wrong key"), std::string::npos) << wrong.error().message;
  auto none = Repository::open((base_ / "repo").string());
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("is encrypted"), std::string::npos) << none.error().message;
  EXPECT_NE(none.error().message.find(key_->fingerprint()), std::string::npos);

  auto plain = Repository::open(dir("plain"));
  ASSERT_TRUE(plain);
  auto keyed = Repository::open(dir("plain"), &*key_);
  ASSERT_FALSE(keyed);
  EXPECT_NE(keyed.error().message.find("not encrypted"), std::string::npos)
      << keyed.error().message;

  // A folder written before config.json existed (backups, no config) is plain.
  std::string legacy = dir("legacy");
  {
    auto l = Repository::open(legacy);
    ASSERT_TRUE(l);
    EncMemDisk d(kEncCs);
    d.fill_random(0, kEncCs, 3);
    ASSERT_TRUE(enc_backup(*l, "old", d));
  }
  fs::remove(legacy + "/config.json");
  auto legacy_keyed = Repository::open(legacy, &*key_);
  ASSERT_FALSE(legacy_keyed);
  EXPECT_NE(legacy_keyed.error().message.find("plain repository"), std::string::npos);
  auto legacy_plain = Repository::open(legacy);
  ASSERT_TRUE(legacy_plain);
  EXPECT_FALSE(legacy_plain->encrypted());
  EXPECT_TRUE(legacy_plain->read_manifest("old"));
}

TEST_F(EncryptedRepoTest, VerifyFindsATamperedChunkAndATamperedManifest) {
  EncMemDisk d(2 * kEncCs);
  d.fill_random(0, 2 * kEncCs, 7);
  ASSERT_TRUE(enc_backup(*repo_, "b1", d));
  ASSERT_TRUE(enc_backup(*repo_, "b2", d));
  auto idx = repo_->read_index("b1", "root");
  ASSERT_TRUE(idx);
  flip_byte(repo_->chunk_path(idx->chunks[1]), 100);
  auto v = repo_->verify("b1");
  ASSERT_TRUE(v) << v.error().to_string();
  ASSERT_EQ(v->problems.size(), 1u);
  EXPECT_NE(v->problems[0].find("fails authentication"), std::string::npos) << v->problems[0];
  EncMemDisk out(d.size());
  EXPECT_FALSE(restore_disk(*repo_, *idx, out));

  flip_byte((base_ / "repo/backups/b2/manifest.json").string(), 40);
  auto vm = repo_->verify("b2");
  ASSERT_TRUE(vm) << vm.error().to_string();
  ASSERT_EQ(vm->problems.size(), 1u);
  EXPECT_NE(vm->problems[0].find("manifest"), std::string::npos) << vm->problems[0];
  // gc never deletes on a doubt.
  EXPECT_FALSE(repo_->gc());

  // An index swapped between backups fails too (its additional data names the backup).
  fs::copy_file(base_ / "repo/backups/b1/root.idx", base_ / "repo/backups/b2/root.idx",
                fs::copy_options::overwrite_existing);
  EXPECT_FALSE(repo_->read_index("b2", "root"));
}

TEST_F(EncryptedRepoTest, SyncCopiesBlobsToTheSameKeyAndRefusesAnotherOrNone) {
  EncMemDisk d(3 * kEncCs);
  d.fill_random(0, 3 * kEncCs, 9);
  ASSERT_TRUE(enc_backup(*repo_, "b1", d));

  auto same = Repository::open(dir("same"), &*key_);
  ASSERT_TRUE(same);
  SyncOptions o;
  o.verify = true;
  auto rep = sync_repository(*repo_, *same, o);
  ASSERT_TRUE(rep) << rep.error().to_string();
  EXPECT_EQ(rep->copied, std::vector<std::string>{"b1"});
  EXPECT_TRUE(rep->problems.empty());
  auto idx = same->read_index("b1", "root");
  ASSERT_TRUE(idx);
  // Blobs copied as they are: byte for byte the source's.
  for (auto& c : idx->chunks) {
    std::ifstream a(repo_->chunk_path(c), std::ios::binary),
        b(same->chunk_path(c), std::ios::binary);
    std::string sa((std::istreambuf_iterator<char>(a)), {}),
        sb((std::istreambuf_iterator<char>(b)), {});
    EXPECT_EQ(sa, sb);
  }
  auto v = same->verify("b1");
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->problems.empty());

  auto k2 = RepoKey::generate();
  ASSERT_TRUE(k2);
  auto other = Repository::open(dir("other"), &*k2);
  ASSERT_TRUE(other);
  auto refused = sync_repository(*repo_, *other);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::failed_precondition);
  EXPECT_NE(refused.error().message.find("same key"), std::string::npos);
  auto plain = Repository::open(dir("plaintarget"));
  ASSERT_TRUE(plain);
  auto refused_plain = sync_repository(*repo_, *plain);
  ASSERT_FALSE(refused_plain);
  EXPECT_NE(refused_plain.error().message.find("plain"), std::string::npos);
  auto refused_back = sync_repository(*plain, *repo_);
  ASSERT_FALSE(refused_back);
  auto l = plain->list();
  ASSERT_TRUE(l);
  EXPECT_TRUE(l->empty());
}

}  // namespace
}  // namespace strata::backup
