// run_cli(): global options, the command tree, parsing, and the Context helpers every
// command uses (see app.h, context.h).
#include "strata/cli/app.h"

#include "context.h"
#include "strata/cli/config.h"
#include "strata/cli/parse.h"

namespace strata::cli {

using nlohmann::json;

namespace {
std::string host_header_for_hint(const Endpoint& ep) { return ep.host + ":" + ep.port; }
}  // namespace

OutputFormat Context::format() const {
  auto f = parse_output_format(output);
  return f ? *f : OutputFormat::table;
}

Result<HttpClient> Context::client() {
  ConfigInputs in;
  if (server_opt && server_opt->count()) in.flag_server = server_flag;
  if (token_opt && token_opt->count()) in.flag_token = token_flag;
  if (ca_file_opt && ca_file_opt->count()) in.flag_ca_file = ca_file_flag;
  in.env = io.env ? io.env : real_env;
  in.read_file = io.read_file ? io.read_file : real_read_file;
  if (!io.read_file) in.read_secret = real_read_secret;
  auto cfg = resolve_config(in);
  if (!cfg) return tl::unexpected(cfg.error());
  auto ep = parse_server_url(cfg->server);
  if (!ep) return tl::unexpected(ep.error());
  ep->ca_file = cfg->ca_file;
  return HttpClient(*ep, cfg->token);
}

int Context::fail(const Error& e) {
  io.err << format_error(e) << "\n";
  if (e.code == ErrorCode::unavailable && e.message.rfind("cannot connect", 0) == 0) {
    auto ep = client();
    if (ep)
      io.err << "hint: is stratad running at " << (ep->endpoint().tls ? "https://" : "http://")
             << host_header_for_hint(ep->endpoint())
             << "? (set --server, STRATA_SERVER or the config file)\n";
  }
  return to_int(exit_code_for(e));
}

int Context::usage_error(const Error& e) {
  io.err << "error: " << e.message << "\n";
  return to_int(ExitCode::usage);
}

bool Context::dry(const ApiRequest& req) {
  if (!dry_run) return false;
  io.out << req.method << " " << req.target << "\n";
  if (req.body) io.out << body_text(req, 2) << "\n";
  return true;
}

int Context::show(const ApiRequest& req, const Columns& columns, const std::string& items_key) {
  if (dry(req)) return 0;
  auto c = client();
  if (!c) return fail(c.error());
  auto body = c->call(req);
  if (!body) return fail(body.error());
  json value = *body;
  if (!items_key.empty() && body->is_object() && body->contains(items_key))
    value = (*body)[items_key];
  io.out << render(value, format(), columns);
  return 0;
}

Result<json> Context::wait(HttpClient& c, const std::string& task_id,
                           std::chrono::milliseconds timeout) {
  ProgressView view(io.err, io.stderr_tty);
  WaitOptions o;
  o.timeout = timeout;
  return wait_task(c, task_id, view, o);
}

int Context::act(const ApiRequest& req, const std::string& what, bool wait_for,
                 std::chrono::milliseconds wait_timeout) {
  if (dry(req)) return 0;
  auto c = client();
  if (!c) return fail(c.error());
  auto body = c->call(req);
  if (!body) return fail(body.error());
  std::string task_id;
  if (body->contains("task") && (*body)["task"].is_object())
    task_id = (*body)["task"].value("id", "");
  if (format() != OutputFormat::table && !wait_for) {
    io.out << render(*body, format());
    return 0;
  }
  if (format() == OutputFormat::table)
    io.err << what << (task_id.empty() ? "" : " (task " + task_id + ")") << "\n";
  if (!wait_for || task_id.empty()) {
    if (format() != OutputFormat::table) io.out << render(*body, format());
    return 0;
  }
  auto task = wait(*c, task_id, wait_timeout);
  if (!task) return fail(task.error());
  if (format() != OutputFormat::table) io.out << render(*task, format());
  return 0;
}

Result<std::chrono::milliseconds> parse_wait_timeout(const std::string& text,
                                                     const std::string& flag) {
  auto s = parse_duration_s(text, flag);
  if (!s) return tl::unexpected(s.error());
  return std::chrono::milliseconds(*s * 1000);
}

void build_app(CLI::App& root, Context& ctx) {
  root.description("strata: manage the Strata virtualization platform (talks to stratad)");
  root.fallthrough();  // global options may follow subcommands: `strata vm list -o json`
  root.require_subcommand(1);
  root.set_help_all_flag("--help-all", "Show help for every command");
  ctx.server_opt = root.add_option(
      "--server", ctx.server_flag,
      "stratad URL (env STRATA_SERVER, config file; default " + std::string(kDefaultServer) + ")");
  ctx.token_opt = root.add_option("--token", ctx.token_flag,
                                  "API token (env STRATA_TOKEN or STRATA_TOKEN_FILE, config file)");
  ctx.ca_file_opt = root.add_option(
      "--ca-file", ctx.ca_file_flag,
      "PEM CA certificate(s) that verify an https:// server (env STRATA_CA_FILE, config file "
      "ca_file; default: the system trust store). stratad's own CA is DATA_DIR/pki/ca.crt");
  root.add_option("-o,--output", ctx.output, "Output format: table, json or yaml")
      ->check(CLI::IsMember({"table", "json", "yaml"}));
  root.add_flag("--dry-run", ctx.dry_run,
                "Print the request that would be sent (method, path, JSON body) and exit");
  root.footer(
      "Config: $STRATA_CONFIG or ~/.config/strata/config.json = {\"server\": ..., \"token\": "
      "..., \"ca_file\": ...}.\n"
      "https:// servers are always verified: their certificate must chain to a trusted CA and\n"
      "name the host in the URL; http:// only where stratad was asked to serve plain HTTP.\n"
      "Precedence: flag > environment > config file > default.\n"
      "Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 conflict, 5 unauthorized/forbidden,\n"
      "6 unavailable, 7 invalid input rejected by the server.");
  add_vm_commands(root, ctx);
  add_host_image_commands(root, ctx);
  add_backup_commands(root, ctx);
  add_misc_commands(root, ctx);
}

int run_cli(const std::vector<std::string>& args, CliIo& io) {
  Context ctx(io);
  CLI::App root{"", args.empty() ? "strata" : args[0]};
  build_app(root, ctx);
  std::vector<std::string> rev(args.rbegin(), args.rend());
  if (!rev.empty()) rev.pop_back();  // program name
  try {
    root.parse(rev);
  } catch (const CLI::CallForHelp& e) {
    io.out << root.help();
    return 0;
  } catch (const CLI::CallForAllHelp& e) {
    io.out << root.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return 0;
    // CLI11 reports the failing subcommand in the message; point at --help for details.
    io.err << "error: " << e.what() << "\n";
    io.err << "run with --help for usage\n";
    return to_int(ExitCode::usage);
  }
  if (!ctx.action) {
    io.err << "error: no command given\n" << root.help();
    return to_int(ExitCode::usage);
  }
  return ctx.action();
}

}  // namespace strata::cli
