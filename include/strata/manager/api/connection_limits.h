// Counts the HTTP server's open connections against a global cap and a per-client-address
// cap. A connection holds a ticket for its life; dropping the ticket frees its place.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace strata::manager {

class ConnectionLimits {
 public:
  // A place held by one connection; destroying it releases the place.
  class Ticket {
   public:
    // Made by acquire() only (a ticket made elsewhere would free a place it never held).
    Ticket(ConnectionLimits& owner, std::string address)
        : owner_(owner), address_(std::move(address)) {}
    ~Ticket();
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;

   private:
    ConnectionLimits& owner_;
    std::string address_;
  };
  using TicketPtr = std::unique_ptr<Ticket>;

  ConnectionLimits(int max_total, int max_per_address);
  ConnectionLimits(const ConnectionLimits&) = delete;
  ConnectionLimits& operator=(const ConnectionLimits&) = delete;

  // A ticket when one more connection from `address` fits under both caps; nullptr when
  // not (the caller answers 503).
  TicketPtr acquire(const std::string& address);

  int open() const;
  int open_from(const std::string& address) const;

 private:
  void release(const std::string& address);

  const int max_total_;
  const int max_per_address_;
  mutable std::mutex mu_;
  int total_ = 0;
  std::unordered_map<std::string, int> per_address_;  // only addresses with open connections
};

}  // namespace strata::manager
