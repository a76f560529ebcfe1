#!/usr/bin/env python3
"""Measure reeve serve's webhook-to-status latency on a large spec repository.

    bench.py --reeve BIN --work DIR [--clusters 10000] [--prs 20] [--forge github]
             [--perf FILE]

1. Generates a spec repository of --clusters clusters with
   bench/validate/gen.py (valid specs and policies), commits it as main of a
   bare repository served by file://.
2. Starts tests/fakeforge/fakeforge.py and `reeve serve` (pollInterval 0:
   only webhooks move it, after its one fetch at start).
3. One warm-up pull request (not counted), then --prs pull requests, one
   after the other: a commit that changes one spec (backup retention + 1
   day, which plans a configure_backup) pushed to refs/pull/<n>/head, then a
   signed "opened" webhook. Latency = the fake's receive time of the final
   reeve/plan status on that head commit minus the time just before the
   webhook request was sent; both are this machine's wall clock
   (time.time()), so no clock skew is involved.
4. Prints median / p90 / max of those latencies (and of reeve/validate),
   the webhook answer times, and reeve's peak RSS (VmHWM of
   /proc/<pid>/status, read before it is stopped).

With --perf FILE, `perf record` samples reeve during the measured pull
requests and writes FILE (call graphs by frame pointer; set
PERF_CALLGRAPH=dwarf for a build without frame pointers).

Only loopback addresses are used. Every wait is bounded; every process
started here is stopped on exit.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "integration", "gitops"))
import fakeq  # noqa: E402
import webhook  # noqa: E402

TOKEN = "bench-forge-token"
SECRET = "bench-webhook-secret"
GIT_ENV = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null",
               GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com")
RETENTION = re.compile(r"^(      days: )(\d+)$", re.M)


def git(*args, cwd=None):
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True).stdout.strip()


def wait_file(path, secs):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path) as f:
                return f.read().strip()
        time.sleep(0.05)
    raise SystemExit("bench/gitops: %s did not appear within %ds" % (path, secs))


def proc_status(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])  # kB
    except OSError:
        pass
    return 0


def pct(values, p):
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def stop(proc, secs=10):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(secs)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reeve", required=True)
    ap.add_argument("--work", required=True, help="an empty scratch directory")
    ap.add_argument("--clusters", type=int, default=10000)
    ap.add_argument("--prs", type=int, default=20)
    ap.add_argument("--forge", default="github", choices=["github", "gitea", "gitlab"])
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds to wait for one pull request's statuses")
    ap.add_argument("--warmup-timeout", type=float, default=300.0)
    ap.add_argument("--perf", help="write a perf profile of the measured part here")
    a = ap.parse_args()
    for k in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        os.environ.pop(k, None)

    w = os.path.abspath(a.work)
    specs, bare, data = os.path.join(w, "specs"), os.path.join(w, "specs.git"), os.path.join(w, "data")
    t = time.monotonic()
    subprocess.run([sys.executable, os.path.join(TOP, "bench", "validate", "gen.py"),
                    "--count", str(a.clusters), specs], check=True)
    git("init", "-q", "-b", "main", cwd=specs)
    git("add", "-A", cwd=specs)
    git("commit", "-q", "-m", "fleet of %d clusters" % a.clusters, cwd=specs)
    git("init", "-q", "--bare", "-b", "main", bare)
    git("remote", "add", "origin", bare, cwd=specs)
    git("push", "-q", "origin", "main", cwd=specs)
    main_sha = git("rev-parse", "HEAD", cwd=specs)
    files = sorted(os.path.relpath(os.path.join(d, f), specs)
                   for d, _, fs in os.walk(os.path.join(specs, "clusters"))
                   for f in fs if f.endswith(".yaml"))
    nfiles = int(git("ls-files", cwd=specs).count("\n")) + 1
    print("bench/gitops: %d clusters (%d files), repository ready in %.1f s" % (
        a.clusters, nfiles, time.monotonic() - t), flush=True)

    fake = reeve = perf = None
    try:
        fake = subprocess.Popen([sys.executable, os.path.join(TOP, "tests", "fakeforge", "fakeforge.py"),
                                 "--kind", a.forge, "--token", TOKEN, "--repo", "acme/specs=42",
                                 "--port", "0", "--port-file", os.path.join(w, "fake.port")],
                                stderr=open(os.path.join(w, "fake.log"), "w"))
        furl = "http://127.0.0.1:%s" % wait_file(os.path.join(w, "fake.port"), 10)
        with open(os.path.join(w, "reeve.yaml"), "w") as f:
            f.write("""listen: 127.0.0.1:0
publicURL: https://reeve.example.com
dataDir: %s
log: {level: info, format: text}
repository:
  url: file://%s
  branch: main
  pollInterval: 0
  auth: {kind: none}
forge:
  kind: %s
  apiURL: %s
  repository: acme/specs
  tokenRef: env:REEVE_FORGE_TOKEN
  webhookSecretRef: env:REEVE_WEBHOOK_SECRET
