// ISO 9660 / UDF recognition (see iso_image.h).
#include "strata/common/iso_image.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace strata {

bool is_iso_volume_area(std::string_view area) {
  auto id_at = [&](size_t i) -> std::string_view {
    size_t off = i * kIsoDescriptorSize + 1;
    if (area.size() < off + 5) return {};
    return area.substr(off, 5);
  };
  if (id_at(0) == "CD001") return true;
  // UDF: BEA01 opens the extended area; an NSR02/NSR03 inside it names UDF.
  bool in_extended = false;
  for (size_t i = 0; i < kIsoDescriptorsScanned; ++i) {
    std::string_view id = id_at(i);
    if (id.empty()) break;
    if (id == "BEA01")
      in_extended = true;
    else if (in_extended && (id == "NSR02" || id == "NSR03"))
      return true;
    else if (id == "TEA01")
      in_extended = false;
    else if (id != "CD001" && id != "BOOT2" && id != "CDW02")
      break;
  }
  return false;
}

Status check_iso_image(const std::string& path, const std::string& field) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return internal_error("open " + path + ": " + std::strerror(errno));
  std::string buf(kIsoDescriptorSize * kIsoDescriptorsScanned, '\0');
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::pread(fd, buf.data() + got, buf.size() - got,
                        static_cast<off_t>(kIsoDescriptorsOffset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return internal_error("read " + path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  buf.resize(got);
  if (!is_iso_volume_area(buf))
    return invalid_argument(field,
                            "not an ISO 9660 or UDF image (no volume descriptor at byte 32768)");
  return {};
}

}  // namespace strata
