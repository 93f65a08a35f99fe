// Recognises an optical-disc image: ISO 9660 (ECMA-119) or UDF (ECMA-167). Both start
// with volume descriptors of 2048 bytes from byte 32768 (sector 16): ISO 9660's carry
// "CD001" at offset 1, UDF's volume recognition sequence "BEA01", "NSR02"/"NSR03",
// "TEA01". Used for the `iso` image kind (docs/internals/images.md): an upload called an
// iso that is not one is refused, so a disk image never reaches the CD-ROM under it.
#pragma once

#include <string>
#include <string_view>

#include "strata/common/error.h"

namespace strata {

inline constexpr size_t kIsoDescriptorsOffset = 32768;
inline constexpr size_t kIsoDescriptorSize = 2048;
inline constexpr size_t kIsoDescriptorsScanned = 16;

// Pure: `area` holds the bytes from offset 32768 (any length). True when its first
// descriptor is ISO 9660 ("CD001") or a UDF recognition sequence holds an NSR descriptor
// among the first kIsoDescriptorsScanned ones (a UDF-only disc has no CD001).
bool is_iso_volume_area(std::string_view area);

// Reads the descriptor area of the file at `path`: invalid_argument naming `field` when it
// is no ISO 9660/UDF image (too short, or no such descriptor), internal when unreadable.
Status check_iso_image(const std::string& path, const std::string& field);

}  // namespace strata
