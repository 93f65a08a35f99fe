#!/usr/bin/env bash
# cloud-init and guest facts in the web console (issue 11), with a real guest: stratad
# --all-in-one serving web/dist; web/test/browser/guest.mjs (headless Debian Chromium,
# playwright-core) creates the Debian guest from the create wizard with a host name, a user,
# an SSH key and sudo, starts it, and waits on its VM page, never reloaded, for the guest
# facts (host name set by cloud-init, OS, 10.0.2.x address) that the manager's vm.guest
# event brings. Needs QEMU, cloud-localds and the Debian image (scripts/guest-images
# debian); exits 77 (SKIPPED) otherwise. A few minutes under TCG.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_tools curl jq node qemu-system-x86_64 qemu-img cloud-localds
need_binaries
[ -x "$STRATA_CLI" ] || skip "strata CLI not built ($STRATA_CLI)"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || skip "chromium is not installed ($CHROMIUM; scripts/setup installs it)"
[ -f "$REPO/web/dist/index.html" ] || skip "the web console is not built (scripts/setup, or cd web && npm ci && npm run build)"
[ -d "$REPO/web/node_modules/playwright-core" ] || skip "web/node_modules is missing (cd web && npm ci)"
need_debian_image

PORT=${E2E_WEB_PORT:-$(free_port)}
WORK=$(mktemp -d /tmp/strata-e2e-webguest.XXXXXX)
D=$WORK/d
SOCK=$D/agent/agent.sock
MGR_PID=
HOST=web-guest-host
: "${SHOTS_DIR:=$PWD/web-screenshots}"

cleanup() { e2e_allinone_cleanup $? 40 stratad="$D/stratad.log" agent="$D/agent.log"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

start_stratad "$D" "127.0.0.1:$PORT" --all-in-one --accel tcg --host-name "$HOST" \
  --web-root "$REPO/web/dist"
host_up() { [ "$(api GET "/api/v1/hosts/$HOST" | jq -r .state)" = up ]; }
wait_for 60 "host up" host_up || fail "the local host did not come up: $(api GET /api/v1/hosts)"
cli() { env STRATA_SERVER="$API_URL" STRATA_TOKEN="$TOKEN" "$STRATA_CLI" "$@"; }
cli image import debian-kernel "$DEBIAN_KERNEL" --kind kernel >/dev/null
cli image import debian-initrd "$DEBIAN_INITRD" --kind initrd >/dev/null
cli image import debian-disk "$DEBIAN_DISK" --kind disk >/dev/null
log "images imported"

# BOOT_LIMIT_S bounds a hang, it is no timing assertion: systemd under TCG on a loaded
# machine takes from ~15 s to a few minutes; the facts come at most 30 s (agent poll) + 10 s
# (resync) later.
STRATA_URL="$API_URL" ADMIN_TOKEN="$TOKEN" VM_NAME=web-deb VM_CMDLINE="$DEBIAN_CMDLINE" \
  BOOT_LIMIT_S=600 SHOTS_DIR="$SHOTS_DIR" CHROMIUM="$CHROMIUM" node "$REPO/web/test/browser/guest.mjs"
api DELETE /api/v1/vms/web-deb >/dev/null
