// Progress bars/lines and the task wait loop (see progress.h).
#include "strata/cli/progress.h"

#include <algorithm>
#include <thread>

#include "strata/cli/parse.h"
#include "strata/cli/requests.h"

namespace strata::cli {

std::string render_bar(int percent, int width, const std::string& message) {
  percent = std::clamp(percent, 0, 100);
  int filled = width * percent / 100;
  std::string out = "[" + std::string(static_cast<size_t>(filled), '#') +
                    std::string(static_cast<size_t>(width - filled), '.') + "] ";
  std::string pct = std::to_string(percent) + "%";
  out += std::string(4 - std::min<size_t>(4, pct.size()), ' ') + pct;
  if (!message.empty()) out += " " + message;
  return out;
}

void ProgressView::update(int percent, const std::string& message) {
  if (percent == last_percent_ && message == last_message_) return;
  last_percent_ = percent;
  last_message_ = message;
  if (tty_) {
    std::string line = render_bar(percent, 30, message);
    if (line.size() > 100) line.resize(100);
    out_ << "\r\x1b[K" << line << std::flush;  // \x1b[K: clear to end of line
    drawn_ = true;
  } else {
    out_ << std::clamp(percent, 0, 100) << "%" << (message.empty() ? "" : " " + message) << "\n"
         << std::flush;
  }
}

void ProgressView::finish() {
  if (tty_ && drawn_) out_ << "\n" << std::flush;
  drawn_ = false;
}

void show_transfer(ProgressView& view, uint64_t sent, uint64_t total) {
  int pct = total == 0 ? 100 : static_cast<int>(sent * 100 / total);
  // Plain output only every 10% to keep logs short.
  view.update(pct, format_bytes(sent) + "/" + format_bytes(total));
}

Result<nlohmann::json> wait_task(HttpClient& client, const std::string& task_id, ProgressView& view,
                                 const WaitOptions& options) {
  auto deadline = std::chrono::steady_clock::now() + options.timeout;
  while (true) {
    auto task = client.call(build_task_get(task_id));
    if (!task) return task;
    std::string state = task->value("state", "");
    int progress = task->contains("progress") && (*task)["progress"].is_number()
                       ? (*task)["progress"].get<int>()
                       : 0;
    std::string message = task->value("message", "");
    if (state == "succeeded") {
      view.update(100, message.empty() ? "done" : message);
      view.finish();
      return task;
    }
    view.update(progress, state + (message.empty() ? "" : ": " + message));
    if (state == "failed") {
      view.finish();
      return internal_error("task " + task_id + " (" + task->value("kind", "?") + ") failed" +
                            (message.empty() ? "" : ": " + message));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      view.finish();
      return make_error(ErrorCode::deadline_exceeded,
                        "gave up waiting for task " + task_id + " (state " + state +
                            "); check later with: strata task wait " + task_id);
    }
    std::this_thread::sleep_for(options.poll_interval);
  }
}

}  // namespace strata::cli
