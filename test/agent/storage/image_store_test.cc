// ImageStore against the real qemu-img on temp folders: overlays, blank disks, resize,
// import, deletion, and confinement attacks (traversal, absolute paths, symlinks).
#include "strata/agent/image_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include "strata/common/process.h"
#include "strata/model/vm_spec.h"

namespace strata::agent {
namespace {

namespace fs = std::filesystem;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-store-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = make_image_store(dir_ + "/store");
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A raw file of `size` bytes filled with `byte`, outside the store.
  std::string make_raw(const std::string& name, size_t size, char byte) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << std::string(size, byte);
    return p;
  }
  std::string make_bytes(const std::string& name, const std::string& bytes) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }

  std::string dir_;
  ImageStorePtr store_;
};

TEST_F(ImageStoreTest, ImportListAndInfo) {
  auto info = store_->import_image("base.raw", make_raw("src.raw", 1 << 20, 'a'));
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->format, "raw");
  EXPECT_EQ(info->virtual_size, 1u << 20);
  EXPECT_EQ(info->path, store_->root() + "/images/base.raw");
  auto list = store_->list_images();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].name, "base.raw");
  auto again = store_->import_image("base.raw", make_raw("src2.raw", 512, 'b'));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::already_exists);
  EXPECT_EQ(read_all(info->path), std::string(1 << 20, 'a'));  // not clobbered
}

// Listing asks qemu-img once per image file, not once per listing: a counting wrapper of
// qemu-img shows the second and third lists cost no process, and a changed file is asked
// again.
TEST_F(ImageStoreTest, ListingRemembersQemuImgInfoWhileTheFileIsUnchanged) {
  const std::string count = dir_ + "/qemu-img-calls";
  const std::string wrapper = dir_ + "/qemu-img";
  std::ofstream(wrapper) << "#!/bin/sh\n"
                         << "[ \"$1\" = info ] && echo x >> '" << count << "'\n"
                         << "exec qemu-img \"$@\"\n";
  fs::permissions(wrapper, fs::perms::owner_all);
  auto s = make_image_store(dir_ + "/counted", wrapper);
  ASSERT_TRUE(s) << s.error().to_string();
  auto& store = **s;
  auto calls = [&] {
    std::ifstream in(count);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) ++n;
    return n;
  };
  ASSERT_TRUE(store.import_image("a.raw", make_raw("a-src.raw", 4096, 'a')));
  ASSERT_TRUE(store.import_image("b.raw", make_raw("b-src.raw", 8192, 'b')));
  const int after_import = calls();
  ASSERT_EQ(store.list_images().size(), 2u);
  EXPECT_EQ(calls(), after_import + 2);  // first listing: each image asked once
  for (int i = 0; i < 2; ++i) {
    auto list = store.list_images();
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0].virtual_size, 4096u);
    EXPECT_EQ(list[1].virtual_size, 8192u);
  }
  EXPECT_EQ(calls(), after_import + 2) << "an unchanged image was asked again";
  // A write into the file (new size, new mtime) is seen.
  std::ofstream(store.root() + "/images/a.raw", std::ios::app) << std::string(4096, 'c');
  auto list = store.list_images();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].virtual_size, 8192u);
  EXPECT_EQ(calls(), after_import + 3);
}

TEST_F(ImageStoreTest, ImportRefusesImagesWithBackingFiles) {
  std::string backing = make_raw("secret.raw", 4096, 's');
  std::string evil = dir_ + "/evil.qcow2";
  ASSERT_TRUE(
      run_checked({"qemu-img", "create", "-q", "-f", "qcow2", "-b", backing, "-F", "raw", evil}));
  auto r = store_->import_image("evil.qcow2", evil);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_TRUE(store_->list_images().empty());
  EXPECT_TRUE(fs::is_empty(store_->root() + "/tmp"));  // the temp copy is gone
}

