// Console hub, log rotation and tail (see console.h).
#include "console.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "vm_dir.h"

namespace strata::agent::qemu {
namespace {

class HubSubscription final : public ConsoleSubscription {
 public:
  HubSubscription(std::weak_ptr<ConsoleHub::Subscribers> subs,
                  std::shared_ptr<ConsoleHub::Subscriber> me)
      : subs_(std::move(subs)), me_(std::move(me)) {}
  ~HubSubscription() override {
    {
      std::lock_guard lk(me_->mu);  // waits for a callback running on another thread
      me_->active = false;
    }
    if (auto s = subs_.lock()) {
      std::lock_guard lk(s->mu);
      std::erase(s->list, me_);
    }
  }

 private:
  std::weak_ptr<ConsoleHub::Subscribers> subs_;
  std::shared_ptr<ConsoleHub::Subscriber> me_;
};

Result<std::string> read_range(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::string();
  in.seekg(0, std::ios::end);
  auto size = static_cast<size_t>(in.tellg());
  size_t n = std::min(size, max_bytes);
  in.seekg(static_cast<std::streamoff>(size - n));
  std::string out(n, '\0');
  in.read(out.data(), static_cast<std::streamsize>(n));
  out.resize(static_cast<size_t>(in.gcount()));
  return out;
}

}  // namespace

Result<std::unique_ptr<ConsoleHub>> ConsoleHub::connect(const std::string& socket_path,
                                                        std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto fd = connect_unix(socket_path);
    if (fd) return std::unique_ptr<ConsoleHub>(new ConsoleHub(std::move(*fd)));
    if (fd.error().code != ErrorCode::unavailable || std::chrono::steady_clock::now() >= deadline)
      return tl::unexpected(fd.error());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

ConsoleHub::ConsoleHub(Fd fd) : fd_(std::move(fd)) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0) {
    wake_[0].reset(p[0]);
    wake_[1].reset(p[1]);
  }
  reader_ = std::thread([this] { reader_loop(); });
}

ConsoleHub::~ConsoleHub() {
  if (wake_[1]) {
    char b = 1;
    [[maybe_unused]] auto n = ::write(wake_[1].get(), &b, 1);
  }
  if (reader_.joinable()) reader_.join();
}

void ConsoleHub::reader_loop() {
  char buf[16384];
  for (;;) {
    pollfd p[2] = {{fd_.get(), POLLIN, 0}, {wake_[0].get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents) break;
    ssize_t n = ::read(fd_.get(), buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
    std::vector<std::shared_ptr<Subscriber>> list;
    {
      std::lock_guard lk(subs_->mu);
      list = subs_->list;
    }
    std::string_view data(buf, static_cast<size_t>(n));
    for (auto& s : list) {
      std::lock_guard lk(s->mu);
      if (s->active && s->on_data) s->on_data(data);
    }
  }
  std::lock_guard lk(subs_->mu);
  subs_->closed = true;
}

ConsoleSubscriptionPtr ConsoleHub::subscribe(std::function<void(std::string_view)> on_data) {
  auto me = std::make_shared<Subscriber>();
  me->on_data = std::move(on_data);
  {
    std::lock_guard lk(subs_->mu);
    subs_->list.push_back(me);
  }
  return std::make_unique<HubSubscription>(subs_, me);
}

Status ConsoleHub::write(std::string_view data) {
  if (closed()) return unavailable("console connection closed");
  std::lock_guard lk(write_mu_);
  return write_all(fd_.get(), data, std::chrono::seconds(5));
}

bool ConsoleHub::closed() const {
  std::lock_guard lk(subs_->mu);
  return subs_->closed;
}

Result<bool> rotate_console_log(const std::string& log_path, size_t max_bytes) {
  struct stat st {};
  if (::stat(log_path.c_str(), &st) != 0) return false;
  if (static_cast<size_t>(st.st_size) <= max_bytes) return false;
  auto all = read_range(log_path, static_cast<size_t>(st.st_size));
  if (!all) return tl::unexpected(all.error());
  if (auto s = write_file_atomic(log_path + ".1", *all, kVmFileMode); !s)
    return tl::unexpected(s.error());
  if (::truncate(log_path.c_str(), 0) != 0)
    return internal_error("truncate " + log_path + ": " + std::strerror(errno));
  return true;
}

Result<std::string> read_console_tail(const std::string& log_path, size_t max_bytes) {
  auto cur = read_range(log_path, max_bytes);
  if (!cur) return cur;
  if (cur->size() >= max_bytes) return cur;
  auto old = read_range(log_path + ".1", max_bytes - cur->size());
  if (!old) return cur;
  return *old + *cur;
}

}  // namespace strata::agent::qemu
