// Live metrics samples: each goes to the streams of its host only, as one SSE frame;
// closed streams are forgotten.
#include "strata/manager/api/metrics_feed.h"

#include <gtest/gtest.h>

namespace strata::manager {
namespace {

class FakeStream final : public EventStream {
 public:
  bool write(std::string data) override {
    if (closed_) return false;
    frames.push_back(std::move(data));
    return true;
  }
  bool closed() const override { return closed_; }
  size_t queued_bytes() const override { return 0; }
  void on_drain(std::function<void()>) override {}
  void close() override { closed_ = true; }
  std::vector<std::string> frames;

 private:
  bool closed_ = false;
};

TEST(MetricsFeed, SamplesGoToTheirHostsStreamsOnly) {
  MetricsFeed feed;
  auto a1 = std::make_shared<FakeStream>(), a2 = std::make_shared<FakeStream>(),
       b = std::make_shared<FakeStream>();
  feed.subscribe("host-a", a1);
  feed.subscribe("host-a", a2);
  feed.subscribe("host-b", b);
  feed.publish("host-a", 1000, R"({"host":{"cpu_busy":0.25}})");
  ASSERT_EQ(a1->frames.size(), 1u);
  EXPECT_EQ(a1->frames[0],
            "event: metrics\ndata: {\"time_ms\":1000,\"data\":{\"host\":{\"cpu_busy\":0.25}}}\n\n");
  EXPECT_EQ(a2->frames, a1->frames);
  EXPECT_TRUE(b->frames.empty());

  a2->close();
  b.reset();  // the client left
  feed.publish("host-a", 3000, "{\n}");
  EXPECT_EQ(feed.subscribers(), 1u);
  ASSERT_EQ(a1->frames.size(), 2u);
  EXPECT_EQ(a1->frames[1], "event: metrics\ndata: {\"time_ms\":3000,\"data\":{ }}\n\n")
      << "a newline in the data would end the SSE field";
}

}  // namespace
}  // namespace strata::manager
