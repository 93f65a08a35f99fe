// QMP codec: bytes from QEMU's monitor socket (a guest-influenced peer) through the framer
// at a fuzzed chunk size, each line through parse_qmp_message, and the whole input as a
// capability-probe transcript. Properties: no crash or exception; an error class maps to an
// error; encoded commands are one line of valid JSON.
#include <algorithm>

#include "fuzz_input.h"
#include "qmp_codec.h"
#include "strata/agent/inventory_qemu.h"

using namespace strata::agent::qemu;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = strata::fuzz::as_text(data, size);
  size_t chunk = in.empty() ? 1 : 1 + static_cast<unsigned char>(in[0]) % 64;
  QmpFramer framer(4096);
  for (size_t off = 0; off < in.size() && !framer.failed(); off += chunk) {
    (void)framer.feed(in.substr(off, std::min(chunk, in.size() - off)));
    while (auto line = framer.next_line()) {
      FUZZ_CHECK(line->size() <= 4096);
      FUZZ_CHECK(line->find('\n') == std::string::npos);
      auto m = parse_qmp_message(*line);
      if (!m) continue;
      if (m->kind == QmpKind::error) (void)qmp_error_to_error(*m);
      std::string cmd = encode_qmp_command(m->event.empty() ? m->error_class : m->event,
                                           m->payload, m->id);
      FUZZ_CHECK(!cmd.empty() && cmd.back() == '\n');
      FUZZ_CHECK(cmd.find('\n') == cmd.size() - 1);
      auto again = nlohmann::json::parse(cmd, nullptr, false);
      FUZZ_CHECK(!again.is_discarded() && again.is_object());
    }
  }
  (void)strata::agent::parse_qmp_probe_transcript(in);
  return 0;
}
