// Global and per-address connection counting (see connection_limits.h).
#include "strata/manager/api/connection_limits.h"

namespace strata::manager {

ConnectionLimits::Ticket::~Ticket() { owner_.release(address_); }

ConnectionLimits::ConnectionLimits(int max_total, int max_per_address)
    : max_total_(max_total), max_per_address_(max_per_address) {}

ConnectionLimits::TicketPtr ConnectionLimits::acquire(const std::string& address) {
  std::lock_guard lock(mu_);
  if (total_ >= max_total_) return nullptr;
  int& from = per_address_[address];
  if (from >= max_per_address_) {
    if (from == 0) per_address_.erase(address);
    return nullptr;
  }
  ++total_;
  ++from;
  return std::make_unique<Ticket>(*this, address);
}

void ConnectionLimits::release(const std::string& address) {
  std::lock_guard lock(mu_);
  --total_;
  auto it = per_address_.find(address);
  if (it != per_address_.end() && --it->second <= 0) per_address_.erase(it);
}

int ConnectionLimits::open() const {
  std::lock_guard lock(mu_);
  return total_;
}

int ConnectionLimits::open_from(const std::string& address) const {
  std::lock_guard lock(mu_);
  auto it = per_address_.find(address);
  return it == per_address_.end() ? 0 : it->second;
}

}  // namespace strata::manager