ticks: {base: 10, fast: 1}
""" % (data, bare, a.forge, furl))
        env = dict(os.environ, REEVE_FORGE_TOKEN=TOKEN, REEVE_WEBHOOK_SECRET=SECRET)
        t_start = time.time()
        reeve = subprocess.Popen([a.reeve, "serve", "-c", os.path.join(w, "reeve.yaml")], env=env,
                                 stdin=subprocess.DEVNULL,
                                 stdout=open(os.path.join(w, "reeve.out"), "w"),
                                 stderr=open(os.path.join(w, "reeve.log"), "w"))
        rurl = "http://127.0.0.1:%s" % wait_file(os.path.join(data, "port"), 30)
        print("bench/gitops: reeve serve (pid %d) on %s, fake %s on %s" % (
            reeve.pid, rurl, a.forge, furl), flush=True)

        ref = "refs/merge-requests/%d/head" if a.forge == "gitlab" else "refs/pull/%d/head"

        def one_pr(n):
            path = files[(n * 7919) % len(files)]
            git("checkout", "-q", "-B", "pr-%d" % n, main_sha, cwd=specs)
            full = os.path.join(specs, path)
            with open(full) as f:
                text = f.read()
            text, k = RETENTION.subn(lambda m: m.group(1) + str(int(m.group(2)) + 1), text, count=1)
            if k != 1:
                raise SystemExit("bench/gitops: no backup retention in %s" % path)
            with open(full, "w") as f:
                f.write(text)
            git("commit", "-q", "-am", "%s: retention + 1 day" % path, cwd=specs)
            head = git("rev-parse", "HEAD", cwd=specs)
            git("push", "-q", "origin", "+HEAD:" + ref % n, cwd=specs)
            event, doc = webhook.build_pr(a.forge, "opened", n, head, "pr-%d" % n, "main",
                                          main_sha, repo="acme/specs", repo_id=42)
            res = webhook.send(rurl, a.forge, SECRET, event, doc)
            if res["status"] != 202:
                raise SystemExit("bench/gitops: webhook answered %s %s" % (res["status"], res["body"]))
            timeout = a.warmup_timeout if n == 1 else a.timeout
            plan = fakeq.wait_status(furl, head, "reeve/plan", timeout=timeout, interval=0.02)
            if plan is None:
                raise SystemExit("bench/gitops: no reeve/plan on PR %d (%s) within %gs; "
                                 "see %s/reeve.log" % (n, head[:12], timeout, w))
            val = fakeq.wait_status(furl, head, "reeve/validate", timeout=5)
            return {"pr": n, "sha": head, "file": path, "answer_ms": res["elapsed"] * 1000,
                    "plan_ms": (plan["received_at"] - res["sent_at"]) * 1000,
                    "plan_state": plan["state"], "plan_desc": plan["description"],
                    "validate_ms": (val["received_at"] - res["sent_at"]) * 1000 if val else None}

        t = time.monotonic()
        warm = one_pr(1)
        print("warm-up PR 1: reeve/plan %s after %.0f ms (%.1f s after reeve started; "
              "includes the initial load of main): %s" % (
                  warm["plan_state"], warm["plan_ms"], time.time() - t_start, warm["plan_desc"]),
              flush=True)
        rss_warm = proc_status(reeve.pid, "VmRSS")
        if a.perf:
            perf = subprocess.Popen(["perf", "record", "-F", "999", "--call-graph",
                                     os.environ.get("PERF_CALLGRAPH", "fp"), "-o", a.perf,
                                     "-p", str(reeve.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        rows = []
        for i in range(a.prs):
            r = one_pr(i + 2)
            rows.append(r)
            print("PR %3d  %-58s plan %-7s %7.1f ms  validate %7.1f ms  webhook answered in %5.1f ms" % (
                r["pr"], r["file"][:58], r["plan_state"], r["plan_ms"],
                r["validate_ms"] if r["validate_ms"] is not None else float("nan"),
                r["answer_ms"]), flush=True)
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
            perf = None
        hwm = proc_status(reeve.pid, "VmHWM")
        rss = proc_status(reeve.pid, "VmRSS")
        plan = [r["plan_ms"] for r in rows]
        val = [r["validate_ms"] for r in rows if r["validate_ms"] is not None]
        ans = [r["answer_ms"] for r in rows]
        states = sorted(set(r["plan_state"] for r in rows))
        print()
        print("webhook -> reeve/plan (%d PRs, final state %s): median %.1f ms, p90 %.1f ms, max %.1f ms" % (
            len(plan), "/".join(states), statistics.median(plan), pct(plan, 90), max(plan)))
        if val:
            print("webhook -> reeve/validate: median %.1f ms, p90 %.1f ms, max %.1f ms" % (
                statistics.median(val), pct(val, 90), max(val)))
        print("webhook answer time: median %.1f ms, max %.1f ms" % (statistics.median(ans), max(ans)))
        print("reeve peak RSS (VmHWM): %.1f MiB; RSS after warm-up %.1f MiB, at the end %.1f MiB" % (
            hwm / 1024, rss_warm / 1024, rss / 1024))
        print("measured in %.1f s" % (time.monotonic() - t))
        with open(os.path.join(w, "results.json"), "w") as f:
            json.dump({"warmup": warm, "rows": rows, "vmhwm_kib": hwm}, f, indent=1)
        goal = statistics.median(plan) < 200 and hwm < 150 * 1024
        print("goals (median < 200 ms, peak RSS < 150 MiB): %s" % ("met" if goal else "MISSED"))
        return 0
    finally:
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            try:
                perf.wait(30)
            except subprocess.TimeoutExpired:
                perf.kill()
        stop(reeve)
        stop(fake, 5)


if __name__ == "__main__":
    sys.exit(main())
