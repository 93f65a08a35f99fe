#include "strata/common/random.h"

#include <random>

namespace strata {

uint64_t random_u64() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

}  // namespace strata
