// Helpers shared by the fuzz targets: splitting a readable selector line off the input,
// and a check that aborts (a crash libFuzzer records) when a stated property fails.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string_view>

namespace strata::fuzz {

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Inputs start with a short selector line ("vm_create\n{...}") so seed files stay readable.
// The selector picks one of `names`; an unknown one (a mutated line) picks by its first
// byte, so every branch stays reachable. Returns the index; `rest` gets the remainder.
inline size_t select(std::string_view input, std::initializer_list<std::string_view> names,
                     std::string_view* rest) {
  size_t nl = input.find('\n');
  std::string_view head = nl == std::string_view::npos ? input : input.substr(0, nl);
  *rest = nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);
  size_t i = 0;
  for (std::string_view n : names) {
    if (head == n) return i;
    ++i;
  }
  return head.empty() ? 0 : static_cast<unsigned char>(head[0]) % names.size();
}

[[noreturn]] inline void property_failed(const char* what, const char* file, int line) {
  std::fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", what, file, line);
  std::abort();
}

}  // namespace strata::fuzz

#define FUZZ_CHECK(cond) \
  ((cond) ? (void)0 : ::strata::fuzz::property_failed(#cond, __FILE__, __LINE__))
