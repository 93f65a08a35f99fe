// AgentService: the live migration RPCs over the driver's MigrationDriver
// (strata/agent/migration.h). Begin/Prepare/Finish/Abort/Confirm/Cancel are single calls
// (deduplicated by request id like every mutating RPC, and naturally idempotent where a
// retry finds the work done); Perform starts a job that outlives its stream.
#include <arpa/inet.h>
#include <fmt/format.h>

#include <condition_variable>
#include <thread>

#include "strata/agent/migration.h"
#include "strata/agent/service/agent_service.h"
#include "strata/common/log.h"
#include "strata/model/validation.h"
#include "strata/wire/status.h"
#include "strata/wire/vm_status.h"

namespace strata::agent::service {

namespace {

using namespace std::chrono_literals;

auto migration_log() {
  static auto l = logger("agent.service");
  return l;
}

bool is_ip_literal(const std::string& s) {
  in6_addr a6{};
  in_addr a4{};
  return inet_pton(AF_INET, s.c_str(), &a4) == 1 || inet_pton(AF_INET6, s.c_str(), &a6) == 1;
}

MigrationPolicy from_proto(const v1::MigrationPolicy& p) {
  MigrationPolicy out;
  if (p.downtime_start_ms() > 0) out.downtime_start_ms = p.downtime_start_ms();
  if (p.downtime_step_ms() > 0) out.downtime_step_ms = p.downtime_step_ms();
  if (p.downtime_max_ms() > 0) out.downtime_max_ms = p.downtime_max_ms();
  out.downtime_max_ms = std::max(out.downtime_max_ms, out.downtime_start_ms);
  if (p.step_interval_ms() > 0) out.step_interval = std::chrono::milliseconds(p.step_interval_ms());
  out.max_bandwidth = p.max_bandwidth();
  if (p.deadline_ms() > 0) out.deadline = std::chrono::milliseconds(p.deadline_ms());
  out.auto_converge = p.auto_converge();
  out.postcopy = p.postcopy();
  return out;
}

void to_proto(const MigrationOutcome& r, v1::MigrationOutcome* o) {
  o->set_qemu_downtime_ms(r.qemu_downtime_ms);
  o->set_stop_at_us(r.stop_at_us);
  o->set_total_ms(r.total_ms);
  o->set_ram_transferred(r.ram_transferred);
  o->set_downtime_limit_ms(r.downtime_limit_ms);
  o->set_ram_copied_paused(r.ram_copied_paused);
  o->set_postcopy_ready(r.postcopy_ready);
  o->set_postcopy(r.postcopy);
}

v1::MigrationProgress to_proto(const MigrationProgress& p) {
  v1::MigrationProgress out;
  out.set_phase(p.phase);
  out.set_disk_total(p.disk_total);
  out.set_disk_done(p.disk_done);
  out.set_ram_total(p.ram_total);
  out.set_ram_transferred(p.ram_transferred);
  out.set_ram_remaining(p.ram_remaining);
  out.set_dirty_bytes_rate(p.dirty_bytes_rate);
  out.set_passes(p.passes);
  out.set_mbps(p.mbps);
  out.set_downtime_limit_ms(p.downtime_limit_ms);
  out.set_cpu_throttle_percent(p.cpu_throttle_percent);
  return out;
}

grpc::Status cannot_migrate() {
  return wire::unimplemented_status("this host's driver cannot migrate");
}
// The follower's stream ended (its client left, or the agent stops); not the migration.
grpc::Status follow_ended() {
  return grpc::Status(grpc::StatusCode::CANCELLED,
                      "stream ended; the migration goes on (call again to follow it)");
}

}  // namespace

struct AgentService::MigrationJob {
  std::string request_id;
  std::string fingerprint;  // the request's content: a repeat must ask for the same
  std::thread thread;
  std::mutex mu;  // guards the fields below
  std::condition_variable cv;
  uint64_t seq = 0;  // bumped on every progress report and at the end
  MigrationProgress latest;
  bool done = false;
  Result<MigrationOutcome> result = tl::unexpected(Error{ErrorCode::internal, "not run", {}});
};

void AgentService::drop_migration_job(const std::string& name) {
  std::shared_ptr<MigrationJob> ended;
  {
    std::lock_guard lk(migrations_mu_);
    if (auto it = migrations_.find(name); it != migrations_.end()) {
      ended = it->second;
      migrations_.erase(it);
    }
  }
  if (ended && ended->thread.joinable()) ended->thread.join();
}

void AgentService::join_migrations() {
  std::vector<std::shared_ptr<MigrationJob>> jobs;
  {
    std::lock_guard lk(migrations_mu_);
    for (auto& [name, job] : migrations_) jobs.push_back(job);
  }
  // A running migration ends by itself (its deadline bounds it); the VM is never left
  // half-moved by an agent shutdown.
  for (auto& job : jobs)
    if (job->thread.joinable() && job->thread.get_id() != std::this_thread::get_id())
      job->thread.join();
}

grpc::Status AgentService::BeginMigration(grpc::ServerContext*,
                                          const v1::BeginMigrationRequest* req,
                                          v1::BeginMigrationResponse* resp) {
  if (auto st = model::validate_name("name", req->name()); !st)
    return wire::to_grpc_status(st.error());
  auto* mig = hv_.migration();
  if (!mig) return cannot_migrate();
  auto src = mig->begin_migration(req->name());
  if (!src) return wire::to_grpc_status(src.error());
  *resp->mutable_spec() = wire::to_proto(src->spec);
  resp->set_profile_json(src->profile_json);
  return grpc::Status::OK;
}

grpc::Status AgentService::PrepareMigration(grpc::ServerContext*,
                                            const v1::PrepareMigrationRequest* req,
                                            v1::PrepareMigrationResponse* resp) {
  auto* mig = hv_.migration();
  if (!mig) return cannot_migrate();
  if (req->postcopy() && !postcopy_level()) {
    // An agent before post-copy does not know the field: it prepares for pre-copy and
    // answers postcopy = false, which the manager checks.
    v1::PrepareMigrationRequest older = *req;
    older.set_postcopy(false);
    return PrepareMigration(nullptr, &older, resp);
  }
  return once<v1::PrepareMigrationRequest, v1::PrepareMigrationResponse>(
      "PrepareMigration", *req, resp, [&](v1::PrepareMigrationResponse* out) -> Status {
        if (!req->has_spec()) return invalid_argument("spec", "required");
        auto spec = wire::from_proto(req->spec(), "spec");
        if (!spec) return tl::unexpected(spec.error());
        if (auto st = model::validate(*spec); !st) {
          Error e = st.error();
          if (!e.field.empty()) e.field = "spec." + e.field;
          return tl::unexpected(e);
        }
        if (req->profile_json().size() > 65536)
          return invalid_argument("profile_json", "at most 65536 bytes");
        if (!is_ip_literal(req->listen_host()))
          return invalid_argument("listen_host", "must be an IP address of this host");
        auto in = mig->prepare_incoming({*spec, req->profile_json(), req->tls(), req->postcopy()},
                                        req->listen_host());
        if (!in) return tl::unexpected(in.error());
        out->set_migration_uri(in->migration_uri);
        out->set_nbd_host(in->nbd_host);
        out->set_nbd_port(in->nbd_port);
        out->set_tls(in->tls);
        out->set_postcopy(in->postcopy);
        migration_log()->info("incoming migration prepared name={} uri={} tls={} postcopy={}",
                              spec->name, in->migration_uri, in->tls, in->postcopy);
        return {};
      });
}

grpc::Status AgentService::PerformMigration(grpc::ServerContext* ctx,
                                            const v1::PerformMigrationRequest* req,
                                            grpc::ServerWriter<v1::MigrationProgress>* writer) {
  if (req->policy().postcopy() && !postcopy_level()) {
    v1::PerformMigrationRequest older = *req;  // as an agent before post-copy reads it
    older.mutable_policy()->set_postcopy(false);
    return PerformMigration(ctx, &older, writer);
  }
  if (auto st = validate_request_id(req->request_id()); !st)
    return wire::to_grpc_status(st.error());
  if (auto st = model::validate_name("name", req->name()); !st)
    return wire::to_grpc_status(st.error());
  auto* mig = hv_.migration();
  if (!mig) return cannot_migrate();
  if (req->migration_uri().empty() || req->migration_uri().size() > 300)
    return wire::to_grpc_status(invalid_argument("migration_uri", "required").value());
  v1::PerformMigrationRequest content = *req;
  content.clear_request_id();
  const std::string fp = content.SerializeAsString();

  std::shared_ptr<MigrationJob> job;
  {
    std::lock_guard lk(migrations_mu_);
    if (stopping_)
      return wire::to_grpc_status(Error{ErrorCode::unavailable, "the agent is stopping", {}});
    auto it = migrations_.find(req->name());
    if (it != migrations_.end()) {
      auto& j = it->second;
      bool done;
      {
        std::lock_guard jl(j->mu);
        done = j->done;
      }
      if (j->request_id == req->request_id()) {
        if (j->fingerprint != fp)
          return wire::to_grpc_status(Error{ErrorCode::invalid_argument,
                                            "request id already used for a different migration",
                                            "request_id"});
        job = j;  // follow the same job
      } else if (!done) {
        return wire::to_grpc_status(Error{
            ErrorCode::failed_precondition,
            fmt::format("VM {} is already migrating (request {})", req->name(), j->request_id),
            {}});
      } else {
        if (j->thread.joinable()) j->thread.join();
        migrations_.erase(it);
      }
    }
    if (!job) {
      job = std::make_shared<MigrationJob>();
      job->request_id = req->request_id();
      job->fingerprint = fp;
      // The target was prepared for post-copy when this asks for it (the manager checked
      // its answer); the driver refuses a post-copy policy otherwise.
      MigrationIncoming target{req->migration_uri(), req->nbd_host(), req->nbd_port(), req->tls(),
                               req->policy().postcopy()};
      MigrationPolicy policy = from_proto(req->policy());
      std::string name = req->name();
      migration_log()->info("migration starts name={} to={} request={}", name, target.migration_uri,
                            job->request_id);
      job->thread = std::thread([job, mig, name, target, policy] {
        auto r = mig->migrate_out(name, target, policy, [&](const MigrationProgress& p) {
          std::lock_guard jl(job->mu);
          job->latest = p;
          ++job->seq;
          job->cv.notify_all();
        });
        migration_log()->info("migration ended name={} ok={}{}", name, r.has_value(),
                              r ? "" : " error=" + r.error().to_string());
        std::lock_guard jl(job->mu);
        job->result = std::move(r);
        job->done = true;
        ++job->seq;
        job->cv.notify_all();
      });
      migrations_[name] = job;
    }
  }

  // Follow the job: every new progress report, then the outcome.
  uint64_t seen = 0;
  for (;;) {
    std::unique_lock jl(job->mu);
    job->cv.wait_for(jl, 250ms, [&] { return job->seq != seen || job->done; });
    if (job->done) {
      if (!job->result) return wire::to_grpc_status(job->result.error());
      v1::MigrationProgress last = to_proto(job->latest);
      last.set_phase(job->result->postcopy_ready ? "postcopy-ready" : "completed");
      to_proto(*job->result, last.mutable_outcome());
      jl.unlock();
      writer->Write(last);
      return grpc::Status::OK;
    }
    if (ctx->IsCancelled() || stopping_) return follow_ended();
    if (job->seq != seen) {
      seen = job->seq;
      v1::MigrationProgress p = to_proto(job->latest);
      jl.unlock();
      if (!writer->Write(p)) return follow_ended();
    }
  }
}

grpc::Status AgentService::SwitchoverMigration(grpc::ServerContext*,
                                               const v1::SwitchoverMigrationRequest* req,
                                               v1::MigrationOutcome* resp) {
  if (!postcopy_level())  // as from an agent before the RPC existed
    return wire::unimplemented_status("unknown method SwitchoverMigration");
  auto* mig = hv_.migration();
  if (!mig) return cannot_migrate();
  return once<v1::SwitchoverMigrationRequest, v1::MigrationOutcome>(
      "SwitchoverMigration", *req, resp, [&](v1::MigrationOutcome* out) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        {
          // The copy must have reached its switch-over point (PerformMigration ended).
          std::lock_guard lk(migrations_mu_);
          auto it = migrations_.find(req->name());
          if (it != migrations_.end()) {
            std::lock_guard jl(it->second->mu);
            if (!it->second->done)
              return make_error(ErrorCode::failed_precondition, "the migration still runs");
          }
        }
        auto r = mig->switchover_out(req->name());
        if (!r) return tl::unexpected(r.error());
        to_proto(*r, out);
        migration_log()->info("migration switched over name={} postcopy={}", req->name(),
                              r->postcopy);
        return {};
      });
}

