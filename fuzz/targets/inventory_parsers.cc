// Host inventory parsers (/proc/cpuinfo, /proc/meminfo, node meminfo, sysfs cpu lists,
// os-release, numbers): every parser on the same text. Properties: no crash; a cpu list
// comes back sorted without duplicates; parse_u64/parse_i64 agree where both accept.
#include "fuzz_input.h"
#include "strata/agent/inventory_parsers.h"

using namespace strata::agent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = strata::fuzz::as_text(data, size);
  (void)parse_cpuinfo(in);
  (void)parse_meminfo(in);
  (void)parse_node_meminfo(in);
  (void)parse_os_release(in);
  if (auto cpus = parse_cpu_list(in)) {
    for (size_t i = 1; i < cpus->size(); ++i) FUZZ_CHECK((*cpus)[i - 1] < (*cpus)[i]);
  }
  auto u = parse_u64(in);
  auto i = parse_i64(in);
  if (u && i && *i >= 0) FUZZ_CHECK(static_cast<uint64_t>(*i) == *u);
  std::string_view t = trim(in);
  FUZZ_CHECK(t.size() <= in.size());
  return 0;
}