TEST_F(ImageStoreTest, ImportRefusesExternalDataFilesWhateverTheKind) {
  // qemu-img makes the data file itself, inside the test folder.
  std::string data = dir_ + "/secret.raw", evil = dir_ + "/evil.qcow2";
  ASSERT_TRUE(run_checked(
      {"qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=" + data, evil, "1M"}));
  for (std::string kind : {"", "disk", "kernel", "initrd"}) {
    auto r = store_->import_image("evil", evil, kind);
    ASSERT_FALSE(r) << kind;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
    EXPECT_NE(r.error().message.find("data file"), std::string::npos) << r.error().message;
  }
  EXPECT_TRUE(store_->list_images().empty());
  EXPECT_TRUE(fs::is_empty(store_->root() + "/tmp"));
}

TEST_F(ImageStoreTest, KernelsAndInitrdsMustBePlainFilesAndKeepTheirKind) {
  std::string q = dir_ + "/disk.qcow2";
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "qcow2", q, "1M"}));
  auto as_kernel = store_->import_image("k", q, "kernel");
  ASSERT_FALSE(as_kernel);
  EXPECT_EQ(as_kernel.error().code, ErrorCode::invalid_argument);
  auto bad_kind = store_->import_image("k", q, "floppy");
  ASSERT_FALSE(bad_kind);
  EXPECT_EQ(bad_kind.error().field, "kind");
  // An iso must be a plain file holding an ISO 9660/UDF volume: neither a qcow2 nor any
  // raw bytes pass (docs/internals/firmware.md), and nothing is left behind.
  for (const std::string& src : {q, make_raw("raw", 65536, 'r')}) {
    auto not_iso = store_->import_image("fake-iso", src, "iso");
    ASSERT_FALSE(not_iso) << src;
    EXPECT_EQ(not_iso.error().code, ErrorCode::invalid_argument) << src;
  }
  EXPECT_FALSE(store_->image("fake-iso"));
  EXPECT_TRUE(fs::is_empty(store_->root() + "/tmp"));
  std::string iso_bytes(32768, '\0');
  iso_bytes += std::string(1, '\x01') + "CD001" + std::string(2042 + 4096, '\0');
  auto iso = store_->import_image("real-iso", make_bytes("real.iso", iso_bytes), "iso");
  ASSERT_TRUE(iso) << iso.error().to_string();
  EXPECT_EQ(store_->image("real-iso")->kind, "iso");
  // An iso is never a disk base.
  auto iso_base = store_->create_overlay("vm0", "root", "real-iso", 0);
  ASSERT_FALSE(iso_base);
  EXPECT_EQ(iso_base.error().code, ErrorCode::invalid_argument);

  auto k = store_->import_image("vmlinuz", make_raw("vmlinuz", 4096, 'k'), "kernel");
  ASSERT_TRUE(k) << k.error().to_string();
  EXPECT_EQ(k->kind, "kernel");
  EXPECT_EQ(store_->image("vmlinuz")->kind, "kernel");
  auto unknown = store_->import_image("local", make_raw("local", 4096, 'l'));
  ASSERT_TRUE(unknown);
  EXPECT_EQ(store_->image("local")->kind, "");

  // A kernel is never a disk base; an image of unknown kind (imported without one) may be.
  auto ov = store_->create_overlay("vm1", "root", "vmlinuz", 0);
  ASSERT_FALSE(ov);
  EXPECT_EQ(ov.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(ov.error().message.find("kernel"), std::string::npos) << ov.error().message;
  EXPECT_TRUE(store_->create_overlay("vm1", "root", "local", 0));
}

