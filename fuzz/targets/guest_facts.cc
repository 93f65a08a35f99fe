// qemu-guest-agent replies as the QEMU driver's guest facts poller reads them (model/
// guest_facts.h): the first line selects the command ("osinfo", "hostname", "interfaces"),
// the rest is the guest's reply. Properties: no crash or exception; a refused reply leaves
// the facts unchanged; accepted facts stay within their bounds and round-trip through the
// JSON the manager stores.
#include "fuzz_input.h"
#include "strata/model/guest_facts.h"

using namespace strata;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view reply;
  size_t which = fuzz::select(fuzz::as_text(data, size), {"osinfo", "hostname", "interfaces"},
                              &reply);
  model::GuestFacts facts;
  facts.hostname = "before";
  const model::GuestFacts before = facts;
  Status s = which == 0   ? model::apply_guest_osinfo(reply, facts)
             : which == 1 ? model::apply_guest_hostname(reply, facts)
                          : model::apply_guest_interfaces(reply, facts);
  if (!s) {
    FUZZ_CHECK(facts == before);
    return 0;
  }
  FUZZ_CHECK(facts.interfaces.size() <= model::kMaxGuestInterfaces);
  for (const auto& i : facts.interfaces) {
    FUZZ_CHECK(i.addresses.size() <= model::kMaxGuestAddresses);
    FUZZ_CHECK(i.name.size() <= model::kMaxGuestFactBytes);
  }
  FUZZ_CHECK(facts.os_name.size() <= model::kMaxGuestFactBytes);
  auto back = model::guest_facts_from_json(model::to_json(facts));
  FUZZ_CHECK(back.has_value());
  FUZZ_CHECK(*back == facts);
  return 0;
}
