#!/usr/bin/env bash
# Backups restored into new VMs, end to end (issue 12): stratad --all-in-one --backup-repo
# with its local agent and a real tiny TCG guest. The guest writes random blocks with dd
# (it mounts no filesystem); a full backup; it writes more; an incremental backup (which
# stores about what changed); each backup restored into a new VM through the manager
# (`strata backup restore ID --new-vm NAME --wait`: the spec from the manifest, a new uuid
# and MACs, created stopped). The restored disks read exactly as the source disk did at
# each backup (sha256 of the whole disk, on the host), and each restored VM boots and its
# guest reads back the blocks written before its backup (sha256 in the guest). Then the
# off-site copy (unencrypted run): `strata backup sync --verify` into the sync target, the
# target's own retention (`prune --sync-target --keep-last 1`), and a disaster: stratad
# restarted with the copy as its repository restores the newest backup into a new VM whose
# disk reads as the source's did. About 60 s.
# Needs QEMU, qemu-img, qemu-nbd and the tiny image; else exits 77.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_tools curl jq qemu-system-x86_64 qemu-img qemu-nbd sha256sum
need_binaries
[ -x "$STRATA_CLI" ] || skip "strata CLI not built ($STRATA_CLI)"
need_tiny_images

PORT=${E2E_BACKUP_PORT:-$(free_port)}
WORK=$(mktemp -d /tmp/strata-e2e-backup.XXXXXX)
chmod o+x "$WORK"  # QEMU runs as strata-qemu (when it exists), which must search it
D=$WORK/d
SOCK=$D/agent/agent.sock
MGR_PID=
LIMIT=180  # a bound for a hang, not a timing assertion

cleanup() { e2e_allinone_cleanup $? 40 stratad="$D/stratad.log" agent="$D/agent.log"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/repo" "$WORK/sync"
# E2E_BACKUP_ENCRYPTED=1 (ctest e2e_backup_restore_encrypted): the repository is encrypted
# with a key made by stratad --create-backup-key; the key reaches the agent only in its
# gRPC request (checked below: in no process's command line, in no log).
KEY_ARGS=()
if [ "${E2E_BACKUP_ENCRYPTED:-0}" = 1 ]; then
  mkdir -p "$WORK/keys"
  "$STRATAD" --create-backup-key "$WORK/keys/backup.key" >/dev/null || fail "create backup key"
  [ "$(stat -c %a "$WORK/keys/backup.key")" = 600 ] || fail "backup key file not mode 0600"
  KEY_ARGS=(--backup-key-file "$WORK/keys/backup.key")
fi
start_stratad "$D" "127.0.0.1:$PORT" --all-in-one --accel tcg --host-name bk-host \
  --backup-repo "$WORK/repo" --backup-sync-repo "$WORK/sync" "${KEY_ARGS[@]}"
cli() { env STRATA_SERVER="$API_URL" STRATA_TOKEN="$TOKEN" "$STRATA_CLI" "$@"; }
host_up() { [ "$(api GET /api/v1/hosts/bk-host | jq -r .state)" = up ]; }
wait_for 60 "host up" host_up || fail "host not up: $(api GET /api/v1/hosts)"
import_catalog_images || fail "image import"

ctl() { "$STRATA_AGENT" ctl --socket "$SOCK" --timeout 20 "$@"; }
console_has() { ctl vm console "$1" --bytes 262144 2>/dev/null | grep -q -- "$2"; }
# guest VM N CMD: runs CMD in VM's shell, then waits for the marker line "DONE<N>-<N*7>"
# (computed by the guest, so the echoed command line never matches it).
SEQ=0
guest() {
  local vm=$1 cmd=$2
  SEQ=$((SEQ + 1))
  ctl vm console "$vm" --write "$cmd; echo DONE$SEQ-\$(($SEQ*7))" >/dev/null
  wait_for $LIMIT "$vm: $cmd" console_has "$vm" "DONE$SEQ-$((SEQ * 7))" ||
    fail "$vm did not finish: $cmd; console: $(ctl vm console "$vm" --bytes 2000)"
}
# region_sha VAR VM MIB_OFFSET MIB_COUNT: VAR := the sha256 of that region of the guest's
# /dev/vda, as the guest reads it (a unique tag per call; not run in a subshell, so SEQ
# goes on counting).
region_sha() {
  SEQ=$((SEQ + 1))
  local tag="SHA$SEQ"
  ctl vm console "$2" --write "echo $tag=\$(dd if=/dev/vda bs=1M skip=$3 count=$4 2>/dev/null | sha256sum)" >/dev/null
  wait_for $LIMIT "$2: sha of $3+$4 MiB" console_has "$2" "^$tag=[0-9a-f]\{64\}" ||
    fail "$2: no checksum; console: $(ctl vm console "$2" --bytes 2000)"
  printf -v "$1" '%s' "$(ctl vm console "$2" --bytes 262144 | tr -d '\r' |
    grep -o "^$tag=[0-9a-f]\{64\}" | tail -1 | cut -d= -f2)"
}
# region_is VM MIB_OFFSET MIB_COUNT SHA WHAT: fails with WHAT unless the region reads SHA.
region_is() {
  local got
  region_sha got "$1" "$2" "$3"
  [ "$got" = "$4" ] || fail "$1: $5 (sha256 $got, expected $4)"
}
# disk_sha VM: sha256 of everything the VM's root disk reads (through its chain), on the
# host, beside a running QEMU (-U).
disk_sha() {
  local f=$D/images/vms/$1/root.qcow2
  [ -f "$f" ] || fail "no disk file $f"
  qemu-img convert -U -O raw "$f" "$WORK/disk.raw"
  sha256sum "$WORK/disk.raw" | cut -d' ' -f1
  rm -f "$WORK/disk.raw"
}
# task_done ID: the task ended; task_ok ID: it succeeded (else fail with its message).
task_done() { case $(api GET "/api/v1/tasks/$1" | jq -r .state) in running | pending) return 1 ;; esac; }
task_ok() {
  wait_for $LIMIT "task $1" task_done "$1" || fail "task $1 did not end: $(api GET "/api/v1/tasks/$1")"
  [ "$(api GET "/api/v1/tasks/$1" | jq -r .state)" = succeeded ] ||
    fail "task $1: $(api GET "/api/v1/tasks/$1" | jq -c '{kind, state, message, result}')"
}
backup() {  # backup VM -> prints "ID TASK"
  local r
  r=$(api POST "/api/v1/vms/$1/backups" '{}')
  [ "$(last_status)" = 202 ] || fail "backup of $1: HTTP $(last_status) $r"
  jq -r '"\(.backup) \(.task.id)"' <<<"$r"
}
ready() { console_has "$1" STRATA-READY; }

