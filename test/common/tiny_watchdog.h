// The tiny guest's shell command that arms its i6300esb watchdog and never feeds it (a hung
// guest), for the watchdog tests (docs/internals/qemu-driver.md, "Guest watchdog"). Debian's
// cloud kernel has no i6300esb driver, so the shell programs the device as that driver
// does: unlock and load both stage timers (MMIO, devmem), reboot on expiry with interrupts
// off (PCI config 0x60), enable (0x68). About 2 s per stage. It prints WD-2-ARMED.
#pragma once

namespace strata::test {

inline constexpr const char* kArmTinyWatchdog =
    "d=$(grep -l 0x25ab /sys/bus/pci/devices/*/device); d=${d%/device}; "
    "b=$(($(head -1 $d/resource | cut -d' ' -f1))); r=$((b+12)); "
    "devmem $r 8 0x80; devmem $r 8 0x86; devmem $b 32 2048; "
    "devmem $r 8 0x80; devmem $r 8 0x86; devmem $((b+4)) 32 2048; "
    "printf '\\003' | dd of=$d/config bs=1 seek=96 conv=notrunc 2>/dev/null; "
    "printf '\\002' | dd of=$d/config bs=1 seek=104 conv=notrunc 2>/dev/null; "
    "echo WD-$((1+1))-ARMED\n";

}  // namespace strata::test
