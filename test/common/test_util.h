// Small helpers the tests share (one definition: test files of one binary may be compiled
// together, in a unity build, so each helper lives here once).
#pragma once

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace strata::test {

// Real-time bound for "the other thread got there": a hang guard, not a timing assertion.
// Polls `pred` every millisecond until it holds or `limit` has passed; returns its last value.
template <typename F>
bool eventually(F&& pred, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

// The whole file, or "" if it cannot be read.
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace strata::test