TEST_F(ImageStoreTest, OverlayRefusesABaseWithADataFileAlreadyInTheStore) {
  // As if stored before imports refused data files: dropped into images/ by hand.
  std::string data = dir_ + "/secret.raw";
  std::string planted = store_->root() + "/images/old";
  ASSERT_TRUE(run_checked(
      {"qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=" + data, planted, "1M"}));
  auto ov = store_->create_overlay("vm1", "root", "old", 0);
  ASSERT_FALSE(ov);
  EXPECT_EQ(ov.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(ov.error().message.find("data file"), std::string::npos) << ov.error().message;
}

// An image stored before kinds (and formats) were checked at import has no kind: it is
// probed as a plain disk when used as a base, so a VMDK whose descriptor names a host file
// as its extent is refused, while a plain raw or qcow2 image of unknown kind still serves.
TEST_F(ImageStoreTest, OverlayProbesABaseOfUnknownKindAsAPlainDisk) {
  std::string host_file = dir_ + "/host-secret.raw";
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "raw", host_file, "1M"}));
  std::string planted = store_->root() + "/images/old-vmdk";
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "vmdk", "-o",
                           "subformat=monolithicFlat", dir_ + "/x.vmdk", "1M"}));
  // The descriptor, pointed at the host file (what an uploader could have sent).
  {
    std::ifstream in(dir_ + "/x.vmdk");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto at = text.find("\"x-flat.vmdk\"");
    ASSERT_NE(at, std::string::npos) << text;
    text.replace(at, 13, "\"" + host_file + "\"");
    std::ofstream(planted) << text;
  }
  auto old = store_->image("old-vmdk");
  ASSERT_TRUE(old) << old.error().to_string();
  EXPECT_EQ(old->kind, "");
  EXPECT_EQ(old->format, "vmdk");
  auto ov = store_->create_overlay("vm1", "root", "old-vmdk", 0);
  ASSERT_FALSE(ov);
  EXPECT_EQ(ov.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(ov.error().message.find("raw or qcow2"), std::string::npos) << ov.error().message;

  std::string plain = store_->root() + "/images/old-qcow2";
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "qcow2", plain, "1M"}));
  EXPECT_EQ(store_->image("old-qcow2")->kind, "");
  EXPECT_TRUE(store_->create_overlay("vm1", "root", "old-qcow2", 0));
}

TEST_F(ImageStoreTest, ImportMissingSourceIsNotFound) {
  auto r = store_->import_image("x.raw", dir_ + "/does-not-exist");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::not_found);
}

TEST_F(ImageStoreTest, OverlayWritesDoNotTouchTheBase) {
  std::string qemu_io = find_executable("qemu-io");
  if (qemu_io.empty()) GTEST_SKIP() << "qemu-io not installed (qemu-utils)";
  std::string src = dir_ + "/base.qcow2";
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "qcow2", src, "4M"}));
  ASSERT_TRUE(run_checked({qemu_io, "-f", "qcow2", "-c", "write -P 0xab 0 1M", src}));
  auto base = store_->import_image("base.qcow2", src);
  ASSERT_TRUE(base) << base.error().to_string();
  std::string before = read_all(base->path);

  auto ov = store_->create_overlay("vm1", "root", "base.qcow2", 0);
  ASSERT_TRUE(ov) << ov.error().to_string();
  EXPECT_EQ(ov->format, "qcow2");
  EXPECT_EQ(ov->backing_file, base->path);
  EXPECT_EQ(ov->virtual_size, 4u << 20);
  EXPECT_EQ(ov->path, store_->root() + "/vms/vm1/root.qcow2");

  // The overlay sees the base's data, then diverges after a write.
  EXPECT_TRUE(run_checked({qemu_io, "-f", "qcow2", "-c", "read -P 0xab 0 1M", ov->path}));
  ASSERT_TRUE(run_checked({qemu_io, "-f", "qcow2", "-c", "write -P 0xcd 0 1M", ov->path}));
  EXPECT_TRUE(run_checked({qemu_io, "-f", "qcow2", "-c", "read -P 0xcd 0 1M", ov->path}));
  EXPECT_TRUE(read_all(base->path) == before) << "base image changed";
  EXPECT_TRUE(run_checked({qemu_io, "-f", "qcow2", "-c", "read -P 0xab 0 1M", base->path}));
}

