// parse_qemu_img_info on recorded qemu-img 7.2 output and on malformed output.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "strata/agent/image_store.h"

namespace strata::agent {
namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(STRATA_STORAGE_FIXTURES) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(QemuImgInfo, ParsesRecordedOverlay) {
  std::string text = fixture("info_qcow2_overlay.json");
  ASSERT_FALSE(text.empty());
  auto info = parse_qemu_img_info(text);
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->format, "qcow2");
  EXPECT_EQ(info->virtual_size, 4194304u);
  EXPECT_EQ(info->actual_size, 200704u);
  EXPECT_EQ(info->backing_file, "/var/lib/strata/images/base.raw");
}

TEST(QemuImgInfo, ParsesRecordedRaw) {
  auto info = parse_qemu_img_info(fixture("info_raw.json"));
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->format, "raw");
  EXPECT_EQ(info->virtual_size, 1048576u);
  EXPECT_TRUE(info->backing_file.empty());
}

// qemu-img 7.2 on `qemu-img create -f qcow2 -o data_file=/tmp/imgexp/data.raw t.qcow2 1M`.
TEST(QemuImgInfo, ParsesAnExternalDataFile) {
  auto info = parse_qemu_img_info(R"({
    "virtual-size": 1048576, "filename": "t.qcow2", "cluster-size": 65536,
    "format": "qcow2", "actual-size": 200704,
    "format-specific": {"type": "qcow2", "data": {"compat": "1.1",
        "compression-type": "zlib", "lazy-refcounts": false, "refcount-bits": 16,
        "data-file": "/tmp/imgexp/data.raw", "data-file-raw": false, "corrupt": false,
        "extended-l2": false}},
    "dirty-flag": false})");
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->data_file, "/tmp/imgexp/data.raw");
  EXPECT_TRUE(info->backing_file.empty());
  auto bad = parse_qemu_img_info(
      R"({"format": "qcow2", "virtual-size": 1, "format-specific": {"data": {"data-file": 3}}})");
  EXPECT_FALSE(bad);
}

// qemu-img 7.2 after `qemu-img bitmap --add t.qcow2 strata-a` and `--add --disable ...
// strata-b`, plus an in-use one (QEMU killed while it had the image open).
TEST(QemuImgInfo, ParsesPersistentBitmaps) {
  auto info = parse_qemu_img_info(R"({
    "virtual-size": 67108864, "filename": "t.qcow2", "format": "qcow2", "actual-size": 204800,
    "format-specific": {"type": "qcow2", "data": {"compat": "1.1", "lazy-refcounts": false,
        "bitmaps": [{"flags": ["auto"], "name": "strata-a", "granularity": 65536},
                    {"flags": [], "name": "strata-b", "granularity": 65536},
                    {"flags": ["in-use", "auto"], "name": "strata-c", "granularity": 131072}],
        "refcount-bits": 16, "corrupt": false, "extended-l2": false}}})");
  ASSERT_TRUE(info) << info.error().to_string();
  ASSERT_EQ(info->bitmaps.size(), 3u);
  EXPECT_EQ(info->bitmaps[0].name, "strata-a");
  EXPECT_TRUE(info->bitmaps[0].recording);
  EXPECT_FALSE(info->bitmaps[0].inconsistent);
  EXPECT_EQ(info->bitmaps[0].granularity, 65536u);
  EXPECT_FALSE(info->bitmaps[1].recording);
  EXPECT_TRUE(info->bitmaps[2].inconsistent);
  EXPECT_EQ(info->bitmaps[2].granularity, 131072u);
  for (const char* bad :
       {R"("bitmaps": {})", R"("bitmaps": [{"name": "x"}])",
        R"("bitmaps": [{"name": 1, "flags": []}])", R"("bitmaps": [{"name": "x", "flags": [7]}])"})
    EXPECT_FALSE(parse_qemu_img_info(std::string(R"({"format": "qcow2", "virtual-size": 1,
        "format-specific": {"data": {)") +
                                     bad + "}}}"))
        << bad;
}

TEST(QemuImgInfo, MalformedOutputIsAnErrorNotACrash) {
  std::string good = fixture("info_raw.json");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"empty", ""},
      {"not json", "qemu-img: Could not open 'x': No such file"},
      {"truncated", good.substr(0, good.size() / 2)},
      {"array", "[1,2,3]"},
      {"string", "\"qcow2\""},
      {"null", "null"},
      {"missing format", R"({"virtual-size": 1})"},
      {"format not string", R"({"format": 7, "virtual-size": 1})"},
      {"empty format", R"({"format": "", "virtual-size": 1})"},
      {"missing virtual-size", R"({"format": "raw"})"},
      {"virtual-size string", R"({"format": "raw", "virtual-size": "1G"})"},
      {"virtual-size negative", R"({"format": "raw", "virtual-size": -1})"},
      {"virtual-size float", R"({"format": "raw", "virtual-size": 1.5})"},
      {"actual-size object", R"({"format": "raw", "virtual-size": 1, "actual-size": {}})"},
      {"backing not string",
       R"({"format": "qcow2", "virtual-size": 1, "backing-filename": ["a"]})"},
      {"huge number", R"({"format": "raw", "virtual-size": 1e400})"},
  };
  for (const auto& [what, text] : cases) {
    auto info = parse_qemu_img_info(text);
    ASSERT_FALSE(info) << what;
    EXPECT_EQ(info.error().code, ErrorCode::internal) << what;
  }
}

}  // namespace
}  // namespace strata::agent
