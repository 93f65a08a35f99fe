// Hosts: enrollment with a join token, listing, metrics history, labels/maintenance, delete.
#include <fmt/format.h>

#include "strata/manager/agents/connection_manager.h"
#include "strata/manager/api/api_service.h"
#include "strata/manager/controllers/clusters.h"
#include "strata/manager/vms/host_evacuation.h"
#include "strata/manager/api/json_fields.h"
#include "strata/manager/api/request_bodies.h"
#include "strata/model/validation.h"
#include "strata/pki/certificate_authority.h"
#include "strata/pki/pki.h"

namespace strata::manager {

namespace {

// Stored JSON written from an agent's reports (inventory, metrics), parsed within the
// inventory's bounds so a row stored before that check cannot make the answer's dump()
// recurse past the stack; anything else reads as {}.
nlohmann::json parse_or_empty(const std::string& text) {
  auto j = parse_json(text, kInventoryJsonLimits);
  return j ? std::move(*j) : nlohmann::json::object();
}

}  // namespace

nlohmann::json host_json(ApiDeps& d, const store::HostRecord& h, bool detail) {
  nlohmann::json j = {{"id", h.id},
                      {"name", h.name},
                      {"address", h.address},
                      {"state", h.state},
                      {"reachability", std::string(to_string(d.agents->liveness(h.id)))},
                      {"maintenance", h.state == "maintenance"},
                      {"labels", h.labels},
                      {"cluster", h.cluster},
                      {"accelerator", h.accelerator},
                      {"cpu_threads", h.cpu_threads},
                      {"memory_mib", h.memory_mib},
                      {"last_heartbeat_ms", h.last_heartbeat_ms},
                      {"resource_version", h.resource_version},
                      {"created_ms", h.created_ms},
                      {"updated_ms", h.updated_ms}};
  // The only certificate the manager accepts from the host (null: a UNIX-socket agent).
  j["cert_fingerprint"] =
      h.cert_fingerprint.empty() ? nlohmann::json(nullptr) : nlohmann::json(h.cert_fingerprint);
  // The agent's build and API level as its last heartbeat said (null until it answered
  // one since this manager started): what a rolling upgrade watches.
  const AgentVersionView agent = d.agents->agent_version(h.id);
  j["agent_version"] =
      agent.version.empty() ? nlohmann::json(nullptr) : nlohmann::json(agent.version);
  j["agent_api_level"] =
      agent.api_level ? nlohmann::json(agent.api_level) : nlohmann::json(nullptr);
  if (detail) {
    j["inventory"] = parse_or_empty(h.inventory);
    auto m = d.store->list_host_metrics(h.id, 1);
    j["metrics"] = (m && !m->empty()) ? parse_or_empty(m->back().data) : nlohmann::json(nullptr);
  }
  return j;
}

namespace {

// An enrollment is a join token, a name, an address, a CSR (~1 KiB) and the inventory.
constexpr size_t kEnrollBodyLimit = 64 * 1024;

// Host certificates live as long as the CA allows; renewal is re-enrollment.
constexpr int kHostCertDays = 1825;

// For a TCP agent: the host certificate from its CSR (CN = host name, SAN = the host part
// of the advertised address, server use only). Empty for a UNIX-socket agent (the
// all-in-one local agent), which the manager reaches without TLS.
Result<std::string> host_certificate(const ApiDeps& d, const EnrollBody& body,
                                     const store::HostRecord& host) {
  if (host.address.rfind("unix:", 0) == 0) return std::string();
  if (!body.csr)
    return invalid_argument("csr",
                            "csr is required: the manager dials agents over mutual TLS; "
                            "upgrade strata-agent");
  auto hp = pki::split_host_port(host.address);
  if (!hp) return tl::unexpected(hp.error());
  if (!d.ca) return make_error(ErrorCode::unavailable, "the manager has no CA to sign with");
  return d.ca->sign_csr(*body.csr, host.name, {hp->host},
                        pki::CertUsage::server, kHostCertDays);
}

// For a TCP agent that sent a migration CSR: its migration certificate (CN = host name, SAN
// = the same address, clientAuth + serverAuth: both ends of QEMU's migration TLS present
// one; the agents' gRPC port refuses it). Empty otherwise.
Result<std::string> migration_certificate(const ApiDeps& d, const EnrollBody& body,
                                          const store::HostRecord& host) {
  if (host.address.rfind("unix:", 0) == 0 || !body.migration_csr) return std::string();
  auto hp = pki::split_host_port(host.address);
  if (!hp) return tl::unexpected(hp.error());
  if (!d.ca) return make_error(ErrorCode::unavailable, "the manager has no CA to sign with");
  auto cert = d.ca->sign_csr(*body.migration_csr, host.name, {hp->host},
                             pki::CertUsage::migration, kHostCertDays);
  if (!cert) return tl::unexpected(cert.error().wrap("migration_csr"));
  return cert;
}

// A join token that cannot enroll is one answer (401) whatever the reason; the message
// says which reason, the field is not named.
Error join_token_error(const Error& e) {
  switch (e.code) {
    case ErrorCode::not_found: return Error{ErrorCode::unauthenticated, "invalid join token", ""};
    case ErrorCode::failed_precondition:
      return Error{ErrorCode::unauthenticated, "join token expired", ""};
    case ErrorCode::conflict:
      return Error{ErrorCode::unauthenticated, "join token already used", ""};
    default: return e;
  }
}

// Read-only check of a join token (unknown, used, expired), before the body is looked at.
Status check_join_token(const ApiDeps& d, const std::string& hash) {
  auto t = d.store->get_join_token_by_hash(hash);
  if (!t) return tl::unexpected(join_token_error(t.error()));
  if (t->used_by_host) return tl::unexpected(join_token_error(Error{ErrorCode::conflict, "", ""}));
  if (t->expires_ms && *t->expires_ms <= unix_ms(*d.clock))
    return tl::unexpected(join_token_error(Error{ErrorCode::failed_precondition, "", ""}));
  return {};
}

// A UNIX-socket address names a socket on the manager's own machine: only an agent on that
// machine (the all-in-one's local agent, or one started next to stratad) may register one.
// From anywhere else it would point the manager at a local socket of the enroller's choosing.
Status check_address_origin(const std::string& address, const HttpRequest& r) {
  if (address.rfind("unix:", 0) != 0 || r.peer_is_local) return {};
  return tl::unexpected(
      Error{ErrorCode::permission_denied,
            "a unix: address can only be enrolled from the manager's own machine; a remote "
            "agent advertises HOST:PORT",
            "address"});
}

}  // namespace

void add_host_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  RouteOptions enroll;
  enroll.role = std::nullopt;  // authenticated by the join token in the body
  enroll.action = "host.enroll";
  // Anyone may call it: a small body (413 above) and a rate per client address (429) bound
  // what a caller without a token can make the manager do.
  enroll.max_body = kEnrollBodyLimit;
  enroll.rate_limit = &api.enroll_limiter();
  api.router().add("POST", "/api/v1/hosts/enroll", enroll, [&d](HttpRequest& r) {
    auto body = parse_json_object(r.body);
    if (!body) return error_response(body.error());
    // The join token is the credential: check it before looking at anything else, so a
    // caller without one learns nothing (not even whether a host name is taken).
    auto token_field = body->find("join_token");
    if (token_field == body->end() || !token_field->is_string())
      return error_response(Error{ErrorCode::unauthenticated, "join_token is required", ""});
    std::string hash = sha256_hex(token_field->get<std::string>());
    if (auto st = check_join_token(d, hash); !st) return error_response(st.error());
    auto req = decode_enroll(*body);
    if (!req) return error_response(req.error());
    if (auto origin = check_address_origin(req->address, r); !origin)
      return error_response(origin.error());
    store::HostRecord host;
    host.name = req->name;
    host.address = req->address;
    host.inventory = req->inventory;
    host.accelerator = req->accelerator;
    host.cpu_threads = req->cpu_threads;
    host.memory_mib = req->memory_mib;
    host.cluster = req->cluster;
    // The cluster must exist, and a cluster with a fixed CPU baseline takes only hosts that
    // can offer it (the inventory's cpu_models say which they can).
    if (d.clusters)
      if (auto ok = d.clusters->admit(host.cluster, host.name, host.inventory); !ok)
        return error_response(ok.error());
    store::HostRecord stored;
    std::string cert, migration_cert;
    auto st = d.store->transaction([&](store::Store& tx) -> Status {
      // Signed only after the token checked out; a bad CSR rolls the enrollment back. The
      // certificate is pinned: the manager accepts no other from this host when it dials
      // it, so deleting the host (its record and pin) revokes the certificate.
      auto signed_cert = host_certificate(d, *req, host);
      if (!signed_cert) return tl::unexpected(signed_cert.error());
      cert = std::move(*signed_cert);
      auto signed_migration = migration_certificate(d, *req, host);
      if (!signed_migration) return tl::unexpected(signed_migration.error());
      migration_cert = std::move(*signed_migration);
      if (!cert.empty()) {
        auto fp = pki::cert_fingerprint(cert);
        if (!fp) return tl::unexpected(fp.error());
        host.cert_fingerprint = *fp;
      }
      auto created = tx.create_host(host);
      if (!created) return tl::unexpected(created.error());
      // Consumed atomically with the host: a token checked above may have been used since.
      auto used = tx.consume_join_token(hash, created->id, unix_ms(*d.clock));
      if (!used) return tl::unexpected(join_token_error(used.error()));
      stored = *created;
      return {};
    });
    if (!st) return error_response(st.error());
    if (d.clusters) d.clusters->invalidate(stored.cluster);
    d.agents->add_host(stored);
    nlohmann::json reply = {{"host", host_json(d, stored, false)}};
    if (!cert.empty())
      reply["tls"] = {{"certificate", cert}, {"ca_certificate", d.ca->cert_pem()}};
    if (!cert.empty() && !migration_cert.empty())
      reply["tls"]["migration_certificate"] = migration_cert;
    auto resp = HttpResponse::json(201, reply);
    resp.audit_target = "host/" + stored.name;
    return resp;
  });

