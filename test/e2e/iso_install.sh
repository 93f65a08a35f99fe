#!/usr/bin/env bash
# Installing from an ISO, UEFI, end to end (issue 12): stratad --all-in-one; a bootable ISO
# (the tiny guest's kernel and initrd, grub on the serial console, made by grub-mkrescue)
# and a data ISO go into the catalog with `strata image import --kind iso` (a kernel
# called an iso is refused); `strata vm create --cdrom --boot cdrom --firmware uefi`
# boots it under OVMF from the CD-ROM; `strata vm cdrom insert|eject --wait` changes the
# medium while the guest runs: the VM's QEMU has the new file open (/proc/PID/fd) and the
# spec records it; a disk image is refused for the CD-ROM. Needs QEMU, ovmf, grub-mkrescue
# (grub-pc-bin, grub-efi-amd64-bin), xorriso, mtools and the tiny image; else exits 77.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_tools curl jq qemu-system-x86_64 qemu-img grub-mkrescue xorriso mformat
need_binaries
[ -x "$STRATA_CLI" ] || skip "strata CLI not built ($STRATA_CLI)"
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip "no OVMF (apt-get install ovmf)"
[ -d /usr/lib/grub/x86_64-efi ] && [ -d /usr/lib/grub/i386-pc ] ||
  skip "grub-efi-amd64-bin / grub-pc-bin missing (scripts/setup)"
need_tiny_images

PORT=${E2E_ISO_PORT:-$(free_port)}
WORK=$(mktemp -d /tmp/strata-e2e-iso.XXXXXX)
chmod o+x "$WORK"  # QEMU runs as strata-qemu (when it exists), which must search it
D=$WORK/d
SOCK=$D/agent/agent.sock
MGR_PID=
BOOT_LIMIT=300  # a bound for a hang, not a timing assertion

cleanup() { e2e_allinone_cleanup $? 40 stratad="$D/stratad.log" agent="$D/agent.log"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/live/boot/grub" "$WORK/data"
cp "$TINY_KERNEL" "$WORK/live/vmlinuz"
cp "$TINY_INITRD" "$WORK/live/initrd.img"
cat >"$WORK/live/boot/grub/grub.cfg" <<CFG
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=0
menuentry tiny {
  echo STRATA-GRUB-ON-CDROM
  linux /vmlinuz $TINY_CMDLINE
  initrd /initrd.img
}
CFG
echo "second medium" >"$WORK/data/marker.txt"
grub-mkrescue -o "$WORK/live.iso" "$WORK/live" >/dev/null 2>&1 || fail "grub-mkrescue failed"
xorriso -as mkisofs -quiet -o "$WORK/data.iso" "$WORK/data" >/dev/null 2>&1 || fail "xorriso failed"

start_stratad "$D" "127.0.0.1:$PORT" --all-in-one --accel tcg --host-name iso-host
cli() { env STRATA_SERVER="$API_URL" STRATA_TOKEN="$TOKEN" "$STRATA_CLI" "$@"; }
host_up() { [ "$(api GET /api/v1/hosts/iso-host | jq -r .state)" = up ]; }
wait_for 60 "host up" host_up || fail "host not up: $(api GET /api/v1/hosts)"

cli image import live "$WORK/live.iso" --kind iso >/dev/null
cli image import data "$WORK/data.iso" --kind iso >/dev/null
cli image import tiny-base "$TINY_BASE" --kind disk >/dev/null
[ "$(api GET /api/v1/images/live | jq -r .kind)" = iso ] || fail "live is not an iso image"
set +e
cli image import fake "$TINY_KERNEL" --kind iso >/dev/null 2>"$WORK/err"
rc=$?
set -e
[ "$rc" != 0 ] && grep -q "ISO 9660" "$WORK/err" || fail "a kernel accepted as an iso: $rc $(cat "$WORK/err")"
log "images imported (a kernel called an iso refused)"

T0=$(date +%s.%N)
cli vm create inst --vcpus 1 --memory 256M --disk name=root,size=64M --nic user \
  --cdrom live --boot cdrom --firmware uefi --wait >/dev/null
SHOW=$(api GET /api/v1/vms/inst)
[ "$(jq -r .spec.cdrom <<<"$SHOW")" = live ] && [ "$(jq -r .spec.firmware <<<"$SHOW")" = uefi ] &&
  [ "$(jq -c .spec.boot <<<"$SHOW")" = '["cdrom"]' ] || fail "spec: $(jq -c .spec <<<"$SHOW")"
cli vm console inst --until STRATA-READY --timeout ${BOOT_LIMIT}s --no-input >"$WORK/console" 2>&1 ||
  fail "no STRATA-READY under OVMF from the CD-ROM: $(tail -c 2000 "$WORK/console")"
grep -q STRATA-GRUB-ON-CDROM "$WORK/console" || fail "grub's line from the ISO is missing"
log "UEFI boot from the CD-ROM: create to STRATA-READY $(echo "$(date +%s.%N) - $T0" | bc | cut -c1-5) s"

# QEMU itself (its shim, the parent, carries the same arguments).
QPID=
for p in $(pgrep -f -- "guest=inst"); do
  [ "$(cat "/proc/$p/comm" 2>/dev/null)" = qemu-system-x86 ] && QPID=$p
done
[ -n "$QPID" ] || fail "no QEMU for inst"
# The files QEMU has open (read whole first: grep -q would cut ls short, and pipefail
# would count that as a failure).
open_files() { ls -l "/proc/$QPID/fd" 2>/dev/null || true; }
has_open() { local f; f=$(open_files); grep -q -- "/images/$1\$" <<<"$f"; }
has_open live || fail "QEMU has not the live iso open"
FILES=$(open_files)
grep -q "uefi-vars.fd" <<<"$FILES" || fail "QEMU has not the VM's UEFI variables open: $FILES"

cli vm cdrom inst insert data --wait >/dev/null
[ "$(api GET /api/v1/vms/inst | jq -r .spec.cdrom)" = data ] || fail "spec.cdrom is not data"
has_open data || fail "QEMU has not the data iso open after the change"
has_open live && fail "QEMU still holds the live iso"
cli vm cdrom inst eject --wait >/dev/null
[ "$(api GET /api/v1/vms/inst | jq -r .spec.cdrom)" = null ] || fail "spec.cdrom after eject"
has_open data && fail "QEMU still holds the data iso after eject"
log "medium changed and ejected while running"

set +e
cli vm cdrom inst insert tiny-base --wait >/dev/null 2>"$WORK/err"
rc=$?
set -e
[ "$rc" != 0 ] && grep -q "iso" "$WORK/err" || fail "a disk image went into the CD-ROM: $rc $(cat "$WORK/err")"
[ "$(api GET /api/v1/vms/inst | jq -r .status.state)" = running ] || fail "inst is not running"

cli vm delete inst --wait >/dev/null
log "PASS: ISO install under UEFI, medium change and eject through strata vm cdrom"
