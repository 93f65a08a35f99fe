// image_probe.h: `qemu-img info` on an upload, under a timeout and resource limits, and
// the rules for what the catalog keeps.
#include "strata/manager/controllers/image_probe.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "strata/common/iso_image.h"
#include "strata/common/process.h"

namespace strata::manager {

namespace {

Error refused(std::string message) {
  return Error{ErrorCode::invalid_argument, std::move(message), "body"};
}

}  // namespace

Result<ImageFacts> judge_image_info(std::string_view json_text, std::string_view kind) {
  using nlohmann::json;
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return internal_error("qemu-img info: output is not a JSON object");
  try {
    ImageFacts f;
    if (auto it = j.find("format"); it != j.end() && it->is_string()) f.format = *it;
    if (auto it = j.find("virtual-size"); it != j.end() && it->is_number_integer())
      f.virtual_size = it->get<int64_t>();
    if (f.format.empty()) return internal_error("qemu-img info: no \"format\"");
    // Whatever the kind: a file that names another file is refused outright.
    for (const char* key : {"backing-filename", "full-backing-filename"})
      if (j.contains(key))
        return tl::unexpected(refused(
            "images with a backing file are refused; flatten it first (qemu-img convert -O "
            "qcow2)"));
    if (auto fs = j.find("format-specific"); fs != j.end() && fs->is_object()) {
      auto data = fs->find("data");
      if (data != fs->end() && data->is_object() && data->contains("data-file"))
        return tl::unexpected(refused("qcow2 images with an external data file are refused"));
    }
    if (kind == "disk") {
      if (f.format != "qcow2" && f.format != "raw")
        return tl::unexpected(
            refused(fmt::format("unsupported disk format '{}' (qcow2 or raw)", f.format)));
    } else if (f.format != "raw") {
      // QEMU reads -kernel/-initrd as plain bytes; an image format here is either a
      // mistake or a file meant to be used later as a disk under the wrong kind.
      return tl::unexpected(refused(fmt::format(
          "a {} must be a plain file, but qemu-img reads this one as a {} image", kind,
          f.format)));
    }
    return f;
  } catch (const nlohmann::json::exception& e) {
    return internal_error(std::string("qemu-img info output: ") + e.what());
  }
}

Result<ImageFacts> probe_image(const std::string& path, std::string_view kind,
                               const ProbeLimits& limits) {
  RunOptions o;
  o.timeout = std::chrono::milliseconds(limits.timeout_ms);
  o.max_address_space_bytes = limits.max_address_space_bytes;
  o.max_cpu_seconds = limits.max_cpu_seconds;
  o.max_output_bytes = 1 << 20;
  // qemu-img opens only the image itself for `info` (never a backing chain or data file).
  auto r = run_process({"qemu-img", "info", "--output=json", path}, o);
  if (!r) {
    if (r.error().code == ErrorCode::not_found)
      return make_error(ErrorCode::unavailable, "qemu-img is not installed on the manager");
    return tl::unexpected(r.error());
  }
  if (r->timed_out)
    return tl::unexpected(refused(fmt::format(
        "probing the image with qemu-img took longer than {} ms", limits.timeout_ms)));
  if (r->signaled)
    return tl::unexpected(refused(fmt::format(
        "probing the image with qemu-img exceeded its limits (signal {})", r->term_signal)));
  if (r->exit_code != 0)
    return tl::unexpected(
        refused("not a readable image: " + r->err.substr(0, std::min<size_t>(r->err.size(), 500))));
  auto facts = judge_image_info(r->out, kind);
  if (!facts) return facts;
  // An iso must be what its kind says: ISO 9660 or UDF (the volume descriptors at byte
  // 32768), so a disk image never reaches a VM's CD-ROM under it.
  if (kind == "iso")
    if (auto st = check_iso_image(path, "body"); !st) {
      if (st.error().code == ErrorCode::invalid_argument)
        return tl::unexpected(
            refused("an iso must be an ISO 9660 or UDF image: " + st.error().message));
      return tl::unexpected(st.error());
    }
  return facts;
}

}  // namespace strata::manager
