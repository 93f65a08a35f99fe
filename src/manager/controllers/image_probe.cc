// image_probe.h: `qemu-img info` on an upload, under a timeout and resource limits, and
// the rules for what the catalog keeps.
#include "strata/manager/controllers/image_probe.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "strata/common/iso_image.h"
#include "strata/common/process.h"
#include "strata/model/vm_spec.h"

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

std::string sniff_disk_format(std::string_view b) {
  if (b.size() >= 4 && b.substr(0, 4) == std::string_view("QFI\xfb", 4)) return "qcow2";
  if (b.size() >= 4 && b.substr(0, 4) == "KDMV") return "vmdk";
  if (b.rfind("# Disk DescriptorFile", 0) == 0) return "vmdk-descriptor";
  return "raw";
}

Result<ImageFacts> judge_import_info(std::string_view json_text, std::string_view format,
                                     const std::string& field) {
  using nlohmann::json;
  auto refuse = [&](std::string m) { return tl::unexpected(Error{ErrorCode::invalid_argument,
                                                                 std::move(m), field}); };
  if (format != "qcow2" && format != "raw" && format != "vmdk")
    return refuse(fmt::format("unsupported disk format '{}' (qcow2, raw or vmdk)", format));
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return internal_error("qemu-img info: output is not a JSON object");
  try {
    ImageFacts f;
    if (auto it = j.find("format"); it != j.end() && it->is_string()) f.format = *it;
    if (auto it = j.find("virtual-size"); it != j.end() && it->is_number_integer())
      f.virtual_size = it->get<int64_t>();
    if (f.format != format)
      return refuse(fmt::format("qemu-img reads the disk as '{}', not '{}'", f.format, format));
    if (f.virtual_size <= 0 || static_cast<uint64_t>(f.virtual_size) > model::kMaxDiskBytes)
      return refuse(fmt::format("the disk's virtual size {} is outside 1..{} bytes",
                                f.virtual_size, model::kMaxDiskBytes));
    for (const char* key : {"backing-filename", "full-backing-filename"})
      if (j.contains(key))
        return refuse("disks with a backing file are refused; flatten it first (qemu-img "
                      "convert)");
    if (auto fs = j.find("format-specific"); fs != j.end() && fs->is_object()) {
      auto data = fs->find("data");
      if (data != fs->end() && data->is_object()) {
        if (data->contains("data-file"))
          return refuse("qcow2 disks with an external data file are refused");
        if (format == "vmdk") {
          std::string type = data->value("create-type", "");
          if (type != "monolithicSparse" && type != "streamOptimized")
            return refuse(fmt::format(
                "vmdk create type '{}' is refused (monolithicSparse or streamOptimized: one "
                "self-contained file)",
                type));
          auto ext = data->find("extents");
          if (ext == data->end() || !ext->is_array() || ext->size() != 1)
            return refuse("a vmdk must have exactly one extent (itself)");
        }
      }
    } else if (format == "vmdk") {
      return refuse("qemu-img reports no vmdk details");
    }
    return f;
  } catch (const nlohmann::json::exception& e) {
    return internal_error(std::string("qemu-img info output: ") + e.what());
  }
}

Result<ImageFacts> probe_import_disk(const std::string& path, std::string_view format,
                                     const std::string& field, const ProbeLimits& limits) {
  RunOptions o;
  o.timeout = std::chrono::milliseconds(limits.timeout_ms);
  o.max_address_space_bytes = limits.max_address_space_bytes;
  o.max_cpu_seconds = limits.max_cpu_seconds;
  o.max_output_bytes = 1 << 20;
  auto r = run_process(
      {"qemu-img", "info", "-f", std::string(format), "--output=json", path}, o);
  if (!r) {
    if (r.error().code == ErrorCode::not_found)
      return make_error(ErrorCode::unavailable, "qemu-img is not installed on the manager");
    return tl::unexpected(r.error());
  }
  if (r->timed_out || r->signaled)
    return make_error(ErrorCode::invalid_argument,
                      "probing the disk with qemu-img exceeded its limits", field);
  if (r->exit_code != 0)
    return make_error(ErrorCode::invalid_argument,
                      "not a readable " + std::string(format) + " disk: " +
                          r->err.substr(0, std::min<size_t>(r->err.size(), 500)),
                      field);
  return judge_import_info(r->out, format, field);
}

std::optional<double> QemuImgProgress::feed(std::string_view chunk) {
  std::optional<double> latest;
  for (char c : chunk) {
    if (c == '(') {
      figure_.clear();
      in_figure_ = true;
    } else if (!in_figure_) {
      continue;
    } else if (c == ')') {
      in_figure_ = false;
      std::string_view f = figure_;
      constexpr std::string_view kOf = "/100%";
      if (f.size() > kOf.size() && f.substr(f.size() - kOf.size()) == kOf) {
        std::string_view num = f.substr(0, f.size() - kOf.size());
        bool plain = std::all_of(num.begin(), num.end(),
                                 [](char d) { return (d >= '0' && d <= '9') || d == '.'; });
        double v = -1;
        auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
        if (plain && ec == std::errc() && end == num.data() + num.size() && v >= 0 && v <= 100)
          latest = v;
      }
      figure_.clear();
    } else if (figure_.size() >= 16) {  // "100.00/100%" is 11 bytes: not a figure
      in_figure_ = false;
      figure_.clear();
    } else {
      figure_.push_back(c);
    }
  }
  return latest;
}

Status convert_to_qcow2(const std::string& in, std::string_view format, const std::string& out,
                        const std::string& field, const ConvertLimits& limits,
                        const std::function<void(double)>& on_progress) {
  RunOptions o;
  o.timeout = std::chrono::milliseconds(limits.timeout_ms);
  o.max_address_space_bytes = limits.max_address_space_bytes;
  o.max_output_bytes = 1 << 20;
  QemuImgProgress progress;
  if (on_progress)
    o.on_stdout = [&](std::string_view chunk) {
      if (auto pct = progress.feed(chunk)) on_progress(*pct);
    };
  auto r = run_process({"qemu-img", "convert", on_progress ? "-p" : "-q", "-f", std::string(format),
                        "-O", "qcow2", in, out},
                       o);
  if (!r) {
    if (r.error().code == ErrorCode::not_found)
      return make_error(ErrorCode::unavailable, "qemu-img is not installed on the manager");
    return tl::unexpected(r.error());
  }
  if (r->timed_out)
    return make_error(ErrorCode::deadline_exceeded,
                      fmt::format("converting the disk took longer than {} ms", limits.timeout_ms),
                      field);
  if (r->signaled || r->exit_code != 0)
    return make_error(ErrorCode::invalid_argument,
                      "qemu-img could not convert the disk: " +
                          r->err.substr(0, std::min<size_t>(r->err.size(), 500)),
                      field);
  return {};
}

}  // namespace strata::manager
