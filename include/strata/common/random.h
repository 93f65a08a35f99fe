// Random bits for identifiers (UUIDs, MAC addresses, names): a per-thread Mersenne Twister
// seeded from std::random_device. Not for secrets (tokens and keys use OpenSSL's RAND).
#pragma once

#include <cstdint>

namespace strata {

uint64_t random_u64();

}  // namespace strata
