#!/usr/bin/env python3
"""POST COUNT VMs named PREFIX000001.. to stratad's REST API, CONCURRENCY requests in
flight (one keep-alive connection per worker), and print one JSON line: answered, ok (202),
errors by status, latency p50/p99 in ms, seconds. Used by bench/fleet/run (wrk re-asks a
request after a broken connection with the next name, so it cannot make exactly COUNT).
usage: creates.py URL TOKEN PREFIX COUNT CONCURRENCY
env: CREATES_ACKED=FILE appends each name answered 202 (one per line); CREATES_SKIP=FILE
     skips the names it lists (test/e2e/scale_fleet.sh resumes a storm with both)."""
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    url, token, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
    count, conc = int(sys.argv[4]), int(sys.argv[5])
    if count < 1 or conc < 1:
        sys.exit("COUNT and CONCURRENCY must be at least 1")
    u = urllib.parse.urlsplit(url)
    lock = threading.Lock()
    skip = set()
    if os.environ.get("CREATES_SKIP"):
        with open(os.environ["CREATES_SKIP"]) as f:
            skip = {line.strip() for line in f if line.strip()}
    names = [n for n in ("%s%06d" % (prefix, i + 1) for i in range(count)) if n not in skip]
    count = len(names)
    acked = open(os.environ["CREATES_ACKED"], "a", buffering=1) if os.environ.get(
        "CREATES_ACKED") else None
    state = {"next": 0}
    lat, errors = [], {}

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        while True:
            with lock:
                i = state["next"]
                if i >= count:
                    break
                state["next"] = i + 1
            body = json.dumps({"name": names[i], "vcpus": 1, "memory_mib": 128,
                               "disks": [{"name": "root", "size_bytes": 1 << 30, "boot": True}],
                               "start": True})
            t0 = time.monotonic()
            try:
                conn.request("POST", "/api/v1/vms", body, {
                    "Authorization": "Bearer " + token, "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                status = r.status
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
                status = type(e).__name__
            ms = (time.monotonic() - t0) * 1000
            with lock:
                lat.append(ms)
                if status == 202 and acked:
                    acked.write(names[i] + "\n")
                if status != 202:
                    errors[str(status)] = errors.get(str(status), 0) + 1
        conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(min(conc, count))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    if acked:
        acked.close()
    answered = len(lat)
    lat = sorted(lat) or [0.0]
    pick = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 1)
    print(json.dumps({"answered": answered, "ok": answered - sum(errors.values()),
                      "errors": errors, "p50_ms": pick(0.50), "p99_ms": pick(0.99),
                      "seconds": round(secs, 2)}))


main()
