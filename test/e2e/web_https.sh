#!/usr/bin/env bash
# The web console over HTTPS in a real browser (issue 11): stratad on loopback serves HTTPS
# by default with its own CA; headless Debian Chromium (playwright-core) trusts that CA
# through an NSS database in a HOME of its own (certutil), never by ignoring certificate
# errors. web/test/browser/https.mjs: a browser without the CA is refused; with it, log in,
# the session cookie is Secure (and HttpOnly, SameSite=Strict), the live events stream
# (fetch streaming over TLS) connects, log out. No VMs, a few seconds. Exits 77 (SKIPPED)
# without chromium, certutil, node or a built console.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_tools curl jq node
need_binaries
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || skip "chromium is not installed ($CHROMIUM; scripts/setup installs it)"
command -v certutil >/dev/null || skip "certutil is not installed (libnss3-tools; scripts/setup installs it)"
[ -f "$REPO/web/dist/index.html" ] || skip "the web console is not built (scripts/setup, or cd web && npm ci && npm run build)"
[ -d "$REPO/web/node_modules/playwright-core" ] || skip "web/node_modules is missing (cd web && npm ci)"

PORT=${E2E_WEB_PORT:-$(free_port)}
WORK=$(mktemp -d /tmp/strata-e2e-webtls.XXXXXX)
D=$WORK/d
MGR_PID=
: "${SHOTS_DIR:=$PWD/web-screenshots}"

cleanup() {
  local rc=$?
  set +e
  e2e_logs_on_failure $rc 30 stratad="$D/stratad.log"
  [ -n "$MGR_PID" ] && kill "$MGR_PID" 2>/dev/null
  wait 2>/dev/null
  e2e_finish $rc
}
trap cleanup EXIT

start_stratad "$D" "127.0.0.1:$PORT" --web-root "$REPO/web/dist"  # HTTPS: the default
[[ $API_URL == https://* ]] || fail "expected an https URL, got $API_URL"

# Chromium on Linux trusts the CAs of $HOME/.pki/nssdb: a HOME for the test browser only.
NSS=$WORK/home/.pki/nssdb
mkdir -p "$NSS"
certutil -N -d "sql:$NSS" --empty-password
certutil -A -d "sql:$NSS" -n strata-test-ca -t "C,," -i "$API_CA"
mkdir -p "$WORK/home-untrusting"

STRATA_URL="$API_URL" ADMIN_TOKEN="$TOKEN" TRUSTING_HOME="$WORK/home" \
  UNTRUSTING_HOME="$WORK/home-untrusting" SHOTS_DIR="$SHOTS_DIR" CHROMIUM="$CHROMIUM" \
  node "$REPO/web/test/browser/https.mjs"
