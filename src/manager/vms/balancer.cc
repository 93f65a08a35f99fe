// The load balancer's cycles (see balancer.h).
#include "strata/manager/vms/balancer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "strata/common/log.h"

namespace strata::manager {

namespace {

constexpr const char* kBalanceActor = "controller:balance";

std::string moves_text(const BalanceProposal& p) {
  std::string s;
  for (const auto& m : p.moves)
    s += fmt::format("{}{}{} {} -> {}", s.empty() ? "" : ", ", m.vm,
                     m.together_with.empty()
                         ? std::string()
                         : fmt::format(" (with {})", fmt::join(m.together_with, ", ")),
                     m.from_host, m.to_host);
  return s;
}

}  // namespace

std::string_view to_string(BalanceMode m) {
  switch (m) {
    case BalanceMode::off: return "off";
    case BalanceMode::advise: return "advise";
    case BalanceMode::automatic: return "auto";
  }
  return "unknown";
}

std::optional<BalanceMode> balance_mode_from_string(std::string_view s) {
  if (s == "off") return BalanceMode::off;
  if (s == "advise") return BalanceMode::advise;
  if (s == "auto") return BalanceMode::automatic;
  return std::nullopt;
}

Balancer::Balancer(VmService& vms, EventLog& events, ClockPtr clock, BalancerConfig config)
    : vms_(vms), events_(events), clock_(std::move(clock)), config_(config),
      thread_(clock_, config_.interval, [this] { tick(); }) {}

Balancer::~Balancer() { stop(); }

std::map<std::string, std::string> Balancer::held() {
  std::map<std::string, std::string> out;
  const auto now = clock_->now();
  std::lock_guard lock(mu_);
  for (auto it = moved_.begin(); it != moved_.end();) {
    const auto age = now - it->second;
    if (age >= config_.hold_after_move) {
      it = moved_.erase(it);
      continue;
    }
    out[it->first] = fmt::format(
        "moved by the balancer {} min ago (held {} min)",
        std::chrono::duration_cast<std::chrono::minutes>(age).count(),
        std::chrono::duration_cast<std::chrono::minutes>(config_.hold_after_move).count());
    ++it;
  }
  return out;
}

Result<BalanceProposal> Balancer::plan() {
  return vms_.placement().plan_balance(config_.plan, held());
}

Result<BalanceApplied> Balancer::apply(const std::string& actor) {
  auto proposal = plan();
  if (!proposal) return tl::unexpected(proposal.error());
  BalanceApplied out;
  out.proposal = *proposal;
  for (const auto& m : proposal->moves) {
    VmMigrateOptions o;
    o.target_host = m.to_host;
    auto change = vms_.migrate(m.vm, o, actor);
    if (!change) {
      out.refused.push_back({m.vm, change.error().message});
      continue;
    }
    // One migration of a keep-together group's VM moves the group: each is held alike.
    std::vector<std::string> ids{change->vm.id};
    for (const auto& other : m.together_with)
      if (auto vm = vms_.store().get_vm_by_name(other)) ids.push_back(vm->id);
    {
      std::lock_guard lock(mu_);
      for (const auto& id : ids) moved_[id] = clock_->now();
    }
    out.started.push_back({m.vm, change->task.id});
  }
  if (!proposal->moves.empty())
    events_.append(actor, "balance.apply", "cluster", out.refused.empty() ? "ok" : "warning",
                   fmt::format("{} of {} moves started ({}); imbalance {:.3f} -> {:.3f}",
                               out.started.size(), proposal->moves.size(), moves_text(*proposal),
                               proposal->imbalance, proposal->imbalance_after));
  return out;
}

void Balancer::tick() {
  if (config_.mode == BalanceMode::off) return;
  auto log = logger("manager.balance");
  if (config_.mode == BalanceMode::automatic) {
    auto applied = apply(kBalanceActor);
    if (!applied) log->warn("balance cycle failed error={}", applied.error().to_string());
    return;
  }
  auto p = plan();
  if (!p) {
    log->warn("balance plan failed error={}", p.error().to_string());
    return;
  }
  const std::string advice = moves_text(*p);
  {
    std::lock_guard lock(mu_);
    if (advice == last_advice_) return;  // said already (or still nothing to say)
    last_advice_ = advice;
  }
  if (p->moves.empty()) return;
  log->info("balance advice imbalance={:.3f} after={:.3f} moves={}", p->imbalance,
            p->imbalance_after, advice);
  events_.append(kBalanceActor, "balance.advice", "cluster", "ok",
                 fmt::format("{} move(s) would lower the imbalance from {:.3f} to {:.3f}: {} "
                             "(strata balance apply)",
                             p->moves.size(), p->imbalance, p->imbalance_after, advice));
}

void Balancer::start() { thread_.start(); }

void Balancer::stop() { thread_.stop(); }

}  // namespace strata::manager