// Clones of a VM's disk (a chain: base image -> the VM's overlay with its own writes): a
// linked clone is an overlay on the VM's file, a full clone a flat copy that reads the
// same and has no backing; a source outside the VMs' folders, or the VM's own, is refused.
TEST_F(ImageStoreTest, CloneDiskLinkedAndFull) {
  std::string qemu_io = find_executable("qemu-io");
  if (qemu_io.empty()) GTEST_SKIP() << "qemu-io not installed (qemu-utils)";
  std::string src = dir_ + "/base.qcow2";
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "qcow2", src, "8M"}));
  ASSERT_TRUE(run_checked({qemu_io, "-f", "qcow2", "-c", "write -P 0xab 0 2M", src}));
  ASSERT_TRUE(store_->import_image("base.qcow2", src));
  auto tpl = store_->create_overlay("tpl", "root", "base.qcow2", 0);
  ASSERT_TRUE(tpl) << tpl.error().to_string();
  ASSERT_TRUE(run_checked({qemu_io, "-f", "qcow2", "-c", "write -P 0xcd 4M 1M", tpl->path}));

  auto linked = store_->clone_disk("c-linked", "root", tpl->path, true);
  ASSERT_TRUE(linked) << linked.error().to_string();
  EXPECT_EQ(linked->backing_file, tpl->path);
  EXPECT_EQ(linked->path, store_->root() + "/vms/c-linked/root.qcow2");
  EXPECT_EQ(linked->virtual_size, 8u << 20);

  std::vector<std::pair<uint64_t, uint64_t>> seen;
  auto full = store_->clone_disk("c-full", "root", tpl->path, false,
                                 [&](uint64_t done, uint64_t total) { seen.push_back({done, total}); });
  ASSERT_TRUE(full) << full.error().to_string();
  EXPECT_TRUE(full->backing_file.empty());
  EXPECT_EQ(full->virtual_size, 8u << 20);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().first, seen.back().second);  // ends at 100 %
  for (auto* p : {&linked->path, &full->path}) {
    EXPECT_TRUE(run_checked({qemu_io, "-f", "qcow2", "-c", "read -P 0xab 0 2M", *p})) << *p;
    EXPECT_TRUE(run_checked({qemu_io, "-f", "qcow2", "-c", "read -P 0xcd 4M 1M", *p})) << *p;
  }
  // The clone's writes stay in the clone.
  ASSERT_TRUE(run_checked({qemu_io, "-f", "qcow2", "-c", "write -P 0x11 0 1M", linked->path}));
  EXPECT_TRUE(run_checked({qemu_io, "-f", "qcow2", "-c", "read -P 0xab 0 1M", tpl->path}));

  auto outside = store_->clone_disk("c2", "root", src, false);
  ASSERT_FALSE(outside);
  EXPECT_EQ(outside.error().code, ErrorCode::invalid_argument);
  auto own = store_->clone_disk("tpl", "data", tpl->path, true);
  ASSERT_FALSE(own);
  EXPECT_EQ(own.error().code, ErrorCode::invalid_argument);
  auto dotdot = store_->clone_disk("c3", "root", store_->root() + "/vms/../images/base.qcow2", true);
  ASSERT_FALSE(dotdot);
  auto taken = store_->clone_disk("c-full", "root", tpl->path, true);
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, ErrorCode::already_exists);
}

TEST_F(ImageStoreTest, OverlayGrowsButNeverShrinksBelowBase) {
  ASSERT_TRUE(store_->import_image("base.raw", make_raw("b.raw", 1 << 20, 0)));
  auto big = store_->create_overlay("vm1", "root", "base.raw", 8 << 20);
  ASSERT_TRUE(big) << big.error().to_string();
  EXPECT_EQ(big->virtual_size, 8u << 20);
  auto small = store_->create_overlay("vm1", "data", "base.raw", 4096);
  ASSERT_TRUE(small) << small.error().to_string();
  EXPECT_EQ(small->virtual_size, 1u << 20);
  auto dup = store_->create_overlay("vm1", "root", "base.raw", 0);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, ErrorCode::already_exists);
}

TEST_F(ImageStoreTest, OverlayOnUnknownBaseIsNotFound) {
  auto r = store_->create_overlay("vm1", "root", "nope.qcow2", 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::not_found);
  EXPECT_TRUE(fs::is_empty(store_->root() + "/tmp"));
}

