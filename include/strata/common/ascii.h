// ASCII character classes for validating names and identifiers. Unlike <cctype>, these do
// not depend on the locale and take any char (a negative one is simply not in the class).
#pragma once

namespace strata {

constexpr bool is_ascii_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
constexpr bool is_ascii_alnum(char c) { return is_ascii_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }
constexpr bool is_ascii_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

}  // namespace strata
