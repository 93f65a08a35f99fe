// Stored VM documents and VM specs: decode_vm_document (what the manager reads back from
// its store) and vm_spec_from_json (strict spec parsing + validate), then complete() and a
// round trip. Properties: no crash or exception; a spec that parses re-encodes to JSON that
// parses to the same spec; a completed spec still validates.
#include "fuzz_input.h"
#include "strata/manager/controllers/vm_document.h"
#include "strata/model/validation.h"
#include "strata/model/vm_spec_json.h"

using namespace strata;

namespace {

uint64_t fixed_random() {
  static uint64_t x = 0x9e3779b97f4a7c15ull;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  if (auto doc = manager::decode_vm_document(text)) {
    std::string again = manager::encode(*doc);
    auto doc2 = manager::decode_vm_document(again);
    FUZZ_CHECK(doc2.has_value());
    FUZZ_CHECK(manager::encode(*doc2) == again);
  }
  (void)manager::decode_vm_status(text);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return 0;
  auto spec = model::vm_spec_from_json(j);
  if (!spec) return 0;
  auto round = model::vm_spec_from_json(model::to_json(*spec));
  FUZZ_CHECK(round.has_value());
  FUZZ_CHECK(model::to_json(*round) == model::to_json(*spec));
  auto done = model::complete(*spec, &fixed_random);
  if (done) FUZZ_CHECK(model::validate(*done).has_value());
  return 0;
}