  api.router().add("GET", "/api/v1/hosts", RouteOptions{}, [&d](HttpRequest& r) {
    auto name = decode_name_substring(r);
    if (!name) return error_response(name.error());
    store::HostListOptions o;
    o.name_contains = *name;
    auto list = d.store->list_hosts(o);
    if (!list) return error_response(list.error());
    nlohmann::json items = nlohmann::json::array();
    for (const auto& h : *list) items.push_back(host_json(d, h, false));
    return HttpResponse::json(200, {{"hosts", items}});
  });
  api.router().add("GET", "/api/v1/hosts/{name}", RouteOptions{}, [&d](HttpRequest& r) {
    auto h = d.store->get_host_by_name(r.param("name"));
    if (!h) return error_response(h.error());
    return HttpResponse::json(200, host_json(d, *h, true));
  });
  api.router().add("GET", "/api/v1/hosts/{name}/metrics", RouteOptions{}, [&d](HttpRequest& r) {
    auto limit = query_int(r, "limit", 60, 1, 10000);
    if (!limit) return error_response(limit.error());
    auto h = d.store->get_host_by_name(r.param("name"));
    if (!h) return error_response(h.error());
    auto samples = d.store->list_host_metrics(h->id, *limit);
    if (!samples) return error_response(samples.error());
    nlohmann::json items = nlohmann::json::array();
    for (const auto& s : *samples)
      items.push_back({{"time_ms", s.time_ms}, {"data", parse_or_empty(s.data)}});
    return HttpResponse::json(200, {{"host", h->name}, {"samples", items}});
  });
  // The samples as they are recorded, over SSE (metrics_feed.h): live charts, no polling.
  // Counted like the events stream (stream caps per token).
  api.router().add("GET", "/api/v1/hosts/{name}/metrics/stream", RouteOptions{},
                   [&d](HttpRequest& r) {
    auto h = d.store->get_host_by_name(r.param("name"));
    if (!h) return error_response(h.error());
    if (!d.metrics_feed || !d.streams)
      return error_response(Error{ErrorCode::unavailable, "no metrics stream", ""});
    auto ticket = d.streams->acquire(r.principal ? r.principal->token_id : "", false);
    if (auto* refused = std::get_if<HttpResponse>(&ticket)) return std::move(*refused);
    HttpResponse resp;
    resp.content_type = "text/event-stream";
    resp.event_stream = [feed = d.metrics_feed, host_id = h->id,
                         ticket = std::get<StreamLimiter::Ticket>(std::move(ticket))](
                            std::shared_ptr<EventStream> out) {
      if (!out->write(": stream start\n\n")) return;
      feed->subscribe(host_id, out);
    };
    return resp;
  });

