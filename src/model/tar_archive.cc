// vm_import.h: the tar framing of import archives. Reads POSIX ustar and GNU headers
// (octal or base-256 sizes), pax "path"/"size" records; refuses links, devices, GNU long
// names and anything else an OVA does not hold. Writes plain ustar headers.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "strata/model/vm_import.h"

namespace strata::model {

namespace {

constexpr uint64_t kMaxMemberBytes = kMaxDiskBytes;  // no disk file is larger than a disk

tl::unexpected<Error> bad_member(size_t index, std::string_view what, std::string message) {
  return invalid_argument(fmt::format("archive.members[{}]{}", index, what), std::move(message));
}

std::string_view field(const std::array<unsigned char, 512>& b, size_t off, size_t len) {
  const char* p = reinterpret_cast<const char*>(b.data()) + off;
  size_t n = 0;
  while (n < len && p[n] != '\0') ++n;
  return {p, n};
}

std::optional<uint64_t> octal(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.remove_suffix(1);
  if (s.empty()) return 0;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '7') return std::nullopt;
    if (v > (UINT64_MAX >> 3)) return std::nullopt;
    v = v * 8 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

std::optional<uint64_t> size_field(const std::array<unsigned char, 512>& b) {
  if (b[124] & 0x80) {                        // GNU base-256: big-endian, first byte's high bit set
    if (b[124] != 0x80) return std::nullopt;  // negative or more than 88 bits
    uint64_t v = 0;
    for (size_t i = 125; i < 136; ++i) {
      if (v > (UINT64_MAX >> 8)) return std::nullopt;
      v = (v << 8) | b[i];
    }
    return v;
  }
  return octal(field(b, 124, 12));
}

}  // namespace

Status validate_member_name(std::string_view f, std::string_view name) {
  if (name.empty()) return invalid_argument(std::string(f), "the file name is empty");
  if (name.size() > 100)
    return invalid_argument(std::string(f), "the file name is longer than 100 bytes");
  if (name == "." || name == "..")
    return invalid_argument(std::string(f), "\"" + std::string(name) + "\" is not a file name");
  for (unsigned char c : name) {
    if (c == '/' || c == '\\')
      return invalid_argument(std::string(f),
                              "the file name holds a path separator; files of an OVA are at its "
                              "top level");
    if (c < 0x20 || c > 0x7e)
      return invalid_argument(std::string(f), "the file name holds a non-printable byte");
  }
  return {};
}

Result<TarHeader> parse_tar_header(const std::array<unsigned char, 512>& b, size_t index) {
  TarHeader h;
  if (std::all_of(b.begin(), b.end(), [](unsigned char c) { return c == 0; })) {
    h.kind = TarHeader::Kind::end;
    return h;
  }
  auto stored = octal(field(b, 148, 8));
  uint64_t sum = 0;
  for (size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : b[i];
  if (!stored || *stored != sum)
    return bad_member(index, "", "not a tar header (bad checksum): the body must be a tar archive");
  auto size = size_field(b);
  if (!size || *size > kMaxMemberBytes)
    return bad_member(index, ".size", "the member's size is not valid or too large");
  h.size = *size;
  std::string name(field(b, 0, 100));
  std::string_view magic = field(b, 257, 6);
  if (magic.rfind("ustar", 0) == 0) {
    std::string prefix(field(b, 345, 155));
    if (!prefix.empty()) name = prefix + "/" + name;
  }
  if (name.rfind("./", 0) == 0) name = name.substr(2);  // "tar -C dir ." writes ./name
  char type = static_cast<char>(b[156]);
  switch (type) {
    case '0':
    case '\0':
    case '7':  // contiguous file: a regular file for readers
      h.kind = TarHeader::Kind::file;
      break;
    case '5':
      h.kind = TarHeader::Kind::directory;
      if (h.size != 0) return bad_member(index, ".size", "a directory with data");
      return h;
    case 'x':
      h.kind = TarHeader::Kind::pax_local;
      if (h.size > 65536) return bad_member(index, ".size", "a pax header larger than 64 KiB");
      return h;
    case 'g':
      h.kind = TarHeader::Kind::pax_global;
      if (h.size > 65536) return bad_member(index, ".size", "a pax header larger than 64 KiB");
      return h;
    default:
      return bad_member(index, ".type",
                        fmt::format("member type '{}' (links, devices, GNU long names) is not "
                                    "allowed in an import archive",
                                    type >= 0x20 && type < 0x7f ? std::string(1, type) : "?"));
  }
  h.name = std::move(name);
  if (auto st = validate_member_name(fmt::format("archive.members[{}].name", index), h.name); !st)
    return tl::unexpected(st.error());
  return h;
}

Status apply_pax_records(std::string_view rec, TarHeader& next, size_t index) {
  while (!rec.empty()) {
    size_t sp = rec.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp > 20)
      return bad_member(index, ".pax", "malformed pax record");
    uint64_t len = 0;
    auto [p, ec] = std::from_chars(rec.data(), rec.data() + sp, len);
    if (ec != std::errc() || p != rec.data() + sp || len <= sp + 1 || len > rec.size() ||
        rec[len - 1] != '\n')
      return bad_member(index, ".pax", "malformed pax record");
    std::string_view kv = rec.substr(sp + 1, len - sp - 2);
    rec.remove_prefix(len);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) return bad_member(index, ".pax", "malformed pax record");
    std::string_view key = kv.substr(0, eq), value = kv.substr(eq + 1);
    if (key == "path") {
      std::string name(value);
      if (name.rfind("./", 0) == 0) name = name.substr(2);
      if (auto st = validate_member_name(fmt::format("archive.members[{}].name", index), name); !st)
        return st;
      next.name = std::move(name);
    } else if (key == "size") {
      uint64_t v = 0;
      auto [q, ec2] = std::from_chars(value.data(), value.data() + value.size(), v);
      if (ec2 != std::errc() || q != value.data() + value.size() || v > kMaxMemberBytes)
        return bad_member(index, ".size", "the pax size is not valid or too large");
      next.size = v;
    }
  }
  return {};
}

std::array<unsigned char, 512> make_tar_header(std::string_view name, uint64_t size) {
  std::array<unsigned char, 512> b{};
  std::memcpy(b.data(), name.data(), std::min<size_t>(name.size(), 100));
  auto put_octal = [&](size_t off, size_t len, uint64_t v) {
    std::string s = fmt::format("{:0{}o}", v, len - 1);
    std::memcpy(b.data() + off, s.data(), len - 1);
  };
  put_octal(100, 8, 0644);
  put_octal(108, 8, 0);
  put_octal(116, 8, 0);
  if (size < (1ull << 33)) {
    put_octal(124, 12, size);
  } else {
    b[124] = 0x80;
    for (size_t i = 0; i < 8; ++i) b[135 - i] = static_cast<unsigned char>(size >> (8 * i));
  }
  put_octal(136, 12, 0);
  b[156] = '0';
  std::memcpy(b.data() + 257, "ustar", 6);  // with its NUL
  b[263] = '0';
  b[264] = '0';
  std::memset(b.data() + 148, ' ', 8);
  uint64_t sum = 0;
  for (unsigned char c : b) sum += c;
  std::string s = fmt::format("{:06o}", sum);
  std::memcpy(b.data() + 148, s.data(), 6);
  b[154] = '\0';
  b[155] = ' ';
  return b;
}

std::string libvirt_disk_member(size_t index) { return fmt::format("disk-{}", index); }

}  // namespace strata::model