grpc::Status AgentService::FinishMigration(grpc::ServerContext*,
                                           const v1::FinishMigrationRequest* req,
                                           v1::FinishMigrationResponse* resp) {
  auto* mig = hv_.migration();
  if (!mig) return cannot_migrate();
  return once<v1::FinishMigrationRequest, v1::FinishMigrationResponse>(
      "FinishMigration", *req, resp, [&](v1::FinishMigrationResponse* out) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        auto resumed = mig->finish_incoming(req->name(), 60s);
        if (!resumed) {
          // Already finished (a retry after a lost reply): the guest runs here.
          auto s = hv_.status(req->name());
          if (resumed.error().code != ErrorCode::failed_precondition || !s ||
              s->state != model::VmState::running)
            return tl::unexpected(resumed.error());
        } else {
          out->set_resume_at_us(*resumed);
        }
        migration_log()->info("incoming migration finished name={}", req->name());
        return current(req->name(), out->mutable_vm());
      });
}

grpc::Status AgentService::AbortMigration(grpc::ServerContext*,
                                          const v1::AbortMigrationRequest* req,
                                          v1::AbortMigrationResponse* resp) {
  auto* mig = hv_.migration();
  if (!mig) return cannot_migrate();
  return once<v1::AbortMigrationRequest, v1::AbortMigrationResponse>(
      "AbortMigration", *req, resp, [&](v1::AbortMigrationResponse*) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        auto s = mig->abort_incoming(req->name());
        if (!s && s.error().code != ErrorCode::not_found) return s;
        migration_log()->info("incoming migration aborted name={}", req->name());
        return {};
      });
}

