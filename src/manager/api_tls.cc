// The REST API's TLS identity (see api_tls.h).
#include "api_tls.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string_view>

#include <fmt/format.h>

namespace strata::manager {

namespace {

void add_unique(std::vector<std::string>& v, std::string s) {
  if (!s.empty() && std::find(v.begin(), v.end(), s) == v.end()) v.push_back(std::move(s));
}

// The IP addresses of the machine's interfaces that are up (link-local IPv6 left out: a
// certificate cannot name their zone).
void add_interface_addresses(std::vector<std::string>& out) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || !(i->ifa_flags & IFF_UP)) continue;
    int family = i->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    if (family == AF_INET6) {
      const auto* a6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      if (IN6_IS_ADDR_LINKLOCAL(&a6->sin6_addr)) continue;
    }
    char buf[NI_MAXHOST];
    socklen_t len = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    if (getnameinfo(i->ifa_addr, len, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) == 0)
      add_unique(out, buf);
  }
  freeifaddrs(list);
}

Result<std::string> read_file(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) return invalid_argument(what, "cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in && !in.eof()) return invalid_argument(what, "cannot read " + path);
  return ss.str();
}

}  // namespace

bool is_wildcard(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]";
}

std::vector<std::string> listen_sans(const std::string& host) {
  std::vector<std::string> sans;
  if (!is_wildcard(host)) {
    std::string h = host;
    if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    add_unique(sans, h);
    if (h == "127.0.0.1" || h == "::1") add_unique(sans, "localhost");
    return sans;
  }
  add_unique(sans, "localhost");
  add_unique(sans, "127.0.0.1");
  add_unique(sans, "::1");
  char name[256] = {};
  // The host name when a certificate can carry it (a DNS name of letters, digits, . and -).
  if (gethostname(name, sizeof name - 1) == 0 &&
      std::string_view(name).find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
                                               "VWXYZ0123456789.-") == std::string_view::npos)
    add_unique(sans, name);
  add_interface_addresses(sans);
  return sans;
}

Result<ServerTls> issue_api_tls(const pki::CertificateAuthority& ca, const std::string& host) {
  auto sans = listen_sans(host);
  auto issued = ca.issue("stratad", sans, pki::CertUsage::server, 825);
  if (!issued) return tl::unexpected(issued.error().wrap("REST API certificate"));
  ServerTls tls;
  tls.cert_chain_pem = issued->cert_pem + ca.cert_pem();
  tls.key_pem = std::move(issued->key_pem);
  return tls;
}

Result<ServerTls> load_api_tls(const std::string& cert_file, const std::string& key_file) {
  if (cert_file.empty() || key_file.empty())
    return invalid_argument("tls-cert", "--tls-cert and --tls-key go together");
  auto cert = read_file(cert_file, "tls-cert");
  if (!cert) return tl::unexpected(cert.error());
  auto key = read_file(key_file, "tls-key");
  if (!key) return tl::unexpected(key.error());
  return ServerTls{std::move(*cert), std::move(*key)};
}

}  // namespace strata::manager
