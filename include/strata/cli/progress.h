// Progress display (a bar on a TTY, plain lines otherwise) and waiting for a task to end.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "strata/cli/http_client.h"
#include "strata/common/error.h"

namespace strata::cli {

// "[#########...........]  45% message" with `width` cells in the bar; percent clamped.
std::string render_bar(int percent, int width, const std::string& message);

// Writes progress to `out`: on a TTY redraws one line ("\r" + bar), otherwise prints a
// line only when the percentage or message changes.
class ProgressView {
 public:
  ProgressView(std::ostream& out, bool tty) : out_(out), tty_(tty) {}
  void update(int percent, const std::string& message);
  void finish();  // ends the redrawn line (TTY)

 private:
  std::ostream& out_;
  bool tty_;
  int last_percent_ = -1;
  std::string last_message_;
  bool drawn_ = false;
};

// "12.0M/100.0M" style upload progress through a ProgressView.
void show_transfer(ProgressView& view, uint64_t sent, uint64_t total);

struct WaitOptions {
  std::chrono::milliseconds poll_interval{500};
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
};

// Polls GET /api/v1/tasks/{id} until the task is succeeded or failed. Returns the final task
// on success; a failed task is Error{internal, "task ... failed: <message>"}; running out
// of time is Error{deadline_exceeded}.
Result<nlohmann::json> wait_task(HttpClient& client, const std::string& task_id, ProgressView& view,
                                 const WaitOptions& options);

}  // namespace strata::cli
