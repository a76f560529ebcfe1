#!/usr/bin/env python3
"""report.py OUT.json RUNS PATRONI_VERSION ETCD_VERSION PG_VERSION < results

Reads "system ms", "system fail reason" or "system lost LOST ACKED" lines, prints the table and the
ratios, and writes OUT.json."""
import datetime
import json
import platform
import statistics
import sys

SETTINGS = {
    "reeve": "built-in DCS, ttl_ms 3000, tick_ms 300",
    "reeve-sync": "as reeve, synchronous: 1, a writer counting acknowledged rows",
    "patroni-default": "etcd3, ttl 30, loop_wait 10, retry_timeout 10",
    "patroni-matched": "etcd3, ttl 5, loop_wait 1, retry_timeout 2",
    "patroni-floor": "etcd3, ttl 20, loop_wait 1, retry_timeout 3",
}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    out, runs = sys.argv[1], int(sys.argv[2])
    versions = {"patroni": sys.argv[3], "etcd": sys.argv[4], "postgresql": sys.argv[5]}
    systems = {}
    for line in sys.stdin:
        parts = line.split()
        if len(parts) < 2:
            continue
        s = systems.setdefault(parts[0], {"runs_ms": [], "failures": []})
        if parts[1] == "lost" and len(parts) == 4:
            s["acknowledged_writes"] = int(parts[3])
            s["acknowledged_writes_lost"] = int(parts[2])
        elif parts[1] == "fail":
            s["failures"].append(parts[2] if len(parts) > 2 else "unknown")
        else:
            s["runs_ms"].append(int(parts[1]))
    print()
    print("%-16s %-48s %4s %10s %10s %10s  %s" % ("system", "settings", "runs", "median ms",
                                                  "max ms", "min ms", "failures"))
    for name, s in systems.items():
        r = s["runs_ms"]
        s["settings"] = SETTINGS.get(name, "")
        s["median_ms"] = statistics.median(r) if r else None
        s["max_ms"] = max(r) if r else None
        s["min_ms"] = min(r) if r else None
        print("%-16s %-48s %4d %10s %10s %10s  %s" % (
            name, s["settings"], len(r),
            "%.0f" % s["median_ms"] if r else "-", s["max_ms"] if r else "-",
            s["min_ms"] if r else "-", ",".join(s["failures"]) or "none"))
        if "acknowledged_writes" in s:
            print("%-16s acknowledged writes lost: %d of %d" % (
                name, s["acknowledged_writes_lost"], s["acknowledged_writes"]))
    ratios = {}
    reeve = systems.get("reeve", {})
    for peer in ("patroni-default", "patroni-matched", "patroni-floor"):
        p = systems.get(peer, {})
        if reeve.get("median_ms") and p.get("median_ms"):
            ratios["reeve/" + peer] = {
                "median": round(reeve["median_ms"] / p["median_ms"], 3),
                "max": round(reeve["max_ms"] / p["max_ms"], 3),
            }
            print("ratio reeve / %s: median %.2f, max %.2f" % (
                peer, ratios["reeve/" + peer]["median"], ratios["reeve/" + peer]["max"]))
    doc = {
        "benchmark": "failover: SIGKILL of the primary's agent and postmaster to the first "
                     "committed INSERT on another node (probe every 20 ms)",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpu": cpu_model(), "cores": __import__("os").cpu_count(),
                    "kernel": platform.release()},
        "versions": versions,
        "runs_requested": runs,
        "systems": systems,
        "ratios": ratios,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print("wrote " + out)


if __name__ == "__main__":
    main()
