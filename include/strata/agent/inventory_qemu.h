// QEMU capabilities, probed by asking the binary over QMP (never inferred from its
// version): version string, machine types, accelerators. The transcript parser is pure
// so recorded transcripts from real QEMU binaries can be unit-tested.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "strata/common/error.h"

namespace strata::agent {

struct QemuMachineType {
  std::string name;              // "pc-q35-7.2"
  std::string alias;             // "q35", empty if none
  bool is_default = false;
  bool deprecated = false;
  int64_t cpu_max = 0;
};

struct QemuCapabilities {
  std::string binary;            // path that was probed
  std::string version;           // "7.2.22"
  std::string package;           // "Debian 1:7.2+dfsg-7+deb12u18+b3"
  std::vector<QemuMachineType> machines;  // sorted by name
  // Accelerators this binary was built with ("kvm", "tcg"), from the QOM types that
  // implement "accel" (qom-list-types works on every QEMU version we support).
  std::vector<std::string> accelerators;
  // Whether the binary answers query-accelerators (absent in QEMU 7.2). Recorded only;
  // its reply is not relied on.
  bool has_query_accelerators = false;
  // From query-kvm: whether this QEMU was built with / can open KVM. Says nothing about
  // whether a guest can actually run: that is what probe_accelerator checks.
  bool kvm_present = false;
  // From query-command-line-options(sandbox): QEMU has a seccomp -sandbox option with
  // every parameter the agent sets (obsolete, elevateprivileges, spawn, resourcecontrol).
  // False when the binary was built without seccomp: VMs then run without the filter.
  bool sandbox = false;
  // The CPU model names this binary defines (query-cpu-definitions), concrete ones only
  // ("Westmere-v1"; aliases such as "Westmere" and the special "max", "host" and "base"
  // left out), sorted. Which of them a host can offer depends on the accelerator: see
  // cpu_models.h. Empty when the binary answered no query-cpu-definitions.
  std::vector<std::string> cpu_model_names;

  // Resolves "q35" or "pc-q35-7.2" to the machine entry; nullptr if unknown.
  const QemuMachineType* find_machine(std::string_view name_or_alias) const;
};

// The stdin sent to `qemu-system-* -machine none -qmp stdio`: one command per line,
// each with an "id" so replies are matched by id, not by position.
std::string qmp_probe_script();

// Parses the stdout of that session: greeting, replies (matched by id), events
// (ignored). Error (invalid_argument, field naming the reply) on malformed JSON, a
// missing greeting, a missing reply, or a reply missing required fields.
Result<QemuCapabilities> parse_qmp_probe_transcript(std::string_view transcript);

// The replies of a QMP session recorded from stdio, by id (greeting checked, events
// skipped). Error (invalid_argument) on malformed JSON, a missing greeting or a reply
// without id. Shared by the capability and the CPU model probes.
Result<std::map<std::string, nlohmann::json>> qmp_transcript_replies(std::string_view transcript);

// Runs the binary with the probe script and parses its answers.
Result<QemuCapabilities> probe_qemu_capabilities(
    const std::string& qemu_binary = "qemu-system-x86_64",
    std::chrono::milliseconds timeout = std::chrono::seconds(20));

nlohmann::json to_json(const QemuCapabilities& caps);

}  // namespace strata::agent