# The source VM, running; 4 MiB of random data at 8 MiB.
api POST /api/v1/vms "$(vm_body src true)" >/dev/null
[ "$(last_status)" = 201 ] || [ "$(last_status)" = 202 ] || fail "create src: HTTP $(last_status)"
wait_for $LIMIT "src ready" ready src || fail "src: no STRATA-READY"
guest src "dd if=/dev/urandom of=/dev/vda bs=1M seek=8 count=4 conv=fsync 2>/dev/null"
region_sha A1 src 8 4
region_sha B0 src 40 4
[ "$A1" != "$B0" ] || fail "the guest's write at 8 MiB reads like the blocks at 40 MiB"
H1=$(disk_sha src)
BT=$(backup src)
B1=${BT% *} T1=${BT#* }
task_ok "$T1"
[ "$(api GET "/api/v1/tasks/$T1" | jq -r .result.kind)" = full ] ||
  fail "first backup not full: $(api GET "/api/v1/tasks/$T1" | jq -c .result)"
log "full backup $B1 of src"

# 4 MiB more at 40 MiB (one chunk-aligned 4 MiB extent), then the incremental.
guest src "dd if=/dev/urandom of=/dev/vda bs=1M seek=40 count=4 conv=fsync 2>/dev/null"
region_sha B2SHA src 40 4
[ "$B2SHA" != "$B0" ] || fail "the guest's write at 40 MiB changed nothing"
H2=$(disk_sha src)
BT=$(backup src)
B2=${BT% *} T2=${BT#* }
task_ok "$T2"
R2=$(api GET "/api/v1/tasks/$T2" | jq -c .result)
[ "$(jq -r .kind <<<"$R2")" = incremental ] && [ "$(jq -r .parent <<<"$R2")" = "$B1" ] ||
  fail "second backup not an incremental of $B1: $R2"
NEW=$(jq -r .bytes_new <<<"$R2")
[ "$NEW" -ge $((4 << 20)) ] && [ "$NEW" -le $((8 << 20)) ] ||
  fail "the incremental stored $NEW bytes for 4 MiB changed: $R2"
log "incremental backup $B2 of src stored $NEW bytes"

# Each backup into a new VM, through the CLI.
cli backup restore "$B1" --new-vm r1 --wait >"$WORK/restore1.out" 2>&1 ||
  fail "restore $B1 --new-vm r1: $(cat "$WORK/restore1.out")"
cli backup restore "$B2" --new-vm r2 --wait >"$WORK/restore2.out" 2>&1 ||
  fail "restore $B2 --new-vm r2: $(cat "$WORK/restore2.out")"
SRC=$(api GET /api/v1/vms/src)
for vm in r1 r2; do
  V=$(api GET "/api/v1/vms/$vm")
  [ "$(last_status)" = 200 ] || fail "$vm: HTTP $(last_status)"
  case $(jq -r .status.state <<<"$V") in
    stopped | defined) ;;
    *) fail "$vm is not stopped: $(jq -c .status <<<"$V")" ;;
  esac
  [ "$(jq -r .spec.uuid <<<"$V")" != "$(jq -r .spec.uuid <<<"$SRC")" ] || fail "$vm kept src's uuid"
  [ "$(jq -r '.spec.nics[0].mac // ""' <<<"$SRC")" = "" ] ||
    [ "$(jq -c '[.spec.nics[].mac]' <<<"$V")" != "$(jq -c '[.spec.nics[].mac]' <<<"$SRC")" ] ||
    fail "$vm kept src's MAC addresses"