  RouteOptions patch;
  patch.role = Role::operator_;
  patch.action = "host.update";
  api.router().add("PATCH", "/api/v1/hosts/{name}", patch, [&d](HttpRequest& r) {
    auto body = parse_json_object(r.body);
    if (!body) return error_response(body.error());
    auto patch = decode_host_patch(*body);
    if (!patch) return error_response(patch.error());
    auto expected = expected_version(r, &*body);
    if (!expected) return error_response(expected.error());
    // Moving to another cluster: admitted first (a fixed baseline refuses a host that
    // cannot offer it), on the inventory as it is now.
    std::string was_cluster;
    if (patch->cluster) {
      if (!d.clusters)
        return error_response(Error{ErrorCode::unavailable, "clusters are not running", ""});
      auto h = d.store->get_host_by_name(r.param("name"));
      if (!h) return error_response(h.error());
      was_cluster = h->cluster;
      if (*patch->cluster != h->cluster)
        if (auto ok = d.clusters->admit(*patch->cluster, h->name, h->inventory); !ok)
          return error_response(ok.error());
    }
    // One read-modify-write in a transaction, rerun when a heartbeat (which bumps the host's
    // version every few seconds) wins the compare-and-swap: a PATCH without If-Match never
    // answers 409 for that. With If-Match a different version is a 409, as before.
    store::HostRecord updated;
    auto st = d.store->transaction_retrying([&](store::Store& tx) -> Status {
      auto h = tx.get_host_by_name(r.param("name"));
      if (!h) return tl::unexpected(h.error());
      if (*expected && **expected != h->resource_version)
        return make_error(ErrorCode::conflict,
                          fmt::format("resource_version is {}, not {}", h->resource_version,
                                      **expected),
                          "resource_version");
      for (const auto& [k, v] : patch->labels) {
        if (v) h->labels[k] = *v;
        else h->labels.erase(k);
      }
      // Patches add up: bound the resulting map, not just this request.
      if (auto ok = model::validate_labels("labels", h->labels); !ok) return ok;
      if (patch->cluster) h->cluster = *patch->cluster;
      if (patch->maintenance) {
        if (*patch->maintenance) {
          h->state = "maintenance";
        } else if (h->state == "maintenance") {
          Liveness l = d.agents->liveness(h->id);
          h->state = l == Liveness::up ? "up" : l == Liveness::unreachable ? "unreachable" : "enrolling";
        }
      }
      auto u = tx.update_host(*h);
      if (!u) return tl::unexpected(u.error());
      updated = *u;
      return {};
    });
    if (!st) return error_response(st.error());
    if (patch->cluster && was_cluster != updated.cluster) {
      d.clusters->invalidate(was_cluster);
      d.clusters->invalidate(updated.cluster);
      d.events->append(audit_actor(r), "host.cluster", "host/" + updated.name, "ok",
                       "cluster " + was_cluster + " -> " + updated.cluster);
    }
    return HttpResponse::json(200, host_json(d, updated, false));
  });

