// Repository encryption (strata/backup/crypto.h, docs/internals/backup.md "Encryption"):
// HKDF-SHA256 sub-keys, HMAC-SHA256 chunk ids, AES-256-GCM blobs, over OpenSSL.
#include "strata/backup/crypto.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>

#include "strata/common/atomic_file.h"
#include "strata/common/secret_file.h"

namespace strata::backup {

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

std::string crypto_hex(const uint8_t* p, size_t n) {
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHexDigits[p[i] >> 4]);
    out.push_back(kHexDigits[p[i] & 15]);
  }
  return out;
}

int crypto_hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// HKDF-SHA256 (RFC 5869) of the repository key: one sub-key per `info`.
bool hkdf_sha256(const uint8_t* ikm, size_t ikm_len, std::string_view info, uint8_t* out,
                 size_t out_len) {
  static constexpr std::string_view kSalt = "strata-backup-repository-v1";
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr), EVP_PKEY_CTX_free);
  if (!ctx) return false;
  size_t len = out_len;
  return EVP_PKEY_derive_init(ctx.get()) > 0 &&
         EVP_PKEY_CTX_set_hkdf_md(ctx.get(), EVP_sha256()) > 0 &&
         EVP_PKEY_CTX_set1_hkdf_salt(ctx.get(), reinterpret_cast<const uint8_t*>(kSalt.data()),
                                     static_cast<int>(kSalt.size())) > 0 &&
         EVP_PKEY_CTX_set1_hkdf_key(ctx.get(), ikm, static_cast<int>(ikm_len)) > 0 &&
         EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), reinterpret_cast<const uint8_t*>(info.data()),
                                     static_cast<int>(info.size())) > 0 &&
         EVP_PKEY_derive(ctx.get(), out, &len) > 0 && len == out_len;
}

std::array<uint8_t, 32> hmac_sha256(const std::array<uint8_t, 32>& key, const void* data,
                                    size_t size) {
  std::array<uint8_t, 32> md{};
  unsigned int len = 0;
  // One-shot HMAC over the whole chunk (HMAC() is not deprecated in OpenSSL 3).
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       static_cast<const unsigned char*>(data), size, md.data(), &len);
  return md;
}

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

}  // namespace

RepoKey::~RepoKey() {
  OPENSSL_cleanse(key_.data(), key_.size());
  OPENSSL_cleanse(chunk_key_.data(), chunk_key_.size());
  OPENSSL_cleanse(meta_key_.data(), meta_key_.size());
  OPENSSL_cleanse(id_key_.data(), id_key_.size());
}

void RepoKey::derive() {
  // HKDF over a 32-byte input cannot fail but for an OpenSSL without HKDF; the sub-keys
  // would then stay zero, so derive() is checked by from_bytes through the fingerprint.
  std::array<uint8_t, 32> fp_key{};
  bool ok = hkdf_sha256(key_.data(), key_.size(), "chunk-encryption aes-256-gcm", chunk_key_.data(),
                        chunk_key_.size()) &&
            hkdf_sha256(key_.data(), key_.size(), "metadata-encryption aes-256-gcm",
                        meta_key_.data(), meta_key_.size()) &&
            hkdf_sha256(key_.data(), key_.size(), "chunk-id hmac-sha256", id_key_.data(),
                        id_key_.size()) &&
            hkdf_sha256(key_.data(), key_.size(), "fingerprint", fp_key.data(), fp_key.size());
  if (!ok) {
    fingerprint_.clear();
    return;
  }
  static constexpr std::string_view kFpData = "strata backup repository key";
  auto md = hmac_sha256(fp_key, kFpData.data(), kFpData.size());
  fingerprint_ = crypto_hex(md.data(), 16);
  OPENSSL_cleanse(fp_key.data(), fp_key.size());
}

Result<RepoKey> RepoKey::from_bytes(std::string_view raw, std::string_view field) {
  if (raw.size() != kRepoKeySize)
    return invalid_argument(std::string(field), fmt::format("a repository key is {} bytes, not {}",
                                                            kRepoKeySize, raw.size()));
  RepoKey k;
  std::memcpy(k.key_.data(), raw.data(), kRepoKeySize);
  k.derive();
  if (k.fingerprint_.empty()) return internal_error("HKDF-SHA256 of the repository key failed");
  return k;
}

Result<RepoKey> RepoKey::from_hex(std::string_view hex) {
  if (hex.size() != kRepoKeySize * 2)
    return invalid_argument("key_file",
                            fmt::format("a repository key is {} hex characters", kRepoKeySize * 2));
  std::string raw(kRepoKeySize, '\0');
  for (size_t i = 0; i < kRepoKeySize; ++i) {
    int hi = crypto_hex_value(hex[2 * i]), lo = crypto_hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      OPENSSL_cleanse(raw.data(), raw.size());
      return invalid_argument("key_file", "a repository key is hex characters only");
    }
    raw[i] = static_cast<char>(hi * 16 + lo);
  }
  auto k = from_bytes(raw, "key_file");
  OPENSSL_cleanse(raw.data(), raw.size());
  return k;
}

