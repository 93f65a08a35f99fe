// Request-id LRU with an append-only JSON-lines file: one line per remembered outcome,
// rewritten (compacted to the live entries) when the file holds twice the capacity.
#include "strata/agent/service/request_log.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "strata/common/atomic_file.h"

namespace strata::agent::service {

namespace {

std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return out;
}

nlohmann::json record_to_json(const std::string& id, const RequestRecord& r) {
  return {{"id", id},
          {"method", r.method},
          {"fingerprint", r.fingerprint},
          {"code", r.outcome.status_code},
          {"message", to_hex(r.outcome.message)},
          {"details", to_hex(r.outcome.details)},
          {"response", to_hex(r.outcome.response)}};
}

std::optional<std::pair<std::string, RequestRecord>> record_from_line(const std::string& line) {
  try {
    auto j = nlohmann::json::parse(line);
    RequestRecord r;
    r.method = j.at("method").get<std::string>();
    r.fingerprint = j.at("fingerprint").get<std::string>();
    r.outcome.status_code = j.at("code").get<int>();
    auto msg = from_hex(j.at("message").get<std::string>());
    auto det = from_hex(j.at("details").get<std::string>());
    auto resp = from_hex(j.at("response").get<std::string>());
    if (!msg || !det || !resp) return std::nullopt;
    r.outcome.message = std::move(*msg);
    r.outcome.details = std::move(*det);
    r.outcome.response = std::move(*resp);
    return std::make_pair(j.at("id").get<std::string>(), std::move(r));
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

Status write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return internal_error(fmt::format("write request log: {}", std::strerror(errno)));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

}  // namespace

Status validate_request_id(std::string_view id) {
  if (id.empty()) return invalid_argument("request_id", "required");
  if (id.size() > 128) return invalid_argument("request_id", "longer than 128 characters");
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return invalid_argument("request_id", "allowed characters are [A-Za-z0-9._:-]");
  }
  return {};
}

std::string fingerprint(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return fmt::format("{:016x}", h);
}

RequestLog::RequestLog(std::string path, size_t capacity)
    : path_(std::move(path)), capacity_(capacity == 0 ? 1 : capacity) {}

RequestLog::~RequestLog() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<RequestLog>> RequestLog::open(std::string path, size_t capacity) {
  auto log = std::make_unique<RequestLog>(std::move(path), capacity);
  if (auto st = log->load(); !st) return tl::unexpected(st.error());
  return log;
}

Status RequestLog::load() {
  if (path_.empty()) return {};
  {
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
      auto rec = record_from_line(line);
      if (!rec) continue;  // torn write at the end of a crash; the rest is intact
      insert_locked(rec->first, std::move(rec->second));
    }
  }
  // Start from a compact file: bounds its size and drops a torn last line.
  std::lock_guard lock(mu_);
  return compact_locked();
}

void RequestLog::insert_locked(const std::string& id, RequestRecord record) {
  if (auto it = index_.find(id); it != index_.end()) {
    order_.erase(it->second);
    index_.erase(it);
  }
  order_.emplace_front(id, std::move(record));
  index_[id] = order_.begin();
  while (order_.size() > capacity_) {
    index_.erase(order_.back().first);
    order_.pop_back();
  }
}

Status RequestLog::compact_locked() {
  if (path_.empty()) return {};
  std::string tmp = path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return internal_error(fmt::format("open {}: {}", tmp, std::strerror(errno)));
  std::string data;
  // Oldest first, so replaying the file rebuilds the same LRU order.
  for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
    data += record_to_json(it->first, it->second).dump();
    data += '\n';
  }
  auto st = write_all(fd, data);
  if (st && ::fsync(fd) != 0) st = internal_error(fmt::format("fsync {}", tmp));
  if (::close(fd) != 0 && st) st = internal_error(fmt::format("close {}", tmp));
  if (!st) {
    ::unlink(tmp.c_str());
    return st;
  }
  // The folder too: every id remembered from here on is appended to the new file, and a
  // crash that brought back the old name would lose them all.
  if (auto renamed = rename_durable(tmp, path_); !renamed) return renamed;
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) return internal_error(fmt::format("open {}: {}", path_, std::strerror(errno)));
  lines_in_file_ = order_.size();
  return {};
}

Status RequestLog::append_line(const std::string& id, const RequestRecord& record) {
  if (path_.empty()) return {};
  if (lines_in_file_ + 1 > 2 * capacity_) return compact_locked();
  auto st = write_all(fd_, record_to_json(id, record).dump() + "\n");
  if (!st) return st;
  if (::fdatasync(fd_) != 0) return internal_error(fmt::format("fdatasync {}", path_));
  ++lines_in_file_;
  return {};
}

std::optional<RequestRecord> RequestLog::begin(const std::string& id) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !in_flight_.contains(id); });
  if (auto it = index_.find(id); it != index_.end()) {
    // Touch: a repeated id stays remembered.
    order_.splice(order_.begin(), order_, it->second);
    return order_.front().second;
  }
  in_flight_.insert(id);
  return std::nullopt;
}

Status RequestLog::finish(const std::string& id, RequestRecord record) {
  Status st;
  {
    std::lock_guard lock(mu_);
    in_flight_.erase(id);
    insert_locked(id, record);
    // insert_locked may have evicted; when compacting, the new record is already in order_.
    if (!path_.empty() && lines_in_file_ + 1 > 2 * capacity_) {
      st = compact_locked();
    } else {
      st = append_line(id, record);
    }
  }
  cv_.notify_all();
  return st;
}

void RequestLog::abandon(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    in_flight_.erase(id);
  }
  cv_.notify_all();
}

size_t RequestLog::size() const {
  std::lock_guard lock(mu_);
  return order_.size();
}

std::optional<RequestRecord> RequestLog::peek(const std::string& id) const {
  std::lock_guard lock(mu_);
  if (auto it = index_.find(id); it != index_.end()) return it->second->second;
  return std::nullopt;
}

}  // namespace strata::agent::service
