// `strata task`, `events`, `token`, `join-token`, `completion` and `version`.
#include "context.h"
#include "strata/cli/parse.h"
#include "strata/cli/requests.h"

#include <fmt/format.h>

#ifndef STRATA_VERSION
#define STRATA_VERSION "0.0.0"
#endif

namespace strata::cli {

using nlohmann::json;

namespace {

void add_task_commands(CLI::App& root, Context& ctx) {
  CLI::App* task = root.add_subcommand("task", "Tasks (the progress of asynchronous actions)");
  task->require_subcommand(1);
  auto id = std::make_shared<std::string>();
  CLI::App* show = task->add_subcommand("show", "Show a task");
  show->alias("get");
  show->add_option("id", *id, "Task id")->required();
  show->callback([&ctx, id] { ctx.action = [&ctx, id] { return ctx.show(build_task_get(*id)); }; });

  auto wid = std::make_shared<std::string>();
  auto timeout = std::make_shared<std::string>("10m");
  CLI::App* wait = task->add_subcommand("wait", "Wait for a task to end (progress bar on a TTY)");
  wait->add_option("id", *wid, "Task id")->required();
  wait->add_option("--timeout", *timeout, "Give up after this long (10m)");
  wait->callback([&ctx, wid, timeout] {
    ctx.action = [&ctx, wid, timeout] {
      auto t = parse_wait_timeout(*timeout, "--timeout");
      if (!t) return ctx.usage_error(t.error());
      if (ctx.dry(build_task_get(*wid))) return 0;
      auto c = ctx.client();
      if (!c) return ctx.fail(c.error());
      auto task = ctx.wait(*c, *wid, *t);
      if (!task) return ctx.fail(task.error());
      if (ctx.format() == OutputFormat::table)
        ctx.io.out << "task " << *wid << " succeeded"
                   << "\n";
      else
        ctx.io.out << render(*task, ctx.format());
      return 0;
    };
  });
}

void print_event(Context& ctx, const json& e, bool& header_done) {
  switch (ctx.format()) {
    case OutputFormat::json:
      ctx.io.out << e.dump() << "\n";
      break;  // JSON lines
    case OutputFormat::yaml:
      ctx.io.out << "---\n" << to_yaml(e);
      break;
    case OutputFormat::table: {
      std::string line;
      Columns cols = event_columns();
      if (!header_done) {
        for (const auto& c : cols) line += (line.empty() ? "" : "  ") + c.header;
        ctx.io.out << line << "\n";
        line.clear();
        header_done = true;
      }
      for (const auto& c : cols) line += (line.empty() ? "" : "  ") + c.cell(e);
      ctx.io.out << line << "\n";
    }
  }
  ctx.io.out << std::flush;
}

void add_events_command(CLI::App& root, Context& ctx) {
  struct Flags {
    bool follow = false;
    int64_t after = -1;
    int limit = 100;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* ev = root.add_subcommand("events", "The event and audit log");
  ev->add_flag("--follow,-f", f->follow, "Keep streaming new events (server-sent events)");
  ev->add_option("--after", f->after, "Only events after this sequence number")
      ->check(CLI::NonNegativeNumber);
  ev->add_option("--limit", f->limit, "At most this many events (without --follow)")
      ->check(CLI::Range(1, 10000));
  ev->callback([&ctx, f] {
    ctx.action = [&ctx, f] {
      std::optional<int64_t> after;
      if (f->after >= 0) after = f->after;
      if (!f->follow)
        return ctx.show(build_events_list(after, f->limit), event_columns(), "events");
      ApiRequest req = build_events_stream(after);
      if (ctx.dry(req)) return 0;
      auto c = ctx.client();
      if (!c) return ctx.fail(c.error());
      bool header = false;
      auto st = c->stream_events(req, [&](const SseEvent& e) {
        auto j = json::parse(e.data, nullptr, false);
        if (j.is_discarded()) j = json{{"seq", e.id}, {"action", e.event}, {"message", e.data}};
        print_event(ctx, j, header);
        return true;
      });
      if (!st) return ctx.fail(st.error());
      return 0;
    };
  });
}

void add_token_commands(CLI::App& root, Context& ctx) {
  CLI::App* token = root.add_subcommand("token", "API tokens (admin)");
  token->require_subcommand(1);
  struct Flags {
    std::string name, role, ttl;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* create = token->add_subcommand("create", "Create an API token (shown once)");
  create->add_option("name", f->name, "Token name (who or what uses it)")->required();
  create->add_option("--role", f->role, "admin | operator | viewer")
      ->required()
      ->check(CLI::IsMember({"admin", "operator", "viewer"}));
  create->add_option("--ttl", f->ttl, "Lifetime, e.g. 24h, 7d (default: no expiry)");
  create->callback([&ctx, f] {
    ctx.action = [&ctx, f] {
      auto req = build_token_create(f->name, f->role, f->ttl);
      if (!req) return ctx.usage_error(req.error());
      if (ctx.format() == OutputFormat::table)
        ctx.io.err << "the token is shown only once: store it now\n";
      return ctx.show(*req);
    };
  });
  CLI::App* list = token->add_subcommand("list", "List API tokens (never their secrets)");
  list->callback([&ctx] {
    ctx.action = [&ctx] {
      return ctx.show(ApiRequest{"GET", "/api/v1/tokens", std::nullopt}, token_columns(), "tokens");
    };
  });
  auto token_id = std::make_shared<std::string>();
  CLI::App* tdel = token->add_subcommand("delete", "Delete (revoke) an API token");
  tdel->add_option("id", *token_id, "Token id (from `strata token list`)")->required();
  tdel->callback([&ctx, token_id] {
    ctx.action = [&ctx, token_id] { return ctx.show(build_token_delete(*token_id)); };
  });

  CLI::App* join = root.add_subcommand("join-token", "One-time tokens that let a host enroll");
  join->require_subcommand(1);
  auto ttl = std::make_shared<std::string>();
  CLI::App* jc = join->add_subcommand("create", "Create a join token for `strata-agent serve --join-token`");
  jc->add_option("--ttl", *ttl, "Lifetime, e.g. 30m, 24h (default 1h, at most 7d)");
  auto count = std::make_shared<int>(0);
  jc->add_option("--count", *count,
                 "Make N tokens at once, one per host (1..10000; `-o json` for scripts)");
  jc->callback([&ctx, ttl, count] {
    ctx.action = [&ctx, ttl, count] {
      auto req = build_join_token_create(*ttl, *count);
      if (!req) return ctx.usage_error(req.error());
      if (*count == 0) return ctx.show(*req);
      return ctx.show(*req, join_token_secret_columns(), "join_tokens");
    };
  });
  CLI::App* jl = join->add_subcommand("list", "List join tokens (never their secrets)");
  jl->callback([&ctx] {
    ctx.action = [&ctx] {
      return ctx.show(build_join_token_list(), join_token_columns(), "join_tokens");
    };
  });
  auto join_id = std::make_shared<std::string>();
  CLI::App* jd = join->add_subcommand(
      "delete", "Revoke a join token: a host can no longer enroll with it");
  jd->add_option("id", *join_id, "Join token id (from `strata join-token list`)")->required();
  jd->callback([&ctx, join_id] {
    ctx.action = [&ctx, join_id] { return ctx.show(build_join_token_delete(*join_id)); };
  });
}

void add_version_and_completion(CLI::App& root, Context& ctx) {
  auto client_only = std::make_shared<bool>(false);
  CLI::App* version = root.add_subcommand("version", "Client and server versions");
  version->add_flag("--client", *client_only, "Only the client version (no server call)");
  version->callback([&ctx, client_only] {
    ctx.action = [&ctx, client_only] {
      json out = {{"client", {{"version", STRATA_VERSION}}}};
      if (!*client_only && !ctx.dry(build_version())) {
        auto c = ctx.client();
        if (!c) return ctx.fail(c.error());
        auto v = c->call(build_version());
        if (!v) {
          ctx.io.out << "client: " << STRATA_VERSION << "\n";
          return ctx.fail(v.error());
        }
        out["server"] = *v;
      } else if (ctx.dry_run && !*client_only) {
        return 0;
      }
      if (ctx.format() != OutputFormat::table) {
        ctx.io.out << render(out, ctx.format());
      } else {
        ctx.io.out << "client: " << STRATA_VERSION << "\n";
        if (out.contains("server"))
          ctx.io.out << "server: " << out["server"].value("version", "?") << "\n";
      }
      return 0;
    };
  });

  CLI::App* completion = root.add_subcommand("completion", "Shell completion scripts");
  completion->require_subcommand(1);
  CLI::App* bash = completion->add_subcommand(
      "bash", "Print the bash completion script (source <(strata completion bash))");
  bash->callback([&ctx] {
    ctx.action = [&ctx] {
      ctx.io.out << bash_completion_script();
      return 0;
    };
  });
}

// `strata plan capacity --add N x SIZE` (or `--size SIZE`): how many more VMs of a size
// fit, where N of them would go, and what runs out first (POST /api/v1/plan/capacity).
// Exit 0 when all N fit (with --size: at least one), 1 otherwise.
void add_plan_capacity_command(CLI::App* plan, Context& ctx) {
  struct Flags {
    std::vector<std::string> add;
    std::string size;
    std::vector<std::string> selectors;
    std::string accelerator;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cap = plan->add_subcommand(
      "capacity", "How many more VMs of a size fit, where they would go, what runs out first");
  auto* add = cap->add_option("--add", f->add, "N x SIZE: e.g. '10 x 2c4G' (2 vCPUs, 4 GiB each)")
                  ->expected(1, 3);
  auto* size = cap->add_option("--size", f->size, "SIZE only (how many fit): e.g. 2c4G");
  add->excludes(size);
  cap->add_option("--selector", f->selectors, "Only hosts with label k=v (repeatable)");
  cap->add_option("--accelerator", f->accelerator, "Only hosts with this accelerator")
      ->check(CLI::IsMember({"kvm", "tcg", "any"}));
  cap->callback([&ctx, f] {
    ctx.action = [&ctx, f] {
      json body = json::object();
      if (!f->add.empty()) {
        std::string text;
        for (const auto& t : f->add) text += (text.empty() ? "" : " ") + t;
        auto n = parse_count_x_size(text, "--add");
        if (!n) return ctx.usage_error(n.error());
        body = {{"count", n->first}, {"vcpus", n->second.vcpus}, {"memory_mib", n->second.memory_mib}};
      } else if (!f->size.empty()) {
        auto s = parse_vm_size(f->size, "--size");
        if (!s) return ctx.usage_error(s.error());
        body = {{"vcpus", s->vcpus}, {"memory_mib", s->memory_mib}};
      } else {
        return ctx.usage_error(invalid_argument("--add", "give --add N x SIZE or --size SIZE").value());
      }
      if (!f->selectors.empty()) {
        auto sel = parse_key_values(f->selectors, "--selector");
        if (!sel) return ctx.usage_error(sel.error());
        body["node_selector"] = *sel;
      }
      if (!f->accelerator.empty()) body["accelerator"] = f->accelerator;
      ApiRequest req{"POST", "/api/v1/plan/capacity", body};
      if (ctx.dry(req)) return 0;
      auto c = ctx.client();
      if (!c) return ctx.fail(c.error());
      auto res = c->call(req);
      if (!res) return ctx.fail(res.error());
      if (ctx.format() != OutputFormat::table) {
        ctx.io.out << render(*res, ctx.format());
      } else {
        auto str = [](const json& j, const char* k) {
          return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
        };
        auto num = [](const json& j, const char* k) {
          return j.contains(k) && j[k].is_number() ? std::to_string(j[k].get<int64_t>())
                                                   : std::string();
        };
        ctx.io.out << str(*res, "summary") << "\n";
        if (!str(*res, "explanation").empty())
          ctx.io.out << "next one: " << str(*res, "explanation") << "\n";
        if (res->contains("hosts") && !(*res)["hosts"].empty())
          ctx.io.out << "\n"
                     << render_list((*res)["hosts"],
                                    {{"HOST", [&](const json& j) { return str(j, "host"); }},
                                     {"VMS", [&](const json& j) { return num(j, "vms"); }},
                                     {"FREE VCPUS", [&](const json& j) {
                                        return num(j, "free_vcpus_after");
                                      }},
                                     {"FREE MEMORY", [&](const json& j) {
                                        return j.contains("free_memory_mib_after") &&
                                                       j["free_memory_mib_after"].is_number()
                                                   ? format_bytes(static_cast<uint64_t>(std::max<int64_t>(
                                                                      0, j["free_memory_mib_after"].get<int64_t>())) << 20)
                                                   : std::string();
                                      }}});
      }
      return res->value("fits", false) ? 0 : 1;
    };
  });
}

}  // namespace

// `strata plan host-down HOST...`: what would happen to these hosts' VMs if the hosts were
// lost or drained (POST /api/v1/plan/host-down). Exit 0 when everything would move, 1 when
// some VM would not fit (scripts can gate a maintenance on it).
void add_plan_commands(CLI::App& root, Context& ctx) {
  CLI::App* plan = root.add_subcommand("plan", "What-if planning with the scheduler");
  plan->require_subcommand(1);
  struct Flags {
    std::vector<std::string> hosts;
    bool ha_only = false;
  };
  auto f = std::make_shared<Flags>();
  add_plan_capacity_command(plan, ctx);
  CLI::App* down = plan->add_subcommand(
      "host-down", "Which VMs would move where if these hosts were lost or drained, and why not");
  down->add_option("hosts", f->hosts, "Host names")->required();
  down->add_flag("--ha-only", f->ha_only, "Only HA VMs (what an HA restart would do)");
  down->callback([&ctx, f] {
    ctx.action = [&ctx, f] {
      ApiRequest req{"POST", "/api/v1/plan/host-down",
                     json{{"hosts", f->hosts}, {"ha_only", f->ha_only}}};
      if (ctx.dry(req)) return 0;
      auto c = ctx.client();
      if (!c) return ctx.fail(c.error());
      auto body = c->call(req);
      if (!body) return ctx.fail(body.error());
      if (ctx.format() != OutputFormat::table) {
        ctx.io.out << render(*body, ctx.format());
      } else {
        auto str = [](const json& j, const char* k) {
          return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
        };
        ctx.io.out << str(*body, "summary") << "\n";
        if (!(*body)["moves"].empty())
          ctx.io.out << "\n"
                     << render_list((*body)["moves"],
                                    {{"VM", [&](const json& j) { return str(j, "vm"); }},
                                     {"FROM", [&](const json& j) { return str(j, "from"); }},
                                     {"TO", [&](const json& j) { return str(j, "to"); }},
                                     {"HA", [](const json& j) {
                                        return j.value("ha", false) ? "yes" : "";
                                      }}});
        if (!(*body)["stays"].empty())
          ctx.io.out << "\nwould not move:\n"
                     << render_list((*body)["stays"],
                                    {{"VM", [&](const json& j) { return str(j, "vm"); }},
                                     {"FROM", [&](const json& j) { return str(j, "from"); }},
                                     {"WHY", [&](const json& j) { return str(j, "reason"); }}});
      }
      return body->value("fits", false) ? 0 : 1;
    };
  });
}

namespace {

std::string str_of(const json& j, const char* k) {
  return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
}

// The balance answer for people: the summary, the moves and what is held where it is.
void print_balance(Context& ctx, const json& b) {
  ctx.io.out << str_of(b, "summary") << " (mode " << str_of(b, "mode") << ", "
             << b.value("hosts", 0) << " hosts up)\n";
  if (b.contains("moves") && !b["moves"].empty())
    ctx.io.out << "\n"
               << render_list(
                      b["moves"],
                      {{"VM",
                        [](const json& j) {
                          std::string vm = str_of(j, "vm");
                          if (j.contains("together_with") && j["together_with"].is_array())
                            for (const auto& o : j["together_with"])
                              if (o.is_string()) vm += "+" + o.get<std::string>();
                          return vm;
                        }},
                       {"FROM", [](const json& j) { return str_of(j, "from"); }},
                       {"TO", [](const json& j) { return str_of(j, "to"); }},
                       {"MEMORY",
                        [](const json& j) {
                          return std::to_string(j.value("memory_mib", uint64_t{0})) + " MiB";
                        }},
                       {"IMBALANCE", [](const json& j) {
                          return fmt::format("{:.3f} -> {:.3f}", j.value("imbalance_before", 0.0),
                                             j.value("imbalance_after", 0.0));
                        }}});
  if (b.contains("started") && !b["started"].empty())
    ctx.io.out << "\nstarted:\n"
               << render_list(b["started"],
                              {{"VM", [](const json& j) { return str_of(j, "vm"); }},
                               {"TASK", [](const json& j) { return str_of(j, "task_id"); }}});
  if (b.contains("refused") && !b["refused"].empty())
    ctx.io.out << "\nrefused:\n"
               << render_list(b["refused"],
                              {{"VM", [](const json& j) { return str_of(j, "vm"); }},
                               {"WHY", [](const json& j) { return str_of(j, "reason"); }}});
}

}  // namespace

// `strata balance plan`: the moves the balancer proposes now and why (GET /api/v1/balance);
// `strata balance apply [--wait]`: start them (POST /api/v1/balance/apply). Exit 0; apply
// exits 1 when a move was refused or (with --wait) a migration failed.
void add_balance_commands(CLI::App& root, Context& ctx) {
  CLI::App* bal = root.add_subcommand("balance", "Load balancing: live migrations that even out the hosts");
  bal->require_subcommand(1);
  CLI::App* plan = bal->add_subcommand("plan", "The moves the balancer proposes now, and why");
  plan->callback([&ctx] {
    ctx.action = [&ctx] {
      ApiRequest req{"GET", "/api/v1/balance", std::nullopt};
      if (ctx.dry(req)) return 0;
      auto c = ctx.client();
      if (!c) return ctx.fail(c.error());
      auto body = c->call(req);
      if (!body) return ctx.fail(body.error());
      if (ctx.format() != OutputFormat::table) ctx.io.out << render(*body, ctx.format());
      else print_balance(ctx, *body);
      return 0;
    };
  });
  struct Flags {
    bool wait = false;
    std::string wait_timeout = "10m";
  };
  auto f = std::make_shared<Flags>();
  CLI::App* apply = bal->add_subcommand("apply", "Start the proposed moves as live migrations");
  apply->add_flag("--wait", f->wait, "Wait until every migration has ended");
  apply->add_option("--wait-timeout", f->wait_timeout,
                    "Give up waiting for a migration after this long (10m)");
  apply->callback([&ctx, f] {
    ctx.action = [&ctx, f] {
      auto timeout = parse_wait_timeout(f->wait_timeout, "--wait-timeout");
      if (!timeout) return ctx.usage_error(timeout.error());
      ApiRequest req{"POST", "/api/v1/balance/apply", json::object()};
      if (ctx.dry(req)) return 0;
      auto c = ctx.client();
      if (!c) return ctx.fail(c.error());
      auto body = c->call(req);
      if (!body) return ctx.fail(body.error());
      int rc = (*body)["refused"].empty() ? 0 : 1;
      if (ctx.format() != OutputFormat::table) ctx.io.out << render(*body, ctx.format());
      else print_balance(ctx, *body);
      if (!f->wait) return rc;
      for (const auto& s : (*body)["started"]) {
        auto done = ctx.wait(*c, str_of(s, "task_id"), *timeout);
        if (!done) {
          ctx.io.err << "migration of " << str_of(s, "vm") << ": " << done.error().message << "\n";
          rc = 1;
          continue;
        }
        if (ctx.format() == OutputFormat::table)
          ctx.io.out << str_of(s, "vm") << ": " << str_of(*done, "message") << "\n";
      }
      return rc;
    };
  });
}

void add_misc_commands(CLI::App& root, Context& ctx) {
  add_task_commands(root, ctx);
  add_plan_commands(root, ctx);
  add_balance_commands(root, ctx);
  add_events_command(root, ctx);
  add_token_commands(root, ctx);
  add_version_and_completion(root, ctx);
}

}  // namespace strata::cli
