#!/bin/sh
# Runs a netns test binary as root inside a throwaway QEMU guest booted from the Debian
# cloud kernel (an initramfs of busybox, the binary, its shared libraries and bridge(8)).
# For hosts whose own kernel lacks a feature the test needs: the CI machines' kernel has
# no CONFIG_BRIDGE_VLAN_FILTERING, Debian's has it. TCG; about 10-20 s.
#
#   test/agent/network/run_in_guest.sh BINARY KERNEL_ROOT [gtest args...]
#
# KERNEL_ROOT: an unpacked linux-image-*-cloud-amd64 (.../root with boot/ and lib/modules/),
# as scripts/guest-images leaves it in .cache/images/dl/kernel/<pkg>/root; or a folder
# holding such <pkg>/root folders (the newest is taken).
# Exit status: the test binary's, 2 when the guest did not report one, 77 (ctest's SKIPPED)
# when there is no such kernel or no QEMU.
set -eu
bin=$1 kroot=$2
shift 2
# As the other guest tests: $STRATA_IMAGES (or $STRATA_IMAGES_DL) overrides where the
# images are, like scripts/guest-images.
if [ ! -d "$kroot" ] && [ -n "${STRATA_IMAGES_DL:-${STRATA_IMAGES:-}}" ]; then
  kroot=${STRATA_IMAGES_DL:-$STRATA_IMAGES/dl}/kernel
fi
if [ ! -d "$kroot/lib/modules" ]; then
  found=$(ls -d "$kroot"/*/root 2>/dev/null | sort | tail -1 || true)
  if [ -z "$found" ]; then
    echo "SKIPPED: no unpacked Debian kernel under $kroot (scripts/guest-images makes it)"
    exit 77
  fi
  kroot=$found
fi
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v cpio >/dev/null; then
  echo "SKIPPED: qemu-system-x86_64 and cpio are needed"
  exit 77
fi
kver=$(ls "$kroot/lib/modules" | head -1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/mods" "$root/usr/sbin"
cp /bin/busybox "$root/bin/busybox"
for a in sh mount insmod poweroff echo cat mkdir ip; do ln -s busybox "$root/bin/$a"; done
for m in llc stp bridge tun; do
  f=$(find "$kroot/lib/modules/$kver/kernel" -name "$m.ko" -print -quit)
  [ -n "$f" ] || { echo "module $m not found under $kroot" >&2; exit 2; }
  cp "$f" "$root/mods/"
done
cp "$bin" "$root/test"
cp /usr/sbin/bridge "$root/usr/sbin/bridge"
# Shared libraries of both, at their own paths (the dynamic loader included).
for exe in "$bin" /usr/sbin/bridge; do
  ldd "$exe" | awk '/=> \//{print $3} /^\t\//{print $1}' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
args=""
for a in "$@"; do args="$args '$a'"; done
cat >"$root/init" <<INIT
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for m in llc stp bridge tun; do insmod /mods/\$m.ko; done
export PATH=/bin:/usr/sbin
/test $args
echo "GUEST TEST EXIT \$?"
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet --owner=0:0) | gzip -1 >"$work/initrd.img"
qemu-system-x86_64 -accel tcg -machine q35 -m 1024 -nographic -no-reboot -nodefaults \
  -serial stdio -kernel "$kroot/boot/vmlinuz-$kver" -initrd "$work/initrd.img" \
  -append "console=ttyS0 quiet panic=-1" </dev/null | tee "$work/console.log"
rc=$(sed -n 's/.*GUEST TEST EXIT \([0-9]*\).*/\1/p' "$work/console.log" | tail -1)
[ -n "$rc" ] || exit 2
exit "$rc"
