// Live migration in the QEMU driver: QemuHypervisor implements MigrationDriver
// (strata/agent/migration.h: the phases, the policy, progress and outcome types);
// vm_migrate.cc holds the jobs. Phases as libvirt's (begin, prepare, perform, finish,
// confirm); the manager orchestrates them. See docs/internals/qemu-driver.md.
#pragma once

#include "hardware_profile.h"
#include "qemu_monitor.h"
#include "strata/agent/migration.h"

namespace strata::agent::qemu {

using agent::deadline_for;
using agent::downtime_limit_at;
using agent::MigrationOutcome;
using agent::MigrationPolicy;
using agent::MigrationProgress;
using agent::MigrationProgressCallback;
using agent::MigrationSource;
using agent::real_downtime_ms;
using IncomingInfo = agent::MigrationIncoming;

// Whether RAM must be copied with the guest paused: TCG on QEMU before 9.0 (its dirty
// tracking loses writes during a live copy; see migrate_out).
bool ram_copy_needs_pause(const std::string& accelerator, int64_t qemu_major);

// A query-migrate reply as progress.
MigrationProgress ram_progress(const MigrationInfo& mi, int64_t downtime_limit_ms);

}  // namespace strata::agent::qemu
