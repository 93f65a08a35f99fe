// Configuration and command-line values: the CLI's config file and token file
// (resolve_config), its value parsers (sizes, memory, durations, key=value, --disk, --nic),
// the request bodies it builds from them (dumped as the HTTP client sends them), and
// stratad's scheduler flags. The first line selects what the rest is.
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "strata/cli/config.h"
#include "strata/cli/parse.h"
#include "strata/cli/requests.h"
#include "strata/manager/scheduler_options.h"

using namespace strata;

namespace {

std::vector<std::string> lines(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    out.emplace_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

// What the CLI's HTTP client does with a request body.
void send(const Result<cli::ApiRequest>& r) {
  if (r) (void)cli::body_text(*r, (r->target.size() & 1) ? 2 : -1);
}

void resolve(std::string_view file, bool as_token_file) {
  cli::ConfigInputs in;
  std::string content(file);
  in.env = [&](const std::string& name) -> std::optional<std::string> {
    if (name == "STRATA_CONFIG") return std::string("/fuzz/config.json");
    if (name == "STRATA_TOKEN_FILE" && as_token_file) return std::string("/fuzz/token");
    return std::nullopt;
  };
  in.read_file = [&](const std::string& path) -> std::optional<std::string> {
    if (path == "/fuzz/token" || path == "/fuzz/config.json") {
      if (as_token_file && path == "/fuzz/config.json") return std::string("{}");
      return content;
    }
    return std::nullopt;
  };
  auto c = cli::resolve_config(in);
  if (c) FUZZ_CHECK(c->server.empty() || c->server.back() != '/');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view rest;
  size_t which = fuzz::select(fuzz::as_text(data, size),
                              {"config_file", "token_file", "size", "memory", "duration",
                               "key_value", "disk", "nic", "vm_create", "host_label",
                               "token_create", "scheduler"},
                              &rest);
  switch (which) {
    case 0: resolve(rest, false); break;
    case 1: resolve(rest, true); break;
    case 2:
      if (auto v = cli::parse_size(rest, "--size")) (void)cli::format_bytes(*v);
      break;
    case 3: (void)cli::parse_memory_mib(rest, "--memory"); break;
    case 4: (void)cli::parse_duration_s(rest, "--ttl"); break;
    case 5: (void)cli::parse_key_value(rest, "--label"); break;
    case 6:
      if (auto d = cli::parse_disk_spec(rest)) send(cli::ApiRequest{"POST", "/", *d});
      break;
    case 7:
      if (auto n = cli::parse_nic_spec(rest)) send(cli::ApiRequest{"POST", "/", *n});
      break;
    case 8: {
      // One value per line: name, vcpus, memory, image, kernel, initrd, cmdline, then
      // "disk=...", "nic=...", "label=...", "selector=..." lines.
      auto ls = lines(rest);
      ls.resize(std::max<size_t>(ls.size(), 7));
      cli::VmCreateOptions o;
      o.name = ls[0];
      o.vcpus = ls[1].empty() ? 0 : static_cast<unsigned char>(ls[1][0]);
      o.memory = ls[2];
      o.image = ls[3];
      o.kernel = ls[4];
      o.initrd = ls[5];
      o.cmdline = ls[6];
      for (size_t i = 7; i < ls.size(); ++i) {
        const std::string& l = ls[i];
        if (l.rfind("disk=", 0) == 0) o.disks.push_back(l.substr(5));
        else if (l.rfind("nic=", 0) == 0) o.nics.push_back(l.substr(4));
        else if (l.rfind("label=", 0) == 0) o.labels.push_back(l.substr(6));
        else if (l.rfind("selector=", 0) == 0) o.selectors.push_back(l.substr(9));
        else o.host = l;
      }
      send(cli::build_vm_create(o));
      break;
    }
    case 9: {
      auto ls = lines(rest);
      std::string name = ls[0];
      ls.erase(ls.begin());
      send(cli::build_host_label(name, ls));
      break;
    }
    case 10: {
      auto ls = lines(rest);
      ls.resize(std::max<size_t>(ls.size(), 3));
      send(cli::build_token_create(ls[0], ls[1], ls[2]));
      send(cli::build_join_token_create(ls[2]));
      break;
    }
    case 11: {
      static const char* kFlags[] = {"--cpu-overcommit", "--memory-overcommit", "--placement"};
      size_t nl = rest.find('\n');
      std::string_view flag = rest.substr(0, nl);
      std::string_view value = nl == std::string_view::npos ? "" : rest.substr(nl + 1);
      sched::SchedulerConfig cfg;
      std::string_view f = kFlags[flag.empty() ? 0 : static_cast<unsigned char>(flag[0]) % 3];
      if (manager::is_scheduler_flag(flag)) f = flag;
      if (manager::set_scheduler_option(cfg, f, value))
        FUZZ_CHECK(cfg.cpu_overcommit > 0 && cfg.mem_overcommit > 0 &&
                   cfg.cpu_overcommit <= manager::kMaxOvercommit &&
                   cfg.mem_overcommit <= manager::kMaxOvercommit);
      break;
    }
  }
  return 0;
}
