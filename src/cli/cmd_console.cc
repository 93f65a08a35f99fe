// `strata vm console NAME`: interactive (raw TTY, Ctrl-] detaches), piped (stdin -> guest,
// guest -> stdout), --tail (print recent output and exit) and --until TEXT (exit 0 once
// the guest printed TEXT; with --timeout, for scripts and tests).
#include <unistd.h>

#include "context.h"
#include "strata/cli/console_client.h"
#include "strata/cli/parse.h"

namespace strata::cli {

namespace {

struct ConsoleFlags {
  std::string name;
  bool tail = false;
  uint64_t tail_bytes = 65536;
  std::string until;
  std::string timeout;
  bool no_input = false;
};

int run(Context& ctx, const ConsoleFlags& f) {
  ConsoleOptions o;
  if (!f.timeout.empty()) {
    auto t = parse_wait_timeout(f.timeout, "--timeout");
    if (!t) return ctx.usage_error(t.error());
    o.timeout = *t;
  }
  if (!f.until.empty()) o.until = f.until;
  if (f.tail && o.until)
    return ctx.usage_error(
        Error{ErrorCode::invalid_argument, "--tail and --until are exclusive", ""});
  ApiRequest req = build_console(f.name, f.tail_bytes);
  if (ctx.dry(req)) return 0;
  auto c = ctx.client();
  if (!c) return ctx.fail(c.error());

  bool interactive = ctx.io.stdin_tty && !f.tail && !o.until && !f.no_input;
  if (f.tail) o.idle_exit = std::chrono::milliseconds(500);
  if (!f.tail && !f.no_input) o.input_fd = ctx.io.stdin_fd;
  o.detach_key = interactive;
  auto write = ctx.io.write_console
                   ? ctx.io.write_console
                   : std::function<void(std::string_view)>(
                         [&ctx](std::string_view s) { ctx.io.out << s << std::flush; });
  if (interactive) ctx.io.err << "Connected to " << f.name << " (Ctrl-] to detach)\r\n";
  Result<ConsoleEnd> end = [&] {
    std::optional<RawTerminal> raw;
    if (interactive) raw.emplace(ctx.io.stdin_fd);
    return run_console(c->endpoint(), c->token(), req, o, write);
  }();
  if (!end) {
    if (end.error().code == ErrorCode::deadline_exceeded) {
      ctx.io.err << "\n";
      return ctx.fail(end.error());
    }
    return ctx.fail(end.error());
  }
  switch (*end) {
    case ConsoleEnd::detached:
      ctx.io.err << "\r\nDetached from " << f.name << "\n";
      break;
    case ConsoleEnd::matched:
      ctx.io.err << "\nstrata: saw '" << f.until << "'\n";
      break;
    case ConsoleEnd::server_closed:
      if (o.until) {
        ctx.io.err << "\n";
        return ctx.fail(Error{ErrorCode::unavailable,
                              "the console closed before '" + f.until + "' was seen", ""});
      }
      if (interactive) ctx.io.err << "\r\nConsole closed by the server\n";
      break;
    case ConsoleEnd::idle:
      break;
  }
  return 0;
}

}  // namespace

void add_console_command(CLI::App& vm, Context& ctx) {
  auto f = std::make_shared<ConsoleFlags>();
  CLI::App* c = vm.add_subcommand(
      "console",
      "Attach to a VM's serial console (Ctrl-] detaches). Without a TTY, stdin goes to the "
      "guest and its output to stdout");
  c->add_option("name", f->name, "VM name")->required();
  c->add_flag("--tail", f->tail, "Print the recent console output and exit");
  c->add_option("--tail-bytes", f->tail_bytes,
                "How much recent output the server sends first (65536)");
  c->add_option("--until", f->until, "Exit 0 as soon as the output contains TEXT")
      ->type_name("TEXT");
  c->add_option("--timeout", f->timeout, "End the session after this long (e.g. 60s); exit 1");
  c->add_flag("--no-input", f->no_input, "Do not send stdin to the guest");
  c->callback([&ctx, f] { ctx.action = [&ctx, f] { return run(ctx, *f); }; });
}

}  // namespace strata::cli