Result<RepoKey> RepoKey::generate() {
  std::array<uint8_t, kRepoKeySize> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1)
    return internal_error("RAND_bytes failed: no repository key generated");
  auto k = from_bytes(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()));
  OPENSSL_cleanse(raw.data(), raw.size());
  return k;
}

std::string RepoKey::to_hex() const { return crypto_hex(key_.data(), key_.size()); }

std::string RepoKey::chunk_id(const void* data, size_t size) const {
  auto md = hmac_sha256(id_key_, data, size);
  return crypto_hex(md.data(), md.size());
}

Result<std::string> RepoKey::seal(BlobKind kind, std::string_view plain,
                                  std::string_view aad) const {
  if (plain.size() > static_cast<size_t>(INT_MAX) || aad.size() > static_cast<size_t>(INT_MAX))
    return invalid_argument("blob", "too large to encrypt in one piece");
  const auto& key = kind == BlobKind::chunk ? chunk_key_ : meta_key_;
  std::string out(kBlobOverhead + plain.size(), '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  p[0] = kBlobVersion;
  uint8_t* nonce = p + 1;
  uint8_t* ct = nonce + kBlobNonceSize;
  uint8_t* tag = ct + plain.size();
  if (RAND_bytes(nonce, static_cast<int>(kBlobNonceSize)) != 1)
    return internal_error("RAND_bytes failed: no nonce");
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kBlobNonceSize, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), nonce) != 1 ||
      (!aad.empty() &&
       EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const uint8_t*>(aad.data()),
                         static_cast<int>(aad.size())) != 1) ||
      EVP_EncryptUpdate(ctx.get(), ct, &len, reinterpret_cast<const uint8_t*>(plain.data()),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), ct + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kBlobTagSize, tag) != 1)
    return internal_error("AES-256-GCM encryption failed");
  return out;
}

Result<std::string> RepoKey::open(BlobKind kind, std::string_view blob,
                                  std::string_view aad) const {
  if (blob.size() < kBlobOverhead || blob.size() - kBlobOverhead > static_cast<size_t>(INT_MAX))
    return internal_error("encrypted blob has a wrong length (truncated?)");
  const auto* p = reinterpret_cast<const uint8_t*>(blob.data());
  if (p[0] != kBlobVersion)
    return internal_error(fmt::format("encrypted blob of unknown version {}", p[0]));
  const auto& key = kind == BlobKind::chunk ? chunk_key_ : meta_key_;
  const uint8_t* nonce = p + 1;
  const uint8_t* ct = nonce + kBlobNonceSize;
  size_t ct_len = blob.size() - kBlobOverhead;
  std::array<uint8_t, kBlobTagSize> tag{};
  std::memcpy(tag.data(), ct + ct_len, kBlobTagSize);
  std::string out(ct_len, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kBlobNonceSize, nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), nonce) != 1 ||
      (!aad.empty() &&
       EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const uint8_t*>(aad.data()),
                         static_cast<int>(aad.size())) != 1) ||
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<uint8_t*>(out.data()), &len, ct,
                        static_cast<int>(ct_len)) != 1)
    return internal_error("AES-256-GCM decryption failed");
  int fin = 0;
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kBlobTagSize, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<uint8_t*>(out.data()) + len, &fin) != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    return internal_error(
        "fails authentication (AES-256-GCM tag): altered, or sealed with another key");
  }
  return out;
}

Result<RepoKey> create_key_file(const std::string& path) {
  if (path.empty()) return invalid_argument("key_file", "needs a path");
  auto key = RepoKey::generate();
  if (!key) return key;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    int e = errno;
    if (e == EEXIST)
      return make_error(ErrorCode::already_exists,
                        "key file " + path +
                            " exists; it is never overwritten (its backups "
                            "would be lost)");
    return internal_error(fmt::format("create {}: {}", path, std::strerror(e)));
  }
  // The umask may have narrowed 0600 but never widened it; fchmod makes it exact.
  std::string text = key->to_hex() + "\n";
  Status st = ::fchmod(fd, 0600) == 0
                  ? write_all(fd, text, path)
                  : Status(internal_error(fmt::format("chmod {}: {}", path, std::strerror(errno))));
  if (st && ::fsync(fd) != 0)
    st = internal_error(fmt::format("fsync {}: {}", path, std::strerror(errno)));
  OPENSSL_cleanse(text.data(), text.size());
  if (::close(fd) != 0 && st)
    st = internal_error(fmt::format("close {}: {}", path, std::strerror(errno)));
  if (st) st = fsync_parent_dir(path);
  if (!st) {
    ::unlink(path.c_str());
    return tl::unexpected(st.error());
  }
  return key;
}

Result<RepoKey> load_key_file(const std::string& path) {
  auto text = read_secret_file(path, "backup key file", 1024);
  if (!text) return tl::unexpected(text.error());
  auto key = RepoKey::from_hex(*text);
  OPENSSL_cleanse(text->data(), text->size());
  if (!key) return tl::unexpected(key.error().wrap("backup key file " + path));
  return key;
}

}  // namespace strata::backup
