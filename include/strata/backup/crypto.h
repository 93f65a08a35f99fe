// Client-side encryption of a backup repository (docs/internals/backup.md "Encryption"),
// as Proxmox Backup Server's: a 32-byte key the manager keeps outside the repository, from
// which HKDF-SHA256 derives one sub-key per use. Chunk ids are HMAC-SHA256 of the plaintext
// (deduplication still works; plain content hashes do not leak), blobs are AES-256-GCM
// with a random nonce. Pure apart from OpenSSL's random generator and the key file.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "strata/common/error.h"

namespace strata::backup {

inline constexpr size_t kRepoKeySize = 32;
// The stored form of an encrypted blob: version byte, nonce, ciphertext, tag.
inline constexpr uint8_t kBlobVersion = 1;
inline constexpr size_t kBlobNonceSize = 12;
inline constexpr size_t kBlobTagSize = 16;
inline constexpr size_t kBlobOverhead = 1 + kBlobNonceSize + kBlobTagSize;

// What a sealed blob is: each use has its own sub-key, so a blob of one kind never opens
// as another.
enum class BlobKind { chunk, metadata };

class RepoKey {
 public:
  // 32 bytes from OpenSSL's RAND_bytes (internal when the generator fails).
  static Result<RepoKey> generate();
  // Exactly 32 bytes (invalid_argument otherwise; `field` names it in the message).
  static Result<RepoKey> from_bytes(std::string_view raw, std::string_view field = "repo_key");
  // 64 hex characters (the key file's form).
  static Result<RepoKey> from_hex(std::string_view hex);

  RepoKey(const RepoKey&) = default;
  RepoKey& operator=(const RepoKey&) = default;
  ~RepoKey();

  // The key itself: for the key file and the agent's gRPC request only, never a log.
  std::string_view raw() const { return {reinterpret_cast<const char*>(key_.data()), key_.size()}; }
  std::string to_hex() const;
  // Names the key without revealing it (recorded in the repository's config): 32 hex
  // characters of HMAC-SHA256 under a sub-key of its own.
  const std::string& fingerprint() const { return fingerprint_; }

  // HMAC-SHA256 of `data` under the chunk-id sub-key, as 64 lowercase hex characters.
  std::string chunk_id(const void* data, size_t size) const;
  // AES-256-GCM under the kind's sub-key with a fresh random nonce; `aad` is authenticated
  // (the chunk id, or what a metadata file is), not stored.
  Result<std::string> seal(BlobKind kind, std::string_view plain, std::string_view aad) const;
  // The plaintext, or internal ("... fails authentication") when the blob was altered, is
  // truncated, was sealed with another key or for another `aad`.
  Result<std::string> open(BlobKind kind, std::string_view blob, std::string_view aad) const;

 private:
  RepoKey() = default;
  void derive();
  std::array<uint8_t, kRepoKeySize> key_{};
  std::array<uint8_t, 32> chunk_key_{};
  std::array<uint8_t, 32> meta_key_{};
  std::array<uint8_t, 32> id_key_{};
  std::string fingerprint_;
};

// Writes a new random key to `path` (hex, mode 0600, created exclusively: an existing file
// is never overwritten, already_exists). Returns the key.
Result<RepoKey> create_key_file(const std::string& path);
// Reads a key file: 64 hex characters, not readable or writable by group or others
// (permission_denied otherwise, as ssh refuses loose keys).
Result<RepoKey> load_key_file(const std::string& path);

}  // namespace strata::backup
