// The accelerator probe guest: a 512-byte real-mode boot sector, assembled here from
// hand-encoded instructions (with rel8 jump fix-ups) so no assembler is needed at build
// time. It checks cpuid, fninit+fxsave and cmpxchg8b (instructions nested/emulated KVM
// implementations are known to fail on), then writes a ProbeGuestCode to the
// isa-debug-exit port and halts.
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "strata/agent/accel_probe.h"

namespace strata::agent {
namespace {

// Minimal code buffer: raw bytes, labels and 8-bit relative jumps resolved at the end.
class Code {
 public:
  void emit(std::initializer_list<uint8_t> bytes) { bytes_.insert(bytes_.end(), bytes); }
  void label(const std::string& name) { labels_[name] = bytes_.size(); }
  // Short jump/jcc: `opcode rel8`.
  void jump(uint8_t opcode, const std::string& target) {
    bytes_.push_back(opcode);
    fixups_.emplace_back(bytes_.size(), target);
    bytes_.push_back(0);
  }
  void mov_al(ProbeGuestCode c) { emit({0xB0, static_cast<uint8_t>(c)}); }
  std::vector<uint8_t> finish() {
    for (const auto& [at, target] : fixups_) {
      // rel8 is relative to the end of the jump instruction; labels are all in range
      // (the whole program is far below 128 bytes).
      auto rel = static_cast<int>(labels_.at(target)) - static_cast<int>(at + 1);
      bytes_[at] = static_cast<uint8_t>(static_cast<int8_t>(rel));
    }
    return bytes_;
  }

 private:
  std::vector<uint8_t> bytes_;
  std::map<std::string, size_t> labels_;
  std::vector<std::pair<size_t, std::string>> fixups_;
};

constexpr uint8_t JZ = 0x74, JNZ = 0x75, JMP = 0xEB;

}  // namespace

std::vector<uint8_t> make_probe_boot_sector() {
  Code c;
  // Loaded at 0000:7C00 by the BIOS. Flat real-mode segments, stack below the code.
  c.emit({0xFA});                    // cli
  c.emit({0x31, 0xC0});              // xor ax, ax
  c.emit({0x8E, 0xD8});              // mov ds, ax
  c.emit({0x8E, 0xC0});              // mov es, ax
  c.emit({0x8E, 0xD0});              // mov ss, ax
  c.emit({0xBC, 0x00, 0x7C});        // mov sp, 0x7c00

  // cpuid leaf 0: a vendor string must come back (ebx != 0).
  c.emit({0x66, 0x31, 0xC0});        // xor eax, eax
  c.emit({0x0F, 0xA2});              // cpuid
  c.emit({0x66, 0x85, 0xDB});        // test ebx, ebx
  c.jump(JZ, "fail_cpuid");

  // cpuid leaf 1: FXSR (edx bit 24) must be advertised.
  c.emit({0x66, 0xB8, 0x01, 0x00, 0x00, 0x00});        // mov eax, 1
  c.emit({0x0F, 0xA2});                                // cpuid
  c.emit({0x66, 0xF7, 0xC2, 0x00, 0x00, 0x00, 0x01});  // test edx, 0x01000000
  c.jump(JZ, "fail_fxsr");

  // fninit sets FCW to 0x037F; fxsave must store it at offset 0 of a 16-aligned area.
  c.emit({0xDB, 0xE3});                    // fninit
  c.emit({0x0F, 0xAE, 0x06, 0x00, 0x80});  // fxsave [0x8000]
  c.emit({0x81, 0x3E, 0x00, 0x80, 0x7F, 0x03});  // cmp word [0x8000], 0x037f
  c.jump(JNZ, "fail_fxsave");

  // cmpxchg8b: [0x8200] = 0, edx:eax = 0 matches, so ecx:ebx must be stored.
  c.emit({0x66, 0xC7, 0x06, 0x00, 0x82, 0x00, 0x00, 0x00, 0x00});  // mov dword [0x8200], 0
  c.emit({0x66, 0xC7, 0x06, 0x04, 0x82, 0x00, 0x00, 0x00, 0x00});  // mov dword [0x8204], 0
  c.emit({0x66, 0x31, 0xC0});                          // xor eax, eax
  c.emit({0x66, 0x31, 0xD2});                          // xor edx, edx
  c.emit({0x66, 0xBB, 0x4B, 0x52, 0x54, 0x53});        // mov ebx, 0x5354524b ("KRTS")
  c.emit({0x66, 0xB9, 0x31, 0x41, 0x54, 0x41});        // mov ecx, 0x41544131
  c.emit({0x0F, 0xC7, 0x0E, 0x00, 0x82});              // cmpxchg8b [0x8200]
  c.jump(JNZ, "fail_cmpxchg");
  c.emit({0x66, 0x39, 0x1E, 0x00, 0x82});              // cmp [0x8200], ebx
  c.jump(JNZ, "fail_cmpxchg");
  c.emit({0x66, 0x39, 0x0E, 0x04, 0x82});              // cmp [0x8204], ecx
  c.jump(JNZ, "fail_cmpxchg");

  c.mov_al(ProbeGuestCode::pass);
  c.jump(JMP, "report");
  c.label("fail_cpuid");
  c.mov_al(ProbeGuestCode::cpuid_failed);
  c.jump(JMP, "report");
  c.label("fail_fxsr");
  c.mov_al(ProbeGuestCode::no_fxsr);
  c.jump(JMP, "report");
  c.label("fail_fxsave");
  c.mov_al(ProbeGuestCode::fxsave_mismatch);
  c.jump(JMP, "report");
  c.label("fail_cmpxchg");
  c.mov_al(ProbeGuestCode::cmpxchg8b_failed);
  c.label("report");
  c.emit({0xE6, static_cast<uint8_t>(kProbeDebugExitPort)});  // out 0xf4, al -> QEMU exits
  c.label("hang");                   // only reached if the debug-exit device is missing
  c.emit({0xF4});                    // hlt
  c.jump(JMP, "hang");

  std::vector<uint8_t> sector = c.finish();
  sector.resize(512, 0);
  sector[510] = 0x55;  // boot signature
  sector[511] = 0xAA;
  return sector;
}

}  // namespace strata::agent
