// Defensive parser for `qemu-img info --output=json`: every field is type-checked, and no
// nlohmann exception escapes.
#include <nlohmann/json.hpp>

#include "strata/agent/image_store.h"

namespace strata::agent {

Result<ImageInfo> parse_qemu_img_info(const std::string& json_text) {
  using nlohmann::json;
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return internal_error("qemu-img info: output is not valid JSON");
  if (!j.is_object()) return internal_error("qemu-img info: output is not a JSON object");
  try {
    ImageInfo info;
    auto fmt = j.find("format");
    if (fmt == j.end() || !fmt->is_string() || fmt->get<std::string>().empty())
      return internal_error("qemu-img info: missing or non-string \"format\"");
    info.format = fmt->get<std::string>();
    auto vsize = j.find("virtual-size");
    if (vsize == j.end() || !vsize->is_number_unsigned())
      return internal_error("qemu-img info: missing or invalid \"virtual-size\"");
    info.virtual_size = vsize->get<uint64_t>();
    // actual-size is absent for some protocols; 0 then means "unknown".
    if (auto a = j.find("actual-size"); a != j.end()) {
      if (!a->is_number_unsigned()) return internal_error("qemu-img info: invalid \"actual-size\"");
      info.actual_size = a->get<uint64_t>();
    }
    // Prefer the resolved name; fall back to the name stored in the image header.
    for (const char* key : {"full-backing-filename", "backing-filename"}) {
      auto b = j.find(key);
      if (b == j.end()) continue;
      if (!b->is_string())
        return internal_error(std::string("qemu-img info: invalid \"") + key + "\"");
      info.backing_file = b->get<std::string>();
      break;
    }
    if (auto fs = j.find("format-specific"); fs != j.end() && fs->is_object()) {
      auto data = fs->find("data");
      if (data != fs->end() && data->is_object()) {
        if (auto df = data->find("data-file"); df != data->end()) {
          if (!df->is_string()) return internal_error("qemu-img info: invalid \"data-file\"");
          info.data_file = df->get<std::string>();
        }
        if (auto bms = data->find("bitmaps"); bms != data->end()) {
          if (!bms->is_array()) return internal_error("qemu-img info: invalid \"bitmaps\"");
          for (const auto& b : *bms) {
            auto name = b.is_object() ? b.find("name") : b.end();
            auto flags = b.is_object() ? b.find("flags") : b.end();
            if (!b.is_object() || name == b.end() || !name->is_string() || flags == b.end() ||
                !flags->is_array())
              return internal_error("qemu-img info: invalid entry in \"bitmaps\"");
            ImageInfo::Bitmap bm;
            bm.name = name->get<std::string>();
            if (auto g = b.find("granularity"); g != b.end() && g->is_number_unsigned())
              bm.granularity = g->get<uint64_t>();
            for (const auto& f : *flags) {
              if (!f.is_string()) return internal_error("qemu-img info: invalid bitmap flag");
              if (f == "auto") bm.recording = true;
              if (f == "in-use") bm.inconsistent = true;
            }
            info.bitmaps.push_back(std::move(bm));
          }
        }
      }
    }
    return info;
  } catch (const json::exception& e) {
    return internal_error(std::string("qemu-img info: ") + e.what());
  }
}

}  // namespace strata::agent
