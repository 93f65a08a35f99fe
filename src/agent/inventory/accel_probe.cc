// Picks the accelerator by booting the probe guest under QEMU, and reports why.
#include "strata/agent/accel_probe.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "strata/common/log.h"
#include "strata/common/process.h"

namespace strata::agent {
namespace fs = std::filesystem;
namespace {

Result<std::string> write_probe_image(const std::string& state_dir) {
  std::error_code ec;
  if (state_dir.empty() || !fs::is_directory(state_dir, ec))
    return invalid_argument("state_dir", "probe state dir does not exist: '" + state_dir + "'");
  fs::path img = fs::path(state_dir) / "accel-probe.img";
  fs::path tmp = img;
  tmp += ".tmp";
  auto sector = make_probe_boot_sector();
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(sector.data()), static_cast<std::streamsize>(sector.size()));
    if (!out) return internal_error("cannot write " + tmp.string());
  }
  // SeaBIOS refuses to boot a one-sector disk ("could not read the boot disk"); a 1 MiB
  // (sparse) image boots.
  fs::resize_file(tmp, 1 << 20, ec);
  if (ec) return internal_error("resize " + tmp.string() + ": " + ec.message());
  fs::rename(tmp, img, ec);
  if (ec) return internal_error("rename " + tmp.string() + ": " + ec.message());
  return img.string();
}

std::string describe_guest_code(int status) {
  for (auto [code, what] : {std::pair{ProbeGuestCode::cpuid_failed, "cpuid returned no vendor"},
                            std::pair{ProbeGuestCode::no_fxsr, "cpuid lacks FXSR"},
                            std::pair{ProbeGuestCode::fxsave_mismatch, "fxsave stored a wrong FCW"},
                            std::pair{ProbeGuestCode::cmpxchg8b_failed, "cmpxchg8b did not swap"}})
    if (status == qemu_exit_status(code)) return std::string("probe guest ran but ") + what;
  return {};
}

// Last non-empty stderr line, shortened: QEMU puts the reason there.
std::string stderr_excerpt(const std::string& err) {
  std::string s = err;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  if (s.size() > 300) s = "..." + s.substr(s.size() - 300);
  return s;
}

}  // namespace

Result<ProbeRun> run_probe_guest(const std::string& accel, const AccelProbeOptions& opts) {
  if (accel != "kvm" && accel != "tcg")
    return invalid_argument("accel", "probe accelerator must be kvm or tcg, got '" + accel + "'");
  auto img = write_probe_image(opts.state_dir);
  if (!img) return tl::unexpected(img.error());

  std::vector<std::string> argv = {opts.qemu_binary, "-accel", accel};
  const std::string& cpu = accel == "kvm" ? opts.kvm_cpu : opts.tcg_cpu;
  if (!cpu.empty()) argv.insert(argv.end(), {"-cpu", cpu});
  argv.insert(argv.end(),
              {"-machine", "q35", "-m", "32", "-nodefaults", "-display", "none", "-no-reboot",
               "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-drive",
               "file=" + *img + ",format=raw,if=ide"});
  RunOptions ro;
  ro.timeout = opts.timeout;
  auto r = run_process(argv, ro);
  if (!r) return tl::unexpected(r.error().wrap("accelerator probe"));

  ProbeRun run;
  run.accel = accel;
  run.timed_out = r->timed_out;
  run.exit_status = (r->signaled || r->timed_out) ? -1 : r->exit_code;
  const int pass = qemu_exit_status(ProbeGuestCode::pass);
  if (r->timed_out) {
    run.detail = "probe guest did not report within " + std::to_string(opts.timeout.count()) + " ms";
  } else if (r->signaled) {
    run.detail = "QEMU killed by signal " + std::to_string(r->term_signal);
  } else if (r->exit_code == pass) {
    run.passed = true;
    run.detail = "probe guest passed (cpuid, fxsave, cmpxchg8b)";
  } else if (auto what = describe_guest_code(r->exit_code); !what.empty()) {
    run.detail = what;
  } else {
    run.detail = "QEMU exited with status " + std::to_string(r->exit_code);
  }
  if (!run.passed && !r->err.empty()) run.detail += ": " + stderr_excerpt(r->err);
  logger("agent.inventory")->info("accel probe accel={} passed={} status={} detail=\"{}\"", accel,
                                  run.passed, run.exit_status, run.detail);
  return run;
}

Result<AccelProbeResult> decide_accelerator(const std::string& requested, const ProbeRun& kvm_run) {
  AccelProbeResult out;
  out.requested = requested;
  if (requested == "tcg") {
    out.accelerator = "tcg";
    out.reason = "tcg requested";
    return out;
  }
  if (requested != "auto" && requested != "kvm")
    return invalid_argument("accelerator", "must be auto, kvm or tcg, got '" + requested + "'");
  out.kvm_usable = kvm_run.passed;
  if (kvm_run.passed) {
    out.accelerator = "kvm";
    out.reason = "kvm probe: " + kvm_run.detail;
    return out;
  }
  if (requested == "kvm")
    return make_error(ErrorCode::failed_precondition,
                      "kvm requested but unusable on this host: " + kvm_run.detail, "accelerator");
  out.accelerator = "tcg";
  out.reason = "kvm unusable, using tcg: " + kvm_run.detail;
  return out;
}

Result<AccelProbeResult> probe_accelerator(const std::string& requested,
                                           const AccelProbeOptions& opts) {
  if (requested == "tcg") return decide_accelerator(requested, ProbeRun{});
  if (requested != "auto" && requested != "kvm")
    return invalid_argument("accelerator", "must be auto, kvm or tcg, got '" + requested + "'");
  auto kvm = run_probe_guest("kvm", opts);
  if (!kvm) return tl::unexpected(kvm.error());
  return decide_accelerator(requested, *kvm);
}

nlohmann::json to_json(const AccelProbeResult& r) {
  return {{"requested", r.requested},
          {"accelerator", r.accelerator},
          {"kvm_usable", r.kvm_usable},
          {"reason", r.reason}};
}

}  // namespace strata::agent
