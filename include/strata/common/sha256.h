// SHA-256 digests (OpenSSL EVP) as lowercase hex: incremental for streamed data, and of a
// whole file read in chunks (never loaded into memory at once).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "strata/common/error.h"

namespace strata {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // The digest as 64 lowercase hex characters; the object is reset afterwards.
  std::string hex_final();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// sha256 of a file's contents; not_found / internal on read errors.
Result<std::string> sha256_file(const std::string& path);

// True for 64 lowercase hex characters.
bool is_sha256_hex(std::string_view s);

}  // namespace strata