TEST_F(ImageStoreTest, BlankDiskSizes) {
  auto ok = store_->create_blank("vm1", "data0", 64 << 20);
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(ok->format, "qcow2");
  EXPECT_EQ(ok->virtual_size, 64u << 20);
  EXPECT_TRUE(ok->backing_file.empty());
  for (uint64_t bad : {uint64_t{0}, model::kMaxDiskBytes + 1, ~uint64_t{0}}) {
    auto r = store_->create_blank("vm1", "data1", bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_argument) << bad;
    EXPECT_EQ(r.error().field, "size_bytes");
  }
  EXPECT_FALSE(fs::exists(store_->root() + "/vms/vm1/data1.qcow2"));
}

TEST_F(ImageStoreTest, Resize) {
  ASSERT_TRUE(store_->create_blank("vm1", "data0", 1 << 20));
  auto s = store_->resize_disk("vm1", "data0", 16 << 20);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(store_->disk_info("vm1", "data0")->virtual_size, 16u << 20);
  auto shrink = store_->resize_disk("vm1", "data0", 1 << 20);
  ASSERT_FALSE(shrink);
  EXPECT_EQ(shrink.error().code, ErrorCode::invalid_argument);
  auto absurd = store_->resize_disk("vm1", "data0", model::kMaxDiskBytes + 1);
  ASSERT_FALSE(absurd);
  EXPECT_EQ(absurd.error().code, ErrorCode::invalid_argument);
  auto missing = store_->resize_disk("vm1", "nope", 16 << 20);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::not_found);
  EXPECT_EQ(store_->disk_info("vm1", "data0")->virtual_size, 16u << 20);
}

TEST_F(ImageStoreTest, DeleteVmDisksIsIdempotent) {
  ASSERT_TRUE(store_->create_blank("vm1", "a", 1 << 20));
  ASSERT_TRUE(store_->create_blank("vm1", "b", 1 << 20));
  ASSERT_TRUE(store_->create_blank("vm2", "a", 1 << 20));
  ASSERT_TRUE(store_->delete_vm_disks("vm1"));
  EXPECT_FALSE(fs::exists(store_->root() + "/vms/vm1"));
  EXPECT_TRUE(store_->disk_info("vm2", "a"));
  EXPECT_TRUE(store_->delete_vm_disks("vm1"));
  EXPECT_EQ(store_->disk_info("vm1", "a").error().code, ErrorCode::not_found);
}

TEST_F(ImageStoreTest, DeleteImageInUseIsRefused) {
  ASSERT_TRUE(store_->import_image("base.raw", make_raw("b.raw", 1 << 20, 0)));
  ASSERT_TRUE(store_->create_overlay("vm1", "root", "base.raw", 0));
  auto r = store_->delete_image("base.raw");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::failed_precondition);
  ASSERT_TRUE(store_->delete_vm_disks("vm1"));
  EXPECT_TRUE(store_->delete_image("base.raw"));
  EXPECT_EQ(store_->delete_image("base.raw").error().code, ErrorCode::not_found);
  EXPECT_EQ(store_->image("base.raw").error().code, ErrorCode::not_found);
}

TEST_F(ImageStoreTest, TraversalAndAbsoluteNamesAreRejected) {
  using namespace std::string_literals;
  for (const std::string& bad : {"../etc/passwd"s, "/etc/passwd"s, ".."s, "."s, "a/b"s, ""s,
                                 "../../../../etc/shadow"s, "x\0y"s, "a b"s, "-rf"s}) {
    auto img = store_->image(bad);
    ASSERT_FALSE(img) << bad;
    EXPECT_EQ(img.error().code, ErrorCode::invalid_argument) << bad;
    EXPECT_EQ(store_->import_image(bad, "/etc/hostname").error().code, ErrorCode::invalid_argument)
        << bad;
    EXPECT_EQ(store_->delete_image(bad).error().code, ErrorCode::invalid_argument) << bad;
    EXPECT_EQ(store_->create_overlay("vm1", "root", bad, 0).error().code,
              ErrorCode::invalid_argument)
        << bad;
    EXPECT_EQ(store_->create_blank(bad, "root", 1 << 20).error().code, ErrorCode::invalid_argument)
        << bad;
    EXPECT_EQ(store_->create_blank("vm1", bad, 1 << 20).error().code, ErrorCode::invalid_argument)
        << bad;
    EXPECT_EQ(store_->disk_info(bad, "root").error().code, ErrorCode::invalid_argument) << bad;
    EXPECT_EQ(store_->delete_vm_disks(bad).error().code, ErrorCode::invalid_argument) << bad;
  }
  EXPECT_TRUE(fs::exists("/etc/passwd"));
}

