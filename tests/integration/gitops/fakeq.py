#!/usr/bin/env python3
"""fakeq.py - read and wait on what tests/fakeforge/fakeforge.py recorded.

    fakeq.py URL wait --sha SHA --context CTX [--states S,S...] [--timeout SECS]
        Wait (bounded) until a status for SHA and CTX is recorded whose state
        is one of STATES (default: any final state: success failure error
        failed canceled skipped). Prints that status as one JSON line, exit 0;
        on timeout prints every status seen for SHA to stderr, exit 1.
    fakeq.py URL list [--sha SHA]
        Every recorded status (or those for SHA), one JSON line each.

The fake's statuses carry received_at, the fake's own clock at acceptance.
Python 3 standard library only.
"""

import argparse
import json
import sys
import time
import urllib.request

FINAL = ("success", "failure", "error", "failed", "canceled", "skipped")


def statuses(url, timeout=5.0):
    with urllib.request.urlopen(url.rstrip("/") + "/_fake/statuses", timeout=timeout) as r:
        return json.load(r)["statuses"]


def wait_status(url, sha, context, states=FINAL, timeout=20.0, interval=0.02, since_id=0):
    """The first status (sha, context) with a state in states and id > since_id,
    or None when the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        for s in statuses(url):
            if (s["id"] > since_id and s["sha"] == sha and s["context"] == context
                    and s["state"] in states):
                return s
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    sub = ap.add_subparsers(dest="what", required=True)
    w = sub.add_parser("wait")
    w.add_argument("--sha", required=True)
    w.add_argument("--context", required=True)
    w.add_argument("--states", default=",".join(FINAL))
    w.add_argument("--timeout", type=float, default=20.0)
    w.add_argument("--since-id", type=int, default=0)
    ls = sub.add_parser("list")
    ls.add_argument("--sha")
    a = ap.parse_args()
    if a.what == "wait":
        s = wait_status(a.url, a.sha, a.context, tuple(a.states.split(",")), a.timeout,
                        since_id=a.since_id)
        if s is None:
            seen = [x for x in statuses(a.url) if x["sha"] == a.sha]
            sys.stderr.write("no %s status in {%s} on %s within %gs; statuses on it: %s\n" % (
                a.context, a.states, a.sha[:12], a.timeout, json.dumps(seen)))
            return 1
        print(json.dumps(s))
        return 0
    for s in statuses(a.url):
        if a.sha is None or s["sha"] == a.sha:
            print(json.dumps(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
