// Talking to a guest's serial console through the Hypervisor interface: waiting for boot
// lines in the on-disk tail, and running shell commands with a live subscription.
// Commands end with a computed marker (`echo M-$((n+1))` prints `M-<n+1>`), so the text
// waited for never matches the guest's echo of the command itself.
// Header-only: integration tests include it directly.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "strata/agent/hypervisor.h"

namespace strata::integration {

using namespace std::chrono_literals;

// Polls console_tail until one of `any_of` appears; returns it, or "" after `limit`.
inline std::string wait_console_tail(agent::Hypervisor& hv, const std::string& vm,
                                     const std::vector<std::string>& any_of,
                                     std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto t = hv.console_tail(vm, 1 << 20)) {
      for (const auto& s : any_of)
        if (t->find(s) != std::string::npos) return s;
    }
    std::this_thread::sleep_for(250ms);
  }
  return "";
}

inline std::string console_text(agent::Hypervisor& hv, const std::string& vm) {
  auto t = hv.console_tail(vm, 1 << 20);
  return t ? *t : "(console_tail: " + t.error().to_string() + ")";
}

// Live console output of one VM, accumulated from console_subscribe.
class ConsoleCapture {
 public:
  Status attach(agent::Hypervisor& hv, const std::string& vm) {
    hv_ = &hv;
    vm_ = vm;
    auto sub = hv.console_subscribe(vm, [this](std::string_view d) {
      {
        std::lock_guard lk(mu_);
        text_.append(d);
      }
      cv_.notify_all();
    });
    if (!sub) return tl::unexpected(sub.error());
    sub_ = std::move(*sub);
    return {};
  }
  ~ConsoleCapture() { sub_.reset(); }  // stops callbacks before the members go

  std::string text() const {
    std::lock_guard lk(mu_);
    return text_;
  }
  size_t size() const {
    std::lock_guard lk(mu_);
    return text_.size();
  }
  // Waits until `needle` appears at or after byte `from`; returns its position or npos.
  size_t wait_for(const std::string& needle, size_t from, std::chrono::seconds limit) {
    std::unique_lock lk(mu_);
    size_t pos = std::string::npos;
    cv_.wait_for(lk, limit, [&] {
      pos = text_.find(needle, std::min(from, text_.size()));
      return pos != std::string::npos;
    });
    return pos;
  }

  // Writes `command` followed by a marker and waits for the marker; returns the output
  // from the write up to the marker, or nullopt on a write error or timeout.
  std::optional<std::string> run(const std::string& command, std::chrono::seconds limit) {
    int n = ++serial_;
    std::string marker = "DONE-" + std::to_string(n) + "-" + std::to_string(n + 1000);
    size_t from = size();
    auto w = hv_->console_write(vm_, command + "; echo DONE-" + std::to_string(n) + "-$((" +
                                         std::to_string(n + 999) + "+1))\n");
    if (!w) return std::nullopt;
    size_t at = wait_for(marker, from, limit);
    if (at == std::string::npos) return std::nullopt;
    return text().substr(from, at - from);
  }

  // Until the shell answers: the first lines written right after boot may be lost while
  // the shell (or getty) is still opening the tty, so this retries.
  bool wait_shell(std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (run("true", 5s)) return true;
    }
    return false;
  }

 private:
  agent::Hypervisor* hv_ = nullptr;
  std::string vm_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
  std::atomic<int> serial_{0};
  agent::ConsoleSubscriptionPtr sub_;
};

}  // namespace strata::integration
