// ISO 9660 / UDF recognition: descriptor areas built by hand, a real ISO written by
// genisoimage or xorriso when the machine has one, and images that are not ISOs.
#include "strata/common/iso_image.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "strata/common/process.h"

namespace strata {
namespace {

std::string descriptor(const char id[6]) {
  std::string d(kIsoDescriptorSize, '\0');
  d[0] = 1;
  d.replace(1, 5, id);
  return d;
}

TEST(IsoImage, RecognisesIso9660AndUdfDescriptors) {
  EXPECT_TRUE(is_iso_volume_area(descriptor("CD001")));
  EXPECT_TRUE(is_iso_volume_area(descriptor("BEA01") + descriptor("NSR02") + descriptor("TEA01")));
  EXPECT_TRUE(is_iso_volume_area(descriptor("BEA01") + descriptor("NSR03")));
  EXPECT_FALSE(is_iso_volume_area(""));
  EXPECT_FALSE(is_iso_volume_area(std::string(5, 'x')));
  EXPECT_FALSE(is_iso_volume_area(std::string(kIsoDescriptorSize * 4, '\0')));
  EXPECT_FALSE(is_iso_volume_area(descriptor("NSR02")));  // NSR outside BEA01..TEA01
  EXPECT_FALSE(is_iso_volume_area(descriptor("BEA01") + descriptor("TEA01") + descriptor("NSR02")));
  EXPECT_FALSE(is_iso_volume_area(descriptor("CD00l")));
  std::string cut = descriptor("CD001").substr(0, 4);  // truncated before the identifier ends
  EXPECT_FALSE(is_iso_volume_area(cut));
}

class IsoFile : public ::testing::Test {
 protected:
  std::string dir_ =
      std::filesystem::temp_directory_path() / ("iso-test-" + std::to_string(::getpid()));
  void SetUp() override { std::filesystem::create_directories(dir_); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
};

TEST_F(IsoFile, ChecksTheFileAtByte32768) {
  EXPECT_TRUE(check_iso_image(
      write("ok", std::string(kIsoDescriptorsOffset, '\0') + descriptor("CD001")), "cdrom"));
  auto e = check_iso_image(write("short", std::string(1000, 'x')), "cdrom");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(e.error().field, "cdrom");
  // A qcow2 header is no ISO.
  e = check_iso_image(write("qcow2", std::string("QFI\xfb", 4) + std::string(40000, '\0')), "x");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().field, "x");
  EXPECT_EQ(check_iso_image(dir_ + "/absent", "cdrom").error().code, ErrorCode::internal);
}

TEST_F(IsoFile, RealIsoFromDebianTools) {
  std::string tool;
  for (const char* t : {"/usr/bin/genisoimage", "/usr/bin/xorriso"})
    if (::access(t, X_OK) == 0) tool = t;
  if (tool.empty()) GTEST_SKIP() << "SKIPPED: neither genisoimage nor xorriso is installed";
  std::filesystem::create_directories(dir_ + "/root");
  write("root/hello.txt", "hello\n");
  std::string iso = dir_ + "/out.iso";
  std::vector<std::string> argv{tool};
  if (tool == "/usr/bin/xorriso") argv.insert(argv.end(), {"-as", "mkisofs"});
  argv.insert(argv.end(), {"-quiet", "-o", iso, dir_ + "/root"});
  auto r = run_checked(argv);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(check_iso_image(iso, "cdrom"));
}

}  // namespace
}  // namespace strata