grpc::Status AgentService::ConfirmMigration(grpc::ServerContext*,
                                            const v1::ConfirmMigrationRequest* req,
                                            v1::ConfirmMigrationResponse* resp) {
  auto* mig = hv_.migration();
  if (!mig) return cannot_migrate();
  return once<v1::ConfirmMigrationRequest, v1::ConfirmMigrationResponse>(
      "ConfirmMigration", *req, resp, [&](v1::ConfirmMigrationResponse*) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        {
          // Only a completed migration is confirmed: a running job would leave two QEMUs.
          std::lock_guard lk(migrations_mu_);
          auto it = migrations_.find(req->name());
          if (it != migrations_.end()) {
            std::lock_guard jl(it->second->mu);
            if (!it->second->done)
              return make_error(ErrorCode::failed_precondition, "the migration still runs");
            if (!it->second->result)
              return make_error(ErrorCode::failed_precondition,
                                "the migration failed: " + it->second->result.error().message);
          }
        }
        auto s = mig->confirm_out(req->name());
        if (!s && s.error().code != ErrorCode::not_found) return s;
        drop_migration_job(req->name());
        migration_log()->info("outgoing migration confirmed name={}", req->name());
        return {};
      });
}

grpc::Status AgentService::CancelMigration(grpc::ServerContext*,
                                           const v1::CancelMigrationRequest* req,
                                           v1::CancelMigrationResponse* resp) {
  auto* mig = hv_.migration();
  if (!mig) return cannot_migrate();
  return once<v1::CancelMigrationRequest, v1::CancelMigrationResponse>(
      "CancelMigration", *req, resp, [&](v1::CancelMigrationResponse* out) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        {
          std::lock_guard lk(migrations_mu_);
          auto it = migrations_.find(req->name());
          if (it != migrations_.end()) {
            std::lock_guard jl(it->second->mu);
            if (!it->second->done) {
              // Still copying: stop it at its next step; the job then fails, undone, and
              // the VM keeps running here. Asked again, the job has ended: cancelled.
              if (auto s = mig->interrupt_out(req->name());
                  !s && s.error().code != ErrorCode::failed_precondition)
                return s;
              return make_error(ErrorCode::unavailable,
                                "the migration is being interrupted; ask again once it ended");
            }
          }
        }
        auto s = mig->cancel_out(req->name());
        // Not migrating out (a failed migration already undid itself): it runs here.
        if (!s && s.error().code != ErrorCode::failed_precondition) return s;
        drop_migration_job(req->name());
        migration_log()->info("outgoing migration cancelled name={}", req->name());
        return current(req->name(), out->mutable_vm());
      });
}

