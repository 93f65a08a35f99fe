#!/usr/bin/env bash
# The web console in a real browser (issue 11): stratad --all-in-one serving web/dist, and
# web/test/browser/console.mjs driving headless Debian Chromium with playwright-core: log
# in, the host with its capacity bars, live events, hosts and VM lists, start a VM (when
# the tiny guest images exist), its VM page (pause/resume; a blank disk hot-plugged on a slot
# and detached), serial console (ready line,
# a typed command) and graphical console (noVNC connected, canvas sized), the host page, deleting a VM with confirmation, logout, a viewer
# without buttons whose forced request and console WebSocket are refused; backups (when a VM
# runs): two made from the VM page, listed, verified, one deleted, prune previewed, a
# schedule created and deleted, a sync, and the viewer's backups page without controls. Screenshots in $SHOTS_DIR (default: <build>/web-screenshots). Exits 77 (SKIPPED)
# without chromium, node or a built console.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_tools curl jq node
need_binaries
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || skip "chromium is not installed ($CHROMIUM; scripts/setup installs it)"
[ -f "$REPO/web/dist/index.html" ] || skip "the web console is not built (scripts/setup, or cd web && npm ci && npm run build)"
[ -d "$REPO/web/node_modules/playwright-core" ] || skip "web/node_modules is missing (cd web && npm ci)"

PORT=${E2E_WEB_PORT:-$(free_port)}
WORK=$(mktemp -d /tmp/strata-e2e-web.XXXXXX)
D=$WORK/d
SOCK=$D/agent/agent.sock
MGR_PID=
HOST=web-host
: "${SHOTS_DIR:=$PWD/web-screenshots}"

cleanup() { e2e_allinone_cleanup $? 30 stratad="$D/stratad.log"; }
trap cleanup EXIT

# --cpu-overcommit 32: the scroll step defines 26 more stopped VMs (1 vCPU each) on a
# 2-thread host.
# A datastore for the local agent: its capacity and use show as bars on the dashboard and
# the host page.
mkdir -p "$WORK/ds" "$WORK/repo" "$WORK/sync"
# Backups (the backups step): a repository and a sync target, as test/e2e/backup_restore.sh.
chmod o+x "$WORK"  # QEMU runs as strata-qemu (when it exists), which must search it
start_stratad "$D" "127.0.0.1:$PORT" --all-in-one --accel tcg --host-name "$HOST" \
  --heartbeat-ms 300 --web-root "$REPO/web/dist" --cpu-overcommit 32 --datastore "web-ds=$WORK/ds" \
  --backup-repo "$WORK/repo" --backup-sync-repo "$WORK/sync"
host_up() { [ "$(api GET "/api/v1/hosts/$HOST" | jq -r .state)" = up ]; }
wait_for 60 "host up" host_up || fail "the local host did not come up: $(api GET /api/v1/hosts)"

VM=
VM_DELETE=
ISO_NAME=
manifest=${STRATA_IMAGES:-$REPO/.cache/images}/manifest.env
if [ -f "$manifest" ] && command -v qemu-system-x86_64 >/dev/null; then
  . "$manifest"
  if [ -f "${TINY_KERNEL:-}" ] && [ -f "${TINY_INITRD:-}" ] && [ -f "${TINY_BASE:-}" ]; then
    import_catalog_images || fail "image import"
    # An ISO 9660 volume in the catalog (kind iso): the wizard's CD-ROM and the VM page's
    # insert/eject. Without xorriso those checks are left out (ISO_NAME empty).
    if command -v xorriso >/dev/null; then
      mkdir -p "$WORK/iso" && echo "strata web iso" >"$WORK/iso/README"
      xorriso -as mkisofs -quiet -V WEBISO -o "$WORK/web.iso" "$WORK/iso" >/dev/null 2>&1 || fail "xorriso failed"
      env STRATA_SERVER="$API_URL" STRATA_TOKEN="$TOKEN" "$STRATA_CLI" image import web-iso "$WORK/web.iso" --kind iso >/dev/null ||
        fail "iso import"
      ISO_NAME=web-iso
    fi
    api POST /api/v1/vms "$(vm_body web-1 false ', labels: {tier: "web"}')" >/dev/null
    [ "$(last_status)" = 201 ] || [ "$(last_status)" = 202 ] || fail "create web-1: HTTP $(last_status)"
    api POST /api/v1/vms "$(vm_body web-2 false)" >/dev/null
    [ "$(last_status)" = 201 ] || [ "$(last_status)" = 202 ] || fail "create web-2: HTTP $(last_status)"
    VM=web-1
    VM_DELETE=web-2
  fi
fi
[ -n "$VM" ] || log "no tiny guest images: the VM list is checked, no VM is started"

VIEWER=$(api POST /api/v1/tokens '{"name":"web-viewer","role":"viewer"}' | jq -r .token)
[ "$(last_status)" = 201 ] || fail "viewer token: HTTP $(last_status)"

STRATA_URL="http://127.0.0.1:$PORT" ADMIN_TOKEN="$TOKEN" VIEWER_TOKEN="$VIEWER" \
  HOST_NAME="$HOST" DATASTORE=web-ds VM_NAME="$VM" VM_DELETE="$VM_DELETE" ISO_NAME="$ISO_NAME" VM_CMDLINE="${TINY_CMDLINE:-}" BACKUPS=1 SHOTS_DIR="$SHOTS_DIR" CHROMIUM="$CHROMIUM" \
  node "$REPO/web/test/browser/console.mjs"
