#!/usr/bin/env bash
# cloud-init end to end (issue 12): stratad --all-in-one, the Debian 12 guest created with
# `strata vm create` and its cloud-init flags (--hostname, --user, --ssh-key, --password-hash,
# --sudo, --ip dhcp), booted by the real agent with the NoCloud seed; the guest's
# qemu-guest-agent facts come back through the agent and the manager, and `strata vm show`
# shows the host name cloud-init set (status.guest.hostname) and the guest's address. The
# password hash is never shown: not by GET, not in `vm show`, not in the events, not in
# stratad's or the agent's log. Needs QEMU and the Debian image (scripts/guest-images
# debian); otherwise exits 77. A few minutes under TCG.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_tools curl jq qemu-system-x86_64 qemu-img cloud-localds
need_binaries
[ -x "$STRATA_CLI" ] || skip "strata CLI not built ($STRATA_CLI)"
need_debian_image

PORT=${E2E_CI_PORT:-$(free_port)}
WORK=$(mktemp -d /tmp/strata-e2e-ci.XXXXXX)
D=$WORK/d
SOCK=$D/agent/agent.sock
MGR_PID=
# Bounds for a hang, not timing assertions: systemd under TCG on a loaded machine takes
# from ~15 s to a few minutes; the facts come at most 30 s (agent poll) + 10 s (resync) later.
BOOT_LIMIT=600
HASH='$6$e2esalt$3fGzJ0v3pPqJ2mWJz1e8xQmS2m9t1u0Xq8rYb6c5d4e3f2g1h0i9j8k7l6m5n4o3p2q1r0s9t8u7v6w5x4y3z2A'

cleanup() { e2e_allinone_cleanup $? 40 stratad="$D/stratad.log" agent="$D/agent.log"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

start_stratad "$D" "127.0.0.1:$PORT" --all-in-one --accel tcg --host-name ci-host
cli() { env STRATA_SERVER="$API_URL" STRATA_TOKEN="$TOKEN" "$STRATA_CLI" "$@"; }
host_up() { [ "$(api GET /api/v1/hosts/ci-host | jq -r .state)" = up ]; }
wait_for 60 "host up" host_up || fail "host not up: $(api GET /api/v1/hosts)"

cli image import debian-kernel "$DEBIAN_KERNEL" --kind kernel >/dev/null
cli image import debian-initrd "$DEBIAN_INITRD" --kind initrd >/dev/null
cli image import debian-disk "$DEBIAN_DISK" >/dev/null
log "images imported"

KEY='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2bUq0n3l1S9yQh1m0mC4sQkQ7n0wq e2e@strata'
printf '# a comment line\n%s\n' "$KEY" >"$WORK/key.pub"

# A usage error never reaches the server (exit 2): a clear-text password.
set +e
cli vm create bad --vcpus 1 --memory 512M --user alice --password-hash hunter2 >/dev/null 2>"$WORK/err"
rc=$?
set -e
[ "$rc" = 2 ] || fail "clear-text --password-hash: exit $rc, want 2 ($(cat "$WORK/err"))"
# A bad field from the server: 400 naming it (--hostname with '_').
set +e
cli vm create bad --vcpus 1 --memory 512M --kernel debian-kernel --hostname bad_name \
  --nic user >/dev/null 2>"$WORK/err"
rc=$?
set -e
[ "$rc" != 0 ] && grep -q "cloud_init.hostname" "$WORK/err" ||
  fail "bad --hostname: exit $rc, stderr: $(cat "$WORK/err")"

cli vm create deb1 --vcpus 1 --memory 512M --kernel debian-kernel --initrd debian-initrd \
  --cmdline "$DEBIAN_CMDLINE" --disk name=root,image=debian-disk --nic user \
  --hostname ci-e2e --user alice --ssh-key "$WORK/key.pub" --password-hash "$HASH" --sudo \
  --ip dhcp --wait >/dev/null
log "deb1 created and started"

SHOW=$(cli vm show deb1 -o json)
[ "$(jq -r .spec.cloud_init.users[0].name <<<"$SHOW")" = alice ] || fail "cloud_init not shown: $SHOW"
[ "$(jq -r .spec.cloud_init.users[0].password_set <<<"$SHOW")" = true ] || fail "password_set: $SHOW"
[ "$(jq -r .spec.cloud_init.hostname <<<"$SHOW")" = ci-e2e ] || fail "hostname: $SHOW"

guest_hostname() { [ "$(api GET /api/v1/vms/deb1 | jq -r '.status.guest.hostname // empty')" = ci-e2e ]; }
T0=$(date +%s)
wait_for "$BOOT_LIMIT" "guest facts" guest_hostname ||
  fail "no guest facts with host name ci-e2e: $(api GET /api/v1/vms/deb1 | jq -c .status)"
log "guest facts after $(($(date +%s) - T0)) s: $(api GET /api/v1/vms/deb1 | jq -c .status.guest)"

SHOW=$(cli vm show deb1)
grep -q "status.guest.hostname *ci-e2e" <<<"$SHOW" || fail "vm show lacks the guest host name: $SHOW"
grep -q "status.guest.os_name *Debian" <<<"$SHOW" || fail "vm show lacks the guest OS: $SHOW"
GUEST=$(api GET /api/v1/vms/deb1 | jq -c .status.guest)
jq -e '[.interfaces[].addresses[] | select(startswith("10.0.2."))] | length > 0' <<<"$GUEST" >/dev/null ||
  fail "no user-mode (10.0.2.x) address in the guest facts: $GUEST"

# The hash is stored for the agent, and shown nowhere.
for what in "GET /api/v1/vms/deb1" "GET /api/v1/vms" "GET /api/v1/events?limit=1000"; do
  if api ${what} | grep -qF 'e2esalt'; then fail "$what shows the password hash"; fi
done
if cli vm show deb1 -o json | grep -qF 'e2esalt'; then fail "vm show shows the password hash"; fi
if grep -qF 'e2esalt' "$D/stratad.log" "$D/agent.log" 2>/dev/null; then fail "a log holds the hash"; fi

cli vm delete deb1 --wait >/dev/null
log "PASS: cloud-init through strata vm create; guest facts $(jq -c '{hostname, os_name}' <<<"$GUEST")"
