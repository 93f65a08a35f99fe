// Chunk arithmetic and the index's JSON form (strata/backup/index.h).
#include "strata/backup/index.h"

#include <gtest/gtest.h>

namespace strata::backup {
namespace {

constexpr uint64_t MiB = 1 << 20;

TEST(ChunkMath, CountsAndTheShortLastChunk) {
  EXPECT_EQ(chunk_count(0, 4 * MiB), 0u);
  EXPECT_EQ(chunk_count(4 * MiB, 4 * MiB), 1u);
  EXPECT_EQ(chunk_count(4 * MiB + 1, 4 * MiB), 2u);
  EXPECT_EQ(chunk_length(4 * MiB + 1, 4 * MiB, 1), 1u);
  EXPECT_EQ(chunk_length(4 * MiB + 1, 4 * MiB, 0), 4 * MiB);
  EXPECT_EQ(chunk_length(4 * MiB + 1, 4 * MiB, 2), 0u);
}

TEST(ChunkMath, ExtentsMarkEveryChunkTheyOverlap) {
  uint64_t size = 10 * MiB, cs = 4 * MiB;  // chunks: [0,4) [4,8) [8,10)
  auto t = chunks_touched(size, cs, {{4 * MiB - 1, 2}});
  EXPECT_EQ(t, (std::vector<bool>{true, true, false}));
  t = chunks_touched(size, cs, {{4 * MiB, 4 * MiB}});
  EXPECT_EQ(t, (std::vector<bool>{false, true, false}));
  t = chunks_touched(size, cs, {{9 * MiB, 100 * MiB}, {0, 0}});  // clipped; empty ignored
  EXPECT_EQ(t, (std::vector<bool>{false, false, true}));
  t = chunks_touched(size, cs, {{20 * MiB, MiB}});  // past the end
  EXPECT_EQ(t, (std::vector<bool>{false, false, false}));
}

TEST(ChunkMath, AllZeroAtAnyAlignment) {
  std::vector<unsigned char> b(100, 0);
  for (size_t off = 0; off < 9; ++off) {
    EXPECT_TRUE(all_zero(b.data() + off, b.size() - off));
    b[99] = 1;
    EXPECT_FALSE(all_zero(b.data() + off, b.size() - off));
    b[99] = 0;
    b[off] = 1;
    EXPECT_FALSE(all_zero(b.data() + off, 1));
    b[off] = 0;
  }
}

TEST(Index, RoundTripsAndRejectsMalformed) {
  DiskIndex i{"root", 9 * MiB, 4 * MiB, {std::string(64, 'a'), "", std::string(64, '0')}};
  auto back = parse_index(to_json(i));
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->chunks, i.chunks);
  EXPECT_EQ(back->size, i.size);

  auto bad = [&](auto mutate, const std::string& field) {
    auto j = to_json(i);
    mutate(j);
    auto r = parse_index(j);
    ASSERT_FALSE(r) << j.dump();
    EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
    EXPECT_EQ(r.error().field, field);
  };
  bad([](auto& j) { j["version"] = 2; }, "index.version");
  bad([](auto& j) { j["size"] = -1; }, "index.size");
  bad([](auto& j) { j["chunk_size"] = 3 * MiB; }, "index.chunk_size");
  bad([](auto& j) { j["chunk_size"] = 4096; }, "index.chunk_size");
  bad([](auto& j) { j["chunks"].push_back(""); }, "index.chunks");
  bad([](auto& j) { j["chunks"][0] = "../../etc/passwd"; }, "index.chunks");
  bad([](auto& j) { j["chunks"][0] = std::string(64, 'A'); }, "index.chunks");
  bad([](auto& j) { j.erase("disk"); }, "index.disk");
}

TEST(BackupId, OnlySafeFolderNames) {
  EXPECT_TRUE(validate_backup_id("web1-20261130-2133"));
  for (const std::string& id :
       std::vector<std::string>{"", "../x", "a/b", "-a", "A", std::string(65, 'a'), ".", "a.b"})
    EXPECT_FALSE(validate_backup_id(id)) << id;
}

}  // namespace
}  // namespace strata::backup
