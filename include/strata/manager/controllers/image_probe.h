// What an uploaded file is, according to `qemu-img info` with format detection, and
// whether the catalog may keep it as an image of a given kind. Every upload is probed,
// whatever its kind: a file whose header names another file (a qcow2 backing file or
// external data file, a vmdk extent, ...) would make a host that opens it as a disk read
// a path of the uploader's choosing.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
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

// ---- VM import (docs/internals/import.md): disks from another platform, converted.

// Pure: the format an import disk's first bytes show: "qcow2" (QFI\xfb), "vmdk" (a hosted
// sparse extent, KDMV: monolithicSparse or streamOptimized), "vmdk-descriptor" (a text
// descriptor naming extent files by path: refused), otherwise "raw".
std::string sniff_disk_format(std::string_view first_bytes);

// Pure: judges `qemu-img info -f <format> --output=json` of an import disk. qcow2, raw or
// vmdk; no backing file (a vmdk parentFileNameHint shows as one), no external data file;
// a vmdk must be one self-contained extent (monolithicSparse or streamOptimized); the
// virtual size at most model::kMaxDiskBytes. Refusals are invalid_argument on `field`.
Result<ImageFacts> judge_import_info(std::string_view json_text, std::string_view format,
                                     const std::string& field);

// Runs `qemu-img info -f <format>` on `path` (a file the manager wrote) under `limits` and
// judges it with judge_import_info.
Result<ImageFacts> probe_import_disk(const std::string& path, std::string_view format,
                                     const std::string& field, const ProbeLimits& limits = {});

// Limits of `qemu-img convert` of an import disk: as long as the disk needs, bounded.
struct ConvertLimits {
  int64_t timeout_ms = 6 * 3600 * 1000;
  uint64_t max_address_space_bytes = 4ull << 30;
};

// Reads `qemu-img convert -p` output ("    (12.34/100%)\r", repeated) in chunks as they
// arrive, split anywhere. Holds at most a few bytes between chunks whatever the output;
// anything but "(<number 0..100>/100%)" is skipped.
class QemuImgProgress {
 public:
  // The last percentage that this chunk completed, if any.
  std::optional<double> feed(std::string_view chunk);

 private:
  std::string figure_;  // bytes after the last '(' not yet closed
  bool in_figure_ = false;
};

// `qemu-img convert -f <format> -O qcow2 <in> <out>` (both paths the manager's own files;
// the format forced, never detected). unavailable when qemu-img is missing. With
// `on_progress`, qemu-img runs with -p and each percentage it prints (0..100) is passed on,
// on the calling thread.
Status convert_to_qcow2(const std::string& in, std::string_view format, const std::string& out,
                        const std::string& field, const ConvertLimits& limits = {},
                        const std::function<void(double)>& on_progress = {});

}  // namespace strata::manager
