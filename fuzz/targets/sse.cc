// The CLI's server-sent-events parser (strata events --follow, --wait), fed the server's
// byte stream at a fuzzed chunk size. Properties: no crash; the events do not depend on how
// the stream was chunked.
#include <algorithm>

#include "fuzz_input.h"
#include "strata/cli/sse.h"

using strata::cli::SseEvent;
using strata::cli::SseParser;

namespace {

std::vector<SseEvent> run(std::string_view in, size_t chunk) {
  SseParser p;
  std::vector<SseEvent> all;
  for (size_t off = 0; off < in.size(); off += chunk) {
    auto evs = p.feed(in.substr(off, std::min(chunk, in.size() - off)));
    all.insert(all.end(), evs.begin(), evs.end());
  }
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = strata::fuzz::as_text(data, size);
  if (in.empty()) return 0;
  size_t chunk = 1 + static_cast<unsigned char>(in[0]) % 16;
  auto whole = run(in, in.size());
  auto pieces = run(in, chunk);
  FUZZ_CHECK(whole.size() == pieces.size());
  for (size_t i = 0; i < whole.size(); ++i) {
    FUZZ_CHECK(whole[i].id == pieces[i].id);
    FUZZ_CHECK(whole[i].event == pieces[i].event);
    FUZZ_CHECK(whole[i].data == pieces[i].data);
  }
  return 0;
}
