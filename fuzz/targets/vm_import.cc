// VM import descriptors and archive headers (model/vm_import.h): the first line selects
// "libvirt" (a domain XML), "ovf" (an OVF envelope) or "tar" (512-byte header blocks, then
// pax records). Properties: no crash or exception; an accepted descriptor's plan stays
// within Strata's bounds, names only plain archive members (OVF), and, with a base image
// per disk that has a file, is a valid VmSpec (with two networks mapped to bridges); a
// disk's compression is none or gzip; an accepted tar header names a plain member.
#include "strata/model/vm_import.h"

#include <cstring>

#include "fuzz_input.h"
#include "strata/model/validation.h"

using namespace strata;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view rest;
  size_t which = fuzz::select(fuzz::as_text(data, size), {"libvirt", "ovf", "tar"}, &rest);
  if (which == 2) {
    std::array<unsigned char, 512> block{};
    if (!rest.empty()) std::memcpy(block.data(), rest.data(), std::min(rest.size(), block.size()));
    auto h = model::parse_tar_header(block, 0);
    if (!h) return 0;
    if (h->kind == model::TarHeader::Kind::file) {
      FUZZ_CHECK(model::validate_member_name("n", h->name).has_value());
      FUZZ_CHECK(h->size <= model::kMaxDiskBytes);
    }
    if (rest.size() > 512) {
      model::TarHeader next;
      if (model::apply_pax_records(rest.substr(512), next, 0) && !next.name.empty())
        FUZZ_CHECK(model::validate_member_name("n", next.name).has_value());
    }
    return 0;
  }
  // Two mapped networks: a mapped NIC is a bridge NIC, still a valid spec.
  const model::NetworkMap networks = {{"default", "br0"}, {"VM Network", "br1"}};
  auto plan =
      which == 0 ? model::parse_libvirt_domain(rest, networks) : model::parse_ovf(rest, networks);
  if (!plan) {
    FUZZ_CHECK(plan.error().code == ErrorCode::invalid_argument);
    FUZZ_CHECK(plan.error().field.rfind("descriptor", 0) == 0);
    return 0;
  }
  FUZZ_CHECK(!plan->disks.empty() && plan->disks.size() <= model::kMaxDisks);
  FUZZ_CHECK(plan->spec.disks.size() == plan->disks.size());
  FUZZ_CHECK(plan->spec.nics.size() <= model::kMaxNics);
  for (const auto& d : plan->disks) FUZZ_CHECK(d.compression.empty() || d.compression == "gzip");
  for (const auto& d : plan->disks)
    if (which == 1 && !d.source.empty())
      FUZZ_CHECK(model::validate_member_name("href", d.source).has_value());
  model::VmSpec spec = plan->spec;
  if (spec.name.empty()) spec.name = "imported";
  for (size_t i = 0; i < spec.disks.size(); ++i)
    if (!plan->disks[i].source.empty()) spec.disks[i].base_image = "img";
  auto st = model::validate(spec);
  FUZZ_CHECK(st.has_value());
  return 0;
}