done
[ "$(disk_sha r1)" = "$H1" ] || fail "r1's disk differs from src's at backup $B1"
[ "$(disk_sha r2)" = "$H2" ] || fail "r2's disk differs from src's at backup $B2"
log "restored disks identical to the source's at each backup"

if [ "${E2E_BACKUP_ENCRYPTED:-0}" = 1 ]; then
  KEY=$(cat "$WORK/keys/backup.key")
  [ "$(jq -r .encryption "$WORK/repo/config.json")" = aes-256-gcm ] ||
    fail "repository not encrypted: $(cat "$WORK/repo/config.json")"
  ! grep -rqa -- "$KEY" "$WORK/repo" || fail "the key is in the repository"
  ! grep -rqa -- "$KEY" "$D"/*.log || fail "the key is in a log"
  # Compared in bash (no grep whose own command line would hold the key).
  for p in /proc/[0-9]*; do
    c=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
    [[ "$c" != *"$KEY"* ]] || fail "the key is on a command line ($p: ${c%% *})"
  done
  ! grep -qa '"vm"' "$WORK/repo/backups/$B1/manifest.json" || fail "the manifest is readable"
  VT=$(api POST "/api/v1/backups/$B2/verify" '{}' | jq -r '.task.id // .id')
  task_ok "$VT"
  log "encrypted: config aes-256-gcm, key in no log/command line/repository file, verify ok"
fi

# The restored VMs boot and their guests read back what was written before each backup.
for vm in r1 r2; do
  api POST "/api/v1/vms/$vm/start" '{}' >/dev/null
  case $(last_status) in 200 | 202) ;; *) fail "start $vm: HTTP $(last_status)" ;; esac
done
wait_for $LIMIT "r1 ready" ready r1 || fail "r1: no STRATA-READY"
wait_for $LIMIT "r2 ready" ready r2 || fail "r2: no STRATA-READY"
region_is r1 8 4 "$A1" "the blocks at 8 MiB differ from backup $B1's"
region_is r1 40 4 "$B0" "the blocks at 40 MiB are not as before backup $B1"
region_is r2 8 4 "$A1" "the blocks at 8 MiB differ from backup $B2's"
region_is r2 40 4 "$B2SHA" "the blocks at 40 MiB differ from backup $B2's"
log "full and incremental backups restored into new VMs that boot with the data"
[ "${E2E_BACKUP_ENCRYPTED:-0}" = 1 ] && { log "PASS"; exit 0; }

# The off-site copy: both backups into the sync target, verified there.
cli backup sync --verify --wait >"$WORK/sync.out" 2>&1 || fail "backup sync: $(cat "$WORK/sync.out")"
for b in "$B1" "$B2"; do
  [ -f "$WORK/sync/backups/$b/manifest.json" ] || fail "the sync target lacks $b: $(ls "$WORK/sync/backups")"
done
# Its own retention: the newest only there; the repository keeps both.
cli backup prune src --keep-last 1 --sync-target >"$WORK/prune.out" 2>&1 ||
  fail "prune --sync-target: $(cat "$WORK/prune.out")"
[ ! -e "$WORK/sync/backups/$B1" ] || fail "the sync target still holds $B1: $(cat "$WORK/prune.out")"
[ -f "$WORK/sync/backups/$B2/manifest.json" ] || fail "the sync target lost $B2"
[ -f "$WORK/repo/backups/$B1/manifest.json" ] || fail "pruning the target touched the repository"
log "synced; the target pruned to $B2 by its own policy"

# The disaster: the repository is lost; stratad comes back with the copy as its repository,
# and the newest backup (an incremental whose parent the target pruned) restores whole.
kill "$MGR_PID"
wait "$MGR_PID" 2>/dev/null || true
start_stratad "$D" "127.0.0.1:$PORT" --all-in-one --accel tcg --host-name bk-host \
  --backup-repo "$WORK/sync"
wait_for 60 "host up again" host_up || fail "host not up after the restart: $(api GET /api/v1/hosts)"
[ "$(api GET /api/v1/backups | jq -r '[.backups[].id] | join(" ")')" = "$B2" ] ||
  fail "the copy lists: $(api GET /api/v1/backups | jq -c '[.backups[].id]')"
cli backup restore "$B2" --new-vm r3 --wait >"$WORK/restore3.out" 2>&1 ||
  fail "restore $B2 from the copy: $(cat "$WORK/restore3.out")"
[ "$(disk_sha r3)" = "$H2" ] || fail "r3 (from the off-site copy) differs from src at $B2"
log "PASS: restored from the off-site copy, identical to the source at $B2"