TEST_F(ImageStoreTest, SymlinkedImageIsRefusedAndNotListed) {
  std::string secret = make_raw("secret.raw", 4096, 's');
  fs::create_symlink(secret, store_->root() + "/images/evil.raw");
  auto r = store_->image("evil.raw");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::permission_denied);
  EXPECT_TRUE(store_->list_images().empty());
  auto ov = store_->create_overlay("vm1", "root", "evil.raw", 0);
  ASSERT_FALSE(ov);
  EXPECT_EQ(ov.error().code, ErrorCode::permission_denied);
  // Deleting removes the link, never the target.
  ASSERT_TRUE(store_->delete_image("evil.raw"));
  EXPECT_EQ(read_all(secret), std::string(4096, 's'));
}

TEST_F(ImageStoreTest, SymlinkedVmFolderIsRefused) {
  std::string outside = dir_ + "/outside";
  fs::create_directory(outside);
  std::string victim = make_raw("outside/root.qcow2", 4096, 'v');
  fs::create_symlink(outside, store_->root() + "/vms/vm1");
  EXPECT_EQ(store_->create_blank("vm1", "data0", 1 << 20).error().code,
            ErrorCode::permission_denied);
  EXPECT_EQ(store_->disk_info("vm1", "root").error().code, ErrorCode::permission_denied);
  EXPECT_EQ(store_->resize_disk("vm1", "root", 8 << 20).error().code, ErrorCode::permission_denied);
  EXPECT_EQ(store_->delete_vm_disks("vm1").error().code, ErrorCode::permission_denied);
  EXPECT_EQ(read_all(victim), std::string(4096, 'v'));
  EXPECT_FALSE(fs::exists(outside + "/data0.qcow2"));
}

TEST_F(ImageStoreTest, SymlinkedDiskFileIsRefused) {
  ASSERT_TRUE(store_->create_blank("vm1", "a", 1 << 20));
  std::string victim = make_raw("victim.raw", 4096, 'v');
  fs::create_symlink(victim, store_->root() + "/vms/vm1/b.qcow2");
  EXPECT_EQ(store_->disk_info("vm1", "b").error().code, ErrorCode::permission_denied);
  EXPECT_EQ(store_->resize_disk("vm1", "b", 8 << 20).error().code, ErrorCode::permission_denied);
  EXPECT_EQ(store_->create_blank("vm1", "b", 1 << 20).error().code, ErrorCode::already_exists);
  ASSERT_TRUE(store_->delete_vm_disks("vm1"));
  EXPECT_EQ(read_all(victim), std::string(4096, 'v'));
}

TEST_F(ImageStoreTest, SymlinkedStoreSubfolderIsRefusedAtOpen) {
  std::string root2 = dir_ + "/store2";
  fs::create_directories(root2);
  fs::create_directory(dir_ + "/elsewhere");
  fs::create_directory_symlink(dir_ + "/elsewhere", root2 + "/images");
  auto s = make_image_store(root2);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::permission_denied);
}

TEST_F(ImageStoreTest, StaleTempFilesAreRemovedAtOpenAndNeverListed) {
  std::ofstream(store_->root() + "/tmp/base.raw.123.0") << "half written";
  EXPECT_TRUE(store_->list_images().empty());
  auto reopened = make_image_store(store_->root());
  ASSERT_TRUE(reopened);
  EXPECT_TRUE(fs::is_empty(store_->root() + "/tmp"));
}

TEST_F(ImageStoreTest, MissingQemuImgIsUnavailable) {
  auto s = make_image_store(dir_ + "/s3", "qemu-img-does-not-exist");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::unavailable);
}

}  // namespace
}  // namespace strata::agent
