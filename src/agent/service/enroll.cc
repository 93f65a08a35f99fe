// Agent-side enrollment: key + CSR, the shared enrollment client, certificate checks, and
// the enrollment record in the state folder (see enroll.h).
#include "enroll.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "strata/common/log.h"
#include "strata/common/secret_file.h"
#include "strata/enroll/enroll_client.h"
#include "strata/pki/pki.h"

namespace strata::agent::cli {

namespace {

namespace fs = std::filesystem;

auto enroll_log() {
  static auto l = logger("enroll");
  return l;
}

std::string record_path(const std::string& state_dir) { return state_dir + "/enrollment.json"; }

bool is_unix(const std::string& address) { return address.rfind("unix:", 0) == 0; }

// The certificate the manager returned must be ours (our key), chain to the CA it sent,
// and name the address we advertised: anything else would fail later in a TLS handshake,
// with a far less clear message.
Status check_certificate(const enroll::EnrollReply& reply, const std::string& key_pem,
                         const std::string& advertise_host, const std::string& ca_fingerprint) {
  if (auto st = check_ca_fingerprint(reply.ca_cert_pem, ca_fingerprint); !st) return st;
  if (auto st = pki::verify_cert(reply.cert_pem, reply.ca_cert_pem); !st)
    return tl::unexpected(st.error().wrap("enroll: host certificate"));
  auto same = pki::cert_matches_key(reply.cert_pem, key_pem);
  if (!same) return tl::unexpected(same.error());
  if (!*same) return internal_error("enroll: the returned certificate is not for this host's key");
  auto info = pki::inspect_cert(reply.cert_pem);
  if (!info) return tl::unexpected(info.error());
  bool named = std::find(info->ip_addresses.begin(), info->ip_addresses.end(), advertise_host) !=
                   info->ip_addresses.end() ||
               std::find(info->dns_names.begin(), info->dns_names.end(), advertise_host) !=
                   info->dns_names.end();
  if (!named)
    return internal_error("enroll: the returned certificate does not name " + advertise_host);
  return {};
}

}  // namespace

Status check_ca_fingerprint(const std::string& ca_cert_pem, const std::string& expected) {
  if (expected.empty()) {
    enroll_log()->warn("enroll: trusting the manager's CA as sent (pin it with --ca-fingerprint)");
    return {};
  }
  auto got = pki::cert_fingerprint(ca_cert_pem);
  if (!got) return tl::unexpected(got.error().wrap("enroll: the manager's CA"));
  if (*got != expected)
    return make_error(ErrorCode::unauthenticated,
                      fmt::format("enroll: the manager's CA is {}, not the expected {} "
                                  "(--ca-fingerprint): refusing to trust it",
                                  *got, expected));
  return {};
}

Result<std::string> resolve_join_token(const std::string& token, const std::string& token_file,
                                       std::string* warning) {
  if (!token.empty() && !token_file.empty())
    return invalid_argument("join-token-file", "give --join-token or --join-token-file, not both");
  if (!token_file.empty()) return read_secret_file(token_file, "--join-token-file");
  if (!token.empty() && warning)
    *warning =
        "--join-token is visible to every local user (ps, /proc/PID/cmdline) until the agent "
        "exits; prefer --join-token-file FILE (mode 0600)";
  return token;
}

std::string tls_dir(const std::string& state_dir) { return state_dir + "/tls"; }

std::optional<nlohmann::json> load_enrollment(const std::string& state_dir,
                                              const std::string& manager_url) {
  std::ifstream in(record_path(state_dir));
  if (!in) return std::nullopt;
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("manager", "") != manager_url)
    return std::nullopt;
  return j;
}

bool enrollment_has_tls(const nlohmann::json& record) {
  return record.is_object() && record.value("tls", false);
}