// Post-copy recovery (docs/internals/migration.md, "Post-copy"): each attempt carries its
// own request id, so an answer is remembered per attempt and a new attempt runs again.
grpc::Status AgentService::PrepareRecoverMigration(grpc::ServerContext*,
                                                   const v1::PrepareRecoverMigrationRequest* req,
                                                   v1::PrepareRecoverMigrationResponse* resp) {
  auto* mig = hv_.migration();
  if (!mig) return cannot_migrate();
  return once<v1::PrepareRecoverMigrationRequest, v1::PrepareRecoverMigrationResponse>(
      "PrepareRecoverMigration", *req, resp,
      [&](v1::PrepareRecoverMigrationResponse* out) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        if (!is_ip_literal(req->listen_host()))
          return invalid_argument("listen_host", "must be an IP address of this host");
        auto uri = mig->prepare_recover_incoming(req->name(), req->listen_host());
        if (!uri) return tl::unexpected(uri.error());
        out->set_recover_uri(*uri);
        migration_log()->info("post-copy recovery prepared name={} uri={}", req->name(), *uri);
        return {};
      });
}

grpc::Status AgentService::ResumeMigration(grpc::ServerContext*,
                                           const v1::ResumeMigrationRequest* req,
                                           v1::ResumeMigrationResponse* resp) {
  auto* mig = hv_.migration();
  if (!mig) return cannot_migrate();
  return once<v1::ResumeMigrationRequest, v1::ResumeMigrationResponse>(
      "ResumeMigration", *req, resp, [&](v1::ResumeMigrationResponse*) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        if (req->recover_uri().rfind("tcp:", 0) != 0 || req->recover_uri().size() > 300)
          return invalid_argument("recover_uri", "must be a tcp: URI from PrepareRecoverMigration");
        if (auto s = mig->resume_out(req->name(), req->recover_uri()); !s) return s;
        migration_log()->info("post-copy stream resumed name={} uri={}", req->name(),
                              req->recover_uri());
        return {};
      });
}

}  // namespace strata::agent::service
