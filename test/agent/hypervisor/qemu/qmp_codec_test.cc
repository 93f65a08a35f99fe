// QMP codec tests: recorded QEMU 7.2 transcripts (transcripts/*.qmp, the exact bytes QEMU
// sent) fed in chunks of every size, and malformed input that must become errors.
#include "qmp_codec.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

namespace strata::agent::qemu {
namespace {

std::string read_transcript(const std::string& name) {
  std::ifstream in(std::string(STRATA_TEST_SRC_DIR) + "/transcripts/" + name);
  EXPECT_TRUE(in) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<QmpMessage> decode_all(const std::string& bytes, size_t chunk) {
  QmpFramer f;
  std::vector<QmpMessage> out;
  for (size_t i = 0; i < bytes.size(); i += chunk) {
    EXPECT_TRUE(f.feed(std::string_view(bytes).substr(i, chunk)));
    while (auto line = f.next_line()) {
      auto m = parse_qmp_message(*line);
      EXPECT_TRUE(m) << *line;
      if (m) out.push_back(*m);
    }
  }
  return out;
}

TEST(QmpCodec, RecordedSessionAnyChunking) {
  std::string t = read_transcript("session-7.2.qmp");
  for (size_t chunk : {size_t(1), size_t(3), size_t(64), size_t(1000), t.size()}) {
    auto msgs = decode_all(t, chunk);
    ASSERT_EQ(msgs.size(), 15u) << "chunk " << chunk;
    EXPECT_EQ(msgs[0].kind, QmpKind::greeting);
    EXPECT_EQ(msgs[0].payload["version"]["qemu"]["major"], 7);
    EXPECT_EQ(msgs[1].kind, QmpKind::ret);
    EXPECT_EQ(msgs[1].id, "c1");
    EXPECT_EQ(msgs[2].id, 2);  // numeric ids come back numeric
    EXPECT_EQ(msgs[2].payload["status"], "running");
    EXPECT_EQ(msgs[3].kind, QmpKind::error);
    EXPECT_EQ(msgs[3].error_class, "CommandNotFound");
    EXPECT_EQ(qmp_error_to_error(msgs[3]).code, ErrorCode::not_found);
    EXPECT_EQ(msgs[4].kind, QmpKind::event);
    EXPECT_EQ(msgs[4].event, "STOP");
    EXPECT_EQ(msgs[4].timestamp_us, 1795608212349603);
    EXPECT_TRUE(msgs[4].payload.is_null());
    EXPECT_EQ(msgs[6].payload["status"], "paused");
    EXPECT_EQ(msgs[7].event, "RESUME");
    EXPECT_EQ(msgs[9].event, "RESET");
    EXPECT_EQ(msgs[9].payload["reason"], "host-qmp-system-reset");
    EXPECT_EQ(msgs[11].payload["guest"], true);
    EXPECT_TRUE(msgs[12].payload.is_array());
    EXPECT_EQ(msgs[12].payload[0]["stats"]["rd_bytes"], 1024);
    EXPECT_EQ(msgs[13].event, "POWERDOWN");
    EXPECT_EQ(msgs[14].id, "c9");
  }
}

TEST(QmpCodec, ShutdownTranscripts) {
  auto pd = decode_all(read_transcript("powerdown-7.2.qmp"), 5);
  ASSERT_EQ(pd.size(), 5u);
  EXPECT_EQ(pd[4].event, "SHUTDOWN");
  EXPECT_EQ(pd[4].payload["reason"], "guest-shutdown");
  auto quit = decode_all(read_transcript("quit-7.2.qmp"), 11);
  ASSERT_EQ(quit.size(), 4u);
  // QEMU emits the SHUTDOWN event before the reply to `quit`.
  EXPECT_EQ(quit[2].event, "SHUTDOWN");
  EXPECT_EQ(quit[2].payload["reason"], "host-qmp-quit");
  EXPECT_EQ(quit[3].kind, QmpKind::ret);
  EXPECT_EQ(quit[3].id, 2);
}

TEST(QmpCodec, MalformedMessagesAreErrors) {
  for (std::string bad : std::vector<std::string>{
           "not json", "[1,2]", "42", "\"str\"", "{}", "{\"return\":", "{\"error\":\"x\"}",
           "{\"error\":{\"class\":1,\"desc\":\"d\"}}", "{\"error\":{\"class\":\"C\"}}",
           "{\"event\":5}", "{\"event\":\"X\",\"data\":[1]}", "{\"QMP\":[]}", "{\"unknown\":1}",
           "{\"return\":{}} trailing", std::string("{\"return\":\"\xff\xfe\"}"),
           std::string("{\"ret\0urn\":1}", 13)}) {
    auto m = parse_qmp_message(bad);
    EXPECT_FALSE(m) << bad;
    if (!m) {
      EXPECT_EQ(m.error().code, ErrorCode::invalid_argument);
    }
  }
}

TEST(QmpCodec, DeepNestingDoesNotCrash) {
  std::string deep = "{\"return\":" + std::string(20000, '[') + std::string(20000, ']') + "}";
  // Rejected as an error (depth limit), never a stack overflow (seen under ASan before).
  auto m = parse_qmp_message(deep);
  EXPECT_FALSE(m);
  EXPECT_TRUE(parse_qmp_message("{\"return\":" + std::string(100, '[') + std::string(100, ']') + "}"));
  std::string unbalanced = "{\"return\":" + std::string(20000, '[') + "}";
  EXPECT_FALSE(parse_qmp_message(unbalanced));
}

// seconds * 1e6 overflowed int64 (undefined behaviour; UBSan aborts), found by
// fuzz/targets/qmp_codec.cc. An out-of-range timestamp reads as 0 (unknown).
TEST(QmpCodec, TimestampOutOfRangeIsZero) {
  for (const char* line :
       {R"({"event":"STOP","timestamp":{"seconds":9223372036854775807,"microseconds":1}})",
        R"({"event":"STOP","timestamp":{"seconds":-9223372036854775807,"microseconds":-1}})",
        R"({"event":"STOP","timestamp":{"seconds":9223372036854,"microseconds":9223372036854775807}})",
        R"({"event":"STOP","timestamp":{"seconds":18446744073709551615,"microseconds":0}})"}) {
    auto m = parse_qmp_message(line);
    ASSERT_TRUE(m) << line;
    EXPECT_EQ(m->timestamp_us, 0) << line;
  }
  auto ok = parse_qmp_message(R"({"event":"STOP","timestamp":{"seconds":2,"microseconds":5}})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->timestamp_us, 2000005);
}

// A long line fed a byte at a time: feed() searched the whole buffer for its last newline
// on every call (quadratic: this test ran for minutes); now it is linear.
TEST(QmpCodec, FramerIsLinearInSmallPieces) {
  QmpFramer f(8u << 20);
  std::string line = R"({"return":")" + std::string(2u << 20, 'x') + "\"}\n";
  for (char c : line) ASSERT_TRUE(f.feed(std::string_view(&c, 1)));
  auto got = f.next_line();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->size(), line.size() - 1);
  QmpFramer small(16);
  for (int i = 0; i < 16; ++i) ASSERT_TRUE(small.feed("x"));
  EXPECT_FALSE(small.feed("x"));  // the 17th byte of one line
  QmpFramer lines(16);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(lines.feed("0123456789\n"));
  // Many lines in one read: each line used to be erased from the front of the buffer,
  // moving the rest every time.
  QmpFramer many;
  ASSERT_TRUE(many.feed(std::string(2u << 20, '\n') + "{}\n{\"a\""));
  EXPECT_EQ(many.next_line(), "{}");
  EXPECT_EQ(many.next_line(), std::nullopt);
  ASSERT_TRUE(many.feed(":1}\n"));
  EXPECT_EQ(many.next_line(), "{\"a\":1}");
}

TEST(QmpCodec, RandomBytesNeverCrash) {
  std::mt19937 rng(7);
  std::string t = read_transcript("session-7.2.qmp");
  for (int round = 0; round < 2000; ++round) {
    std::string s = t.substr(rng() % t.size(), rng() % 200);
    for (int k = 0; k < 3 && !s.empty(); ++k) s[rng() % s.size()] = static_cast<char>(rng());
    QmpFramer f(4096);
    (void)f.feed(s);
    while (auto line = f.next_line()) (void)parse_qmp_message(*line);
  }
}

TEST(QmpCodec, FramerBoundsLineLength) {
  QmpFramer f(16);
  EXPECT_TRUE(f.feed("{\"return\":{}}\n\r\n  \n{\"ret"));
  EXPECT_EQ(f.next_line(), "{\"return\":{}}");
  EXPECT_EQ(f.next_line(), std::nullopt);
  EXPECT_FALSE(f.feed(std::string(40, 'x')));
  EXPECT_TRUE(f.failed());
  EXPECT_EQ(f.next_line(), std::nullopt);
  QmpFramer g(8);
  EXPECT_TRUE(g.feed("0123456789abcdef\n"));  // an over-long complete line fails on read
  EXPECT_EQ(g.next_line(), std::nullopt);
  EXPECT_TRUE(g.failed());
}

TEST(QmpCodec, EncodesCommands) {
  EXPECT_EQ(encode_qmp_command("query-status", nullptr, 3),
            "{\"execute\":\"query-status\",\"id\":3}\n");
  EXPECT_EQ(encode_qmp_command("stop", nlohmann::json::object(), "a"),
            "{\"execute\":\"stop\",\"id\":\"a\"}\n");
  auto s = encode_qmp_command("human-monitor-command", {{"command-line", "info\n\"x\""}}, 1);
  EXPECT_EQ(s.find('\n'), s.size() - 1);  // newlines in arguments stay escaped
  auto back = parse_qmp_message("{\"return\":" + s.substr(0, s.size() - 1) + "}");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->payload["arguments"]["command-line"], "info\n\"x\"");
  // Out-of-band: the same object under "exec-oob" (QEMU requires an id with it).
  EXPECT_EQ(encode_qmp_command("migrate-recover", {{"uri", "tcp:h:1"}}, 7, QmpExec::oob),
            "{\"arguments\":{\"uri\":\"tcp:h:1\"},\"exec-oob\":\"migrate-recover\",\"id\":7}\n");
}

}  // namespace
}  // namespace strata::agent::qemu
