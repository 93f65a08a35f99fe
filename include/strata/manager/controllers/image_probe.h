// What an uploaded file is, according to `qemu-img info` with format detection, and
// whether the catalog may keep it as an image of a given kind. Every upload is probed,
// whatever its kind: a file whose header names another file (a qcow2 backing file or
// external data file, a vmdk extent, ...) would make a host that opens it as a disk read
// a path of the uploader's choosing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "strata/common/error.h"

namespace strata::manager {

struct ImageFacts {
  std::string format;        // "qcow2" or "raw"
  int64_t virtual_size = 0;  // bytes the guest sees (the file size for raw)
};

// Pure: judges the JSON of `qemu-img info --output=json` for an image of `kind`
// ("disk", "kernel", "initrd"). Disks: qcow2 or raw, no backing file, no external data
// file. Kernels and initrds are handed to QEMU as plain files, so they must probe as raw
// (no image format at all). Refusals are invalid_argument on the field "body".
Result<ImageFacts> judge_image_info(std::string_view json_text, std::string_view kind);

// Limits of the qemu-img child: it parses bytes of a user's choosing.
struct ProbeLimits {
  int64_t timeout_ms = 30'000;
  uint64_t max_address_space_bytes = 1ull << 30;
  uint64_t max_cpu_seconds = 20;
};

// Runs `qemu-img info --output=json` on `path` under `limits` and judges the answer.
// qemu-img missing: unavailable; a probe that runs out of time or CPU: invalid_argument
// (the file is not a usable image).
Result<ImageFacts> probe_image(const std::string& path, std::string_view kind,
                               const ProbeLimits& limits = {});

}  // namespace strata::manager
