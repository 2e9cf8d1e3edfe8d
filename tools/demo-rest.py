#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The REST client half of tools/demo.sh, with the standard library only
(what a dashboard would do, in a few lines each):

  demo-rest.py API wait-online N       wait until N devices are online
  demo-rest.py API add-image FILE      POST /images, print the id
  demo-rest.py API push IMAGE          POST /jobs for every device
  demo-rest.py API rollout IMAGE       POST /rollouts/plan, then /rollouts (canary, then the rest)
  demo-rest.py API rollout-progress ID [--until-fraction F]
                                       the rollout's progress until it ends
  demo-rest.py API progress [--until-fraction F]
                                       progress bars until the jobs end
                                       (or F of the bytes are sent)
  demo-rest.py API devices [IMAGE]     the devices and what they run"""

import json
import sys
import time
import urllib.error
import urllib.request


def call(api, method, path, body=None, ctype="application/json"):
    data = None
    headers = {}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = ctype
    req = urllib.request.Request(api + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def all_pages(api, what):
    items, offset = [], 0
    while True:
        status, doc = call(api, "GET", "/%s?limit=500&offset=%d" % (what, offset))
        if status != 200:
            sys.exit("GET /%s: %d %s" % (what, status, doc))
        items += doc[what]
        offset += len(doc[what])
        if not doc[what] or offset >= doc["total"]:
            return items


def wait_online(api, n):
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        devs = all_pages(api, "devices")
        online = [d for d in devs if d["state"] == "online" and d["images"]]
        print("\r%d devices known, %d online and probed" % (len(devs), len(online)), end="", flush=True)
        if len(online) >= n:
            print()
            return
        time.sleep(0.5)
    sys.exit("\ntimed out waiting for %d devices" % n)


def add_image(api, path):
    with open(path, "rb") as f:
        status, doc = call(api, "POST", "/images?name=" + path.rsplit("/", 1)[-1], f.read(),
                           "application/octet-stream")
    if status != 201:
        sys.exit("POST /images: %d %s" % (status, doc))
    sys.stderr.write(json.dumps(doc, indent=2) + "\n")
    print(doc["id"])


def push(api, image):
    ids = [d["id"] for d in all_pages(api, "devices")]
    status, doc = call(api, "POST", "/jobs", {"image": image, "devices": ids})
    if status != 201:
        sys.exit("POST /jobs: %d %s" % (status, doc))
    print("%d jobs queued: %s" % (len(doc["jobs"]), ", ".join(str(j["id"]) for j in doc["jobs"])))


def rollout(api, image):
    """A dry run, then the rollout itself: the canary first, then the rest
    in two waves, at most 6 devices rebooting at once."""
    body = {"image": image, "name": "demo", "targets": {"filter": {"transport": "udp"}},
            "policy": {"canary": "1", "wave_size": "50%", "max_rebooting": 6, "retry_delay": 2}}
    status, plan = call(api, "POST", "/rollouts/plan", body)
    if status != 200:
        sys.exit("POST /rollouts/plan: %d %s" % (status, plan))
    for w in plan["waves"]:
        print("  wave %d%s: devices %s" % (w["wave"], " (canary)" if w["wave"] == 0 else "",
                                           ", ".join(str(x) for x in w["devices"])))
    print("  estimated duration %.0f s (no run can beat %.0f s)" % (plan["estimate"]["duration_s"],
                                                                  plan["estimate"].get("lower_bound_s", 0)))
    status, doc = call(api, "POST", "/rollouts", body)
    if status != 201:
        sys.exit("POST /rollouts: %d %s" % (status, doc))
    print("rollout %d created: %d waves" % (doc["id"], doc["waves"]))
    print(doc["id"])


def rollout_progress(api, rid, until_fraction=None):
    tty = sys.stdout.isatty()
    while True:
        status, r = call(api, "GET", "/rollouts/%s" % rid)
        if status != 200:
            sys.exit("GET /rollouts/%s: %d %s" % (rid, status, r))
        counts = ", ".join("%s %d" % (k, v) for k, v in r["counts"].items() if v)
        total = r["bytes_total"] or 1
        line = "  rollout %d %-9s wave %d/%d  %s  %5.1f%% of the bytes  [%s]" % (
            r["id"], r["state"], min(r["current_wave"] + 1, r["waves"]), r["waves"], bar(r["bytes_sent"] / total),
            100.0 * r["bytes_sent"] / total, counts)
        sys.stdout.write(("\x1b[2K\r" + line) if tty else line + "\n")
        sys.stdout.flush()
        if until_fraction is not None and r["bytes_sent"] / total >= until_fraction:
            break
        if r["state"] in ("completed", "cancelled", "aborted", "paused"):
            break
        time.sleep(0.5)
    if tty:
        sys.stdout.write("\n")
    if until_fraction is None:
        for f in r["failures"]:
            print("  device %d failed: %s" % (f["device"], f["reason"]))
        if r["state"] != "completed":
            sys.exit("rollout %d ended %s: %s" % (r["id"], r["state"], r["error"] or r["paused_reason"]))


def bar(fraction, width=24):
    n = int(round(fraction * width))
    return "#" * n + "." * (width - n)


def progress(api, until_fraction=None):
    tty = sys.stdout.isatty()
    drawn = 0
    while True:
        jobs = [j for j in all_pages(api, "jobs")]
        latest = {}
        for j in jobs:   # newest first: the latest job per device
            latest.setdefault(j["device"], j)
        jobs = sorted(latest.values(), key=lambda j: j["device"])
        lines = []
        for j in jobs:
            step = j["step"] or ""
            state = j["state"] + (" (%s)" % j["outcome"] if j["outcome"] else "")
            lines.append("  device %3d  %-24s %5.1f%%  %6.1f kB/s  %-14s %s" % (
                j["device"], bar(j["progress"]), j["progress"] * 100, j["rate"] / 1000, step, state))
        sent = sum(j["bytes_sent"] for j in jobs)
        total = sum(j["bytes_total"] for j in jobs) or 1
        finished = sum(j["state"] in ("succeeded", "failed", "cancelled") for j in jobs)
        lines.append("  %d/%d jobs finished, %.0f%% of the bytes sent" % (finished, len(jobs), 100.0 * sent / total))
        if tty:
            if drawn:
                sys.stdout.write("\x1b[%dA" % drawn)
            sys.stdout.write("".join("\x1b[2K" + line + "\n" for line in lines))
            drawn = len(lines)
        else:
            print(lines[-1])
        sys.stdout.flush()
        if until_fraction is not None and sent / total >= until_fraction:
            return
        if finished == len(jobs):
            failed = [j for j in jobs if j["state"] != "succeeded"]
            if failed:
                sys.exit("%d jobs did not succeed: %s" % (len(failed), [(j["id"], j["error"]) for j in failed]))
            return
        time.sleep(0.5)


def devices(api, image=None):
    devs = all_pages(api, "devices")
    ok = 0
    for d in devs:
        active = [s for s in d["images"] if s["active"]]
        a = active[0] if active else {}
        mark = ""
        if image:
            good = a.get("hash") == image and a.get("confirmed")
            ok += good
            mark = "  <- new image, confirmed" if good else "  <- NOT updated"
        print("  %3d %-22s %-8s %-8s confirmed=%-5s %s%s" % (d["id"], d["conn"], d["state"], a.get("version", "?"),
                                                            a.get("confirmed"), a.get("hash", "")[:16], mark))
    if image:
        print("%d of %d devices run %s… confirmed" % (ok, len(devs), image[:16]))
        if ok != len(devs):
            sys.exit(1)


def main():
    api, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if cmd == "wait-online":
        wait_online(api, int(args[0]))
    elif cmd == "add-image":
        add_image(api, args[0])
    elif cmd == "push":
        push(api, args[0])
    elif cmd == "rollout":
        rollout(api, args[0])
    elif cmd == "rollout-progress":
        rollout_progress(api, args[0], float(args[2]) if args[1:2] == ["--until-fraction"] else None)
    elif cmd == "progress":
        progress(api, float(args[1]) if args[:1] == ["--until-fraction"] else None)
    elif cmd == "devices":
        devices(api, args[0] if args else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