Result<nlohmann::json> enroll_once(const EnrollOptions& o) {
  enroll::EnrollRequest req;
  req.manager_url = o.manager_url;
  req.trust.ca_file = o.ca_file;
  req.trust.ca_fingerprint = o.ca_fingerprint;  // https: the manager must present that CA
  req.join_token = o.join_token;
  req.name = o.name;
  req.address = o.address;
  req.inventory = o.inventory;
  const bool tls = !is_unix(o.address);
  std::string key_pem, migration_key_pem, advertise_host;
  if (tls) {
    auto hp = pki::split_host_port(o.address);
    if (!hp) return tl::unexpected(hp.error());
    advertise_host = hp->host;
    auto key = pki::generate_key();
    if (!key) return tl::unexpected(key.error());
    key_pem = std::move(*key);
    auto csr = pki::make_csr(key_pem, o.name);
    if (!csr) return tl::unexpected(csr.error());
    req.csr_pem = std::move(*csr);
    // A second key for the migration certificate (QEMU's migration TLS): never the host
    // key, which stays with the agent's gRPC port.
    auto mkey = pki::generate_key();
    if (!mkey) return tl::unexpected(mkey.error());
    migration_key_pem = std::move(*mkey);
    auto mcsr = pki::make_csr(migration_key_pem, o.name);
    if (!mcsr) return tl::unexpected(mcsr.error());
    req.migration_csr_pem = std::move(*mcsr);
  }
  auto reply = enroll::enroll_host(req);
  if (!reply) return tl::unexpected(reply.error());
  if (tls) {
    if (auto st = check_certificate(*reply, key_pem, advertise_host, o.ca_fingerprint); !st)
      return tl::unexpected(st.error());
    std::string dir = tls_dir(o.state_dir);
    std::error_code ec;
    fs::create_directories(dir, ec);
    ::chmod(dir.c_str(), 0700);
    for (auto [file, text, mode] : {std::tuple{"/host.key", &key_pem, 0600u},
                                    std::tuple{"/host.crt", &reply->cert_pem, 0644u},
                                    std::tuple{"/ca.crt", &reply->ca_cert_pem, 0644u}})
      if (auto st = pki::write_file_atomic(dir + file, *text, mode); !st)
        return tl::unexpected(st.error());
    // The migration identity (ca.crt is shared): absent from an older manager's reply,
    // then TLS migrations of this host fail with "no migration certificate".
    if (!reply->migration_cert_pem.empty()) {
      auto matches = pki::cert_matches_key(reply->migration_cert_pem, migration_key_pem);
      if (!matches || !*matches)
        return internal_error("enroll: the migration certificate is not for our key");
      if (auto st = pki::verify_cert(reply->migration_cert_pem, reply->ca_cert_pem); !st)
        return tl::unexpected(st.error().wrap("migration certificate"));
      for (auto [file, text, mode] :
           {std::tuple{"/migration.key", &migration_key_pem, 0600u},
            std::tuple{"/migration.crt", &reply->migration_cert_pem, 0644u}})
        if (auto st = pki::write_file_atomic(dir + file, *text, mode); !st)
          return tl::unexpected(st.error());
    } else {
      enroll_log()->warn(
          "the manager issued no migration certificate (older stratad?): TLS "
          "migrations of this host will fail until it re-enrolls");
    }
  }
  nlohmann::json record = {{"manager", o.manager_url},
                           {"name", o.name},
                           {"address", o.address},
                           {"host", reply->host},
                           {"tls", tls}};
  // Written last, whole or not at all: no record means "not enrolled".
  if (auto st = pki::write_file_atomic(record_path(o.state_dir), record.dump(2) + "\n", 0600); !st)
    return tl::unexpected(st.error());
  return reply->host;
}

Status enroll_until_done(const EnrollOptions& o, const std::atomic<bool>& stop) {
  if (auto rec = load_enrollment(o.state_dir, o.manager_url)) {
    enroll_log()->info("already enrolled with {} as {}", o.manager_url, rec->value("name", o.name));
    return {};
  }
  if (o.join_token.empty())
    return invalid_argument(
        "join-token", "not enrolled with " + o.manager_url + " yet and no --join-token given");
  auto delay = std::chrono::milliseconds(500);
  while (!stop.load()) {
    auto host = enroll_once(o);
    if (host) {
      enroll_log()->info("enrolled with {} as {} (host id {}) advertising {}{}", o.manager_url,
                         o.name, host->value("id", ""), o.address,
                         is_unix(o.address) ? "" : "; host certificate in " + tls_dir(o.state_dir));
      return {};
    }
    if (host.error().code != ErrorCode::unavailable) return tl::unexpected(host.error());
    enroll_log()->warn("{}; retrying in {} ms", host.error().message, delay.count());
    auto until = std::chrono::steady_clock::now() + delay;
    while (!stop.load() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    delay = std::min(delay * 2, std::chrono::milliseconds(10000));
  }
  return make_error(ErrorCode::unavailable, "stopped before enrollment finished");
}

}  // namespace strata::agent::cli
