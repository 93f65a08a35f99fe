// stratad's scheduler knobs (--cpu-overcommit, --memory-overcommit, --placement): parsing
// of one flag's text into sched::SchedulerConfig, with errors that name the flag. Kept out
// of main() so the rules are unit-tested.
#pragma once

#include <string_view>

#include "strata/common/error.h"
#include "strata/sched/scheduler.h"

namespace strata::manager {

// Largest accepted overcommit ratio (a typo guard: 1000x is not a policy anyone means).
inline constexpr double kMaxOvercommit = 64.0;

// True when `flag` is one of the scheduler flags (then set_scheduler_option applies it).
bool is_scheduler_flag(std::string_view flag);

// Parses `value` for `flag` into `config`. invalid_argument (field = the flag without
// dashes) for text that is not a number, a ratio outside (0, kMaxOvercommit], or a
// strategy other than spread|pack.
Status set_scheduler_option(sched::SchedulerConfig& config, std::string_view flag,
                            std::string_view value);

}  // namespace strata::manager
