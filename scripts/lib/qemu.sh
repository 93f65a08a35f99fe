# Shell helpers for scripts that drive guests directly (benchmarks, image checks).
# Source it: . "$REPO/scripts/lib/qemu.sh". Needs bash, socat, GNU date.

# strata_now_ms: wall clock in milliseconds.
strata_now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# strata_load_manifest: builds the tiny image if missing, then sources manifest.env.
strata_load_manifest() {
  local repo=$1 images=${STRATA_IMAGES:-$1/.cache/images}
  if [ ! -f "$images/manifest.env" ] || ! grep -q '^TINY_KERNEL=' "$images/manifest.env"; then
    "$repo/scripts/guest-images" tiny >&2
  fi
  # shellcheck disable=SC1091
  . "$images/manifest.env"
}

# strata_qmp SOCK [JSON...]: connects to a QMP socket, reads the greeting, negotiates
# capabilities, sends each JSON command and prints each reply line (events skipped).
# Returns 0 only when every command got a {"return" ...} reply. Fails fast when the socket
# is not (yet) accepting.
strata_qmp() {
  local sock=$1; shift
  [ -S "$sock" ] || return 1
  local rc=0 line cmd
  coproc STRATA_QMP { exec socat - UNIX-CONNECT:"$sock" 2>/dev/null; }
  local in=${STRATA_QMP[0]} out=${STRATA_QMP[1]} pid=$STRATA_QMP_PID
  # One reply: skip events, print the line, succeed on "return".
  _strata_qmp_reply() {
    while read -r -t 10 -u "$in" line; do
      case "$line" in *'"event"'*) continue ;; esac
      echo "$line"
      case "$line" in *'"return"'*) return 0 ;; *) return 1 ;; esac
    done
    return 1
  }
  if read -r -t 10 -u "$in" line && [[ "$line" == *'"QMP"'* ]]; then
    echo '{"execute":"qmp_capabilities"}' >&"$out"
    if _strata_qmp_reply >/dev/null; then
      for cmd in "$@"; do
        echo "$cmd" >&"$out"
        _strata_qmp_reply || rc=1
      done
    else
      rc=1
    fi
  else
    rc=1
  fi
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return $rc
}

# strata_wait_line FILE PATTERN DEADLINE_MS: polls FILE until a line matches the grep
# pattern or the wall clock passes DEADLINE_MS; prints the time seen (ms) on success.
strata_wait_line() {
  local file=$1 pat=$2 deadline=$3
  while [ "$(strata_now_ms)" -lt "$deadline" ]; do
    if grep -qa -- "$pat" "$file" 2>/dev/null; then strata_now_ms; return 0; fi
    sleep 0.01
  done
  return 1
}