  // Maintenance with evacuation: the host stops taking VMs and its running VMs migrate
  // away (vms/host_evacuation.h); 202 with the host.evacuate task.
  RouteOptions evac;
  evac.role = Role::operator_;
  evac.action = "host.evacuate";
  api.router().add("POST", "/api/v1/hosts/{name}/evacuate", evac, [&d](HttpRequest& r) {
    auto body = parse_json_object(r.body, /*allow_empty=*/true);
    if (!body) return error_response(body.error());
    if (auto st = check_fields(*body, {{"partial", JsonType::boolean}}); !st)
      return error_response(st.error());
    if (!d.evacuator)
      return error_response(Error{ErrorCode::unavailable, "evacuation is not running", ""});
    auto task = d.evacuator->evacuate(r.param("name"), audit_actor(r),
                                      optional_bool(*body, "partial", false));
    if (!task) return error_response(task.error());
    auto h = d.store->get_host(task->target_id);
    if (!h) return error_response(h.error());
    return HttpResponse::audited_json(
        202, {{"host", host_json(d, *h, false)}, {"task", to_json(*task)}}, "host/" + h->name);
  });

  RouteOptions del;
  del.role = Role::admin;
  del.action = "host.delete";
  api.router().add("DELETE", "/api/v1/hosts/{name}", del, [&d](HttpRequest& r) {
    auto expected = expected_version(r, nullptr);
    if (!expected) return error_response(expected.error());
    auto h = d.store->get_host_by_name(r.param("name"));
    if (!h) return error_response(h.error());
    if (auto st = d.store->delete_host(h->id, *expected); !st) return error_response(st.error());
    d.agents->remove_host(h->id);
    if (d.clusters) d.clusters->invalidate(h->cluster);
    return HttpResponse::json(200, {{"deleted", h->name}});
  });
}

}  // namespace strata::manager
