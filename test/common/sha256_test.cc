// Sha256: known digests (FIPS 180-2 vectors), incremental == one-shot, files.
#include "strata/common/sha256.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace strata {
namespace {

TEST(Sha256, KnownVectors) {
  Sha256 h;
  EXPECT_EQ(h.hex_final(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  h.update("abc");
  EXPECT_EQ(h.hex_final(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  h.update("ab");
  h.update("c");
  EXPECT_EQ(h.hex_final(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, FileAndHexCheck) {
  std::string path = ::testing::TempDir() + "/sha256_test_" + std::to_string(::getpid());
  { std::ofstream(path) << "abc"; }
  auto d = sha256_file(path);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(is_sha256_hex(*d));
  EXPECT_FALSE(is_sha256_hex("ABC"));
  ::unlink(path.c_str());
  EXPECT_EQ(sha256_file(path).error().code, ErrorCode::not_found);
}

}  // namespace
}  // namespace strata
