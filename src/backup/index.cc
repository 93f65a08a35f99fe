// Chunk arithmetic and the per-disk index (strata/backup/index.h). Pure.
#include "strata/backup/index.h"

#include <algorithm>
#include <cstring>

#include "strata/common/sha256.h"

namespace strata::backup {

uint64_t chunk_count(uint64_t size, uint64_t chunk_size) {
  return chunk_size == 0 ? 0 : (size + chunk_size - 1) / chunk_size;
}

uint64_t chunk_length(uint64_t size, uint64_t chunk_size, uint64_t i) {
  uint64_t off = i * chunk_size;
  if (off >= size) return 0;
  return std::min(chunk_size, size - off);
}

std::vector<bool> chunks_touched(uint64_t size, uint64_t chunk_size,
                                 const std::vector<Extent>& extents) {
  std::vector<bool> out(chunk_count(size, chunk_size), false);
  for (auto& e : extents) {
    if (e.length == 0 || e.offset >= size) continue;
    uint64_t end = std::min(size, e.offset + std::min(e.length, size - e.offset));
    for (uint64_t c = e.offset / chunk_size; c * chunk_size < end; ++c) out[c] = true;
  }
  return out;
}

bool all_zero(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  // Word-wise on the aligned middle; byte-wise at the edges.
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) % sizeof(uint64_t)) != 0) {
    if (*p++) return false;
    --n;
  }
  while (n >= sizeof(uint64_t)) {
    uint64_t w;
    std::memcpy(&w, p, sizeof w);
    if (w) return false;
    p += sizeof w;
    n -= sizeof w;
  }
  while (n-- > 0)
    if (*p++) return false;
  return true;
}

nlohmann::json to_json(const DiskIndex& idx) {
  return {{"version", 1},
          {"disk", idx.disk},
          {"size", idx.size},
          {"chunk_size", idx.chunk_size},
          {"chunks", idx.chunks}};
}

Result<DiskIndex> parse_index(const nlohmann::json& j) {
  if (!j.is_object()) return invalid_argument("index", "not an object");
  auto num = [&](const char* k) -> Result<uint64_t> {
    auto it = j.find(k);
    if (it == j.end() || !it->is_number_integer() ||
        (!it->is_number_unsigned() && it->get<int64_t>() < 0))
      return invalid_argument(std::string("index.") + k, "missing or not a non-negative integer");
    return it->get<uint64_t>();
  };
  auto v = num("version");
  if (!v) return tl::unexpected(v.error());
  if (*v != 1) return invalid_argument("index.version", "unsupported version");
  DiskIndex idx;
  auto d = j.find("disk");
  if (d == j.end() || !d->is_string() || d->get<std::string>().empty())
    return invalid_argument("index.disk", "missing");
  idx.disk = d->get<std::string>();
  auto size = num("size");
  if (!size) return tl::unexpected(size.error());
  auto cs = num("chunk_size");
  if (!cs) return tl::unexpected(cs.error());
  if (*cs < (64u << 10) || (*cs & (*cs - 1)) != 0)
    return invalid_argument("index.chunk_size", "not a power of two of at least 64 KiB");
  idx.size = *size;
  idx.chunk_size = *cs;
  auto c = j.find("chunks");
  if (c == j.end() || !c->is_array()) return invalid_argument("index.chunks", "missing");
  if (c->size() != chunk_count(idx.size, idx.chunk_size))
    return invalid_argument("index.chunks", "wrong number of chunks for the size");
  idx.chunks.reserve(c->size());
  for (auto& e : *c) {
    if (!e.is_string()) return invalid_argument("index.chunks", "entry not a string");
    const auto& s = e.get_ref<const std::string&>();
    if (!s.empty() && !is_sha256_hex(s))
      return invalid_argument("index.chunks", "entry not a sha256 hex digest");
    idx.chunks.push_back(s);
  }
  return idx;
}

Status validate_backup_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return invalid_argument("id", "must be 1-64 characters");
  for (char ch : id)
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
      return invalid_argument("id", "only a-z, 0-9 and '-' allowed");
  if (id.front() == '-') return invalid_argument("id", "must start with a letter or digit");
  return {};
}

}  // namespace strata::backup
