#!/usr/bin/env python3
"""Generate a spec repository for benchmarking `reeve validate`.

    gen.py [--count N] [--seed S] OUT

writes OUT/clusters/<namespace>/<name>.yaml (and about 1 in 20 as
<name>.tf.json) plus one policy per namespace and a "*" baseline, all
valid, so a run exercises parsing, schema validation, conversion, the
cross-file checks and policy evaluation, and prints no diagnostics.
The same count and seed always give the same files.
"""
import argparse
import base64
import json
import os
import random
import re

TEAMS = ["payments", "billing", "identity", "analytics", "search", "catalog", "orders",
         "shipping", "inventory", "support", "marketing", "fraud", "ledger", "reporting",
         "ml", "growth", "mobile", "web", "platform", "security"]
SUFFIXES = ["core", "eu", "us", "apac", "internal", "edge", "batch", "stream", "api", "jobs"]
WORDS = ["accounts", "events", "sessions", "orders", "invoices", "users", "carts", "items",
         "prices", "ledger", "audit", "tokens", "profiles", "metrics", "reviews", "stock",
         "refunds", "quotes", "leads", "tickets", "queue", "search", "feeds", "geo"]
PG_VERSIONS = ["13", "14", "15", "16", "17"]
MARIA_VERSIONS = ["10.6", "10.11", "11.4"]
PG_PARAMS = {"max_connections": ["100", "200", "400"], "shared_buffers": ["256MB", "1GB", "4GB"],
             "work_mem": ["4MB", "16MB", "64MB"], "effective_cache_size": ["1GB", "8GB"],
             "random_page_cost": ["1.1", "4"], "log_min_duration_statement": ["500", "2000"]}
MARIA_PARAMS = {"max_connections": ["150", "300", "600"],
                "innodb_buffer_pool_size": ["512M", "2G", "8G"],
                "innodb_log_file_size": ["256M", "1G"], "binlog_format": ["ROW"],
                "character_set_server": ["utf8mb4"]}
WINDOWS = ["Sun 02:00-04:00", "Sat 23:00-01:00", "Daily 03:00-03:30", "Tue 01:00-02:00",
           "Wed 04:00-05:00"]


def namespaces(rng, n):
    out = []
    for t in TEAMS:
        for s in SUFFIXES:
            out.append(f"{t}-{s}")
    rng.shuffle(out)
    return sorted(out[:n])


def sealed(rng):
    return "sealed:" + base64.b64encode(rng.randbytes(rng.choice([64, 80, 96]))).decode()


def cluster(rng, ns, name):
    engine = "postgresql" if rng.random() < 0.7 else "mariadb"
    pg = engine == "postgresql"
    instances = rng.choice([1, 2, 2, 3, 3, 3, 5])
    spec = {
        "engine": engine,
        "version": rng.choice(PG_VERSIONS if pg else MARIA_VERSIONS),
        "provider": "local",
        "region": rng.choice(["local-1", "local-2"]),
        "instances": instances,
        "resources": {"cpu": rng.choice([0.5, 1, 2, 4, 8]),
                      "memoryMiB": rng.choice([512, 1024, 4096, 16384]),
                      "storageGiB": rng.choice([10, 20, 50, 200])},
    }
    params = PG_PARAMS if pg else MARIA_PARAMS
    keys = rng.sample(sorted(params), rng.randint(1, len(params)))
    spec["parameters"] = {k: rng.choice(params[k]) for k in sorted(keys)}
    if instances > 1:
        spec["replication"] = {"synchronous": rng.randint(0, min(2, instances - 1)),
                               "maxLagOnFailoverBytes": rng.choice([0, 1048576, 16777216])}
    backup = {"schedule": {"full": f"{rng.randint(0, 59)} {rng.randint(0, 6)} * * *"},
              "retention": {"days": rng.choice([7, 14, 30, 90])},
              "method": "pg_basebackup" if pg else "mariabackup"}
    if rng.random() < 0.5:
        backup["schedule"]["incremental"] = rng.choice(["*/15 * * * *", "0 * * * *", "*/5 * * * *"])
    if rng.random() < 0.6:
        backup["destination"] = {"s3": {"bucket": "backups", "prefix": f"{ns}/{name}",
                                        "endpoint": "http://127.0.0.1:9000",
                                        "region": "us-east-1", "credentialsRef": "s3-main"}}
        backup["encryption"] = {"keyRef": "backup-key"}
    else:
        backup["destination"] = {"local": {"path": f"/var/lib/reeve/backups/{ns}/{name}"}}
    backup["preferReplica"] = instances > 1
    spec["backup"] = backup
    if rng.random() < 0.5:
        spec["pitr"] = {"enabled": True}
    users = []
    for i in range(rng.randint(1, 4)):
        role = rng.choice(["readwrite", "readonly", "admin"])
        ref = sealed(rng) if rng.random() < 0.6 else f"env:{name.upper().replace('-', '_')}_U{i}"
        users.append({"name": f"{name.replace('-', '_')}_u{i}", "roles": [role], "passwordRef": ref})
    spec["users"] = users
    spec["access"] = {"allowedCIDRs": ["127.0.0.0/8", f"10.{rng.randint(0, 255)}.0.0/16"]}
    spec["maintenance"] = {"window": rng.choice(WINDOWS), "upgrade": rng.choice(["rolling", "replace"])}
    spec["deletionProtection"] = True
    labels = {"team": ns.split("-")[0], "tier": rng.choice(["critical", "standard", "batch"])}
    return spec, labels


PLAIN = re.compile(r"^[A-Za-z/][A-Za-z0-9_./-]*$")
SPECIAL = {"true", "false", "null", "True", "False", "Null", "TRUE", "FALSE", "NULL", "~"}


def yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if PLAIN.match(v) and v not in SPECIAL:
        return v
    return json.dumps(v)  # a JSON string is a valid double-quoted YAML scalar


def yaml_lines(v, indent):
    pad = "  " * indent
    out = []
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, list) and x and not isinstance(x[0], (dict, list)):
                out.append(f"{pad}{k}: [{', '.join(yaml_scalar(y) for y in x)}]")
            elif isinstance(x, (dict, list)) and x:
                out.append(f"{pad}{k}:")
                out.extend(yaml_lines(x, indent + 1))
            elif isinstance(x, dict):
                out.append(f"{pad}{k}: {{}}")
            else:
                out.append(f"{pad}{k}: {yaml_scalar(x)}")
    else:
        for x in v:
            if isinstance(x, dict):
                sub = yaml_lines(x, indent + 1)
                out.append(f"{pad}- {sub[0].lstrip()}")
                out.extend(sub[1:])
            elif isinstance(x, list):
                out.append(f"{pad}- [{', '.join(yaml_scalar(y) for y in x)}]")
            else:
                out.append(f"{pad}- {yaml_scalar(x)}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("out")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    nss = namespaces(rng, min(200, max(1, a.count // 25)))
    used = set()
    for i in range(a.count):
        ns = nss[i % len(nss)]
        while True:
            name = f"{rng.choice(WORDS)}-{rng.choice(SUFFIXES)}-{rng.randint(1, 999)}"
            if (ns, name) not in used:
                used.add((ns, name))
                break
        spec, labels = cluster(rng, ns, name)
        d = os.path.join(a.out, "clusters", ns)
        os.makedirs(d, exist_ok=True)
        if rng.random() < 0.05:
            body = {"namespace": ns, "labels": labels}
            body.update(spec)
            doc = {"resource": {"reeve_database_cluster": {name: body}}}
            with open(os.path.join(d, name + ".tf.json"), "w") as f:
                json.dump(doc, f, indent=2)
                f.write("\n")
        else:
            doc = {"apiVersion": "reeve/v1", "kind": "DatabaseCluster",
                   "metadata": {"name": name, "namespace": ns, "labels": labels},
                   "spec": spec}
            with open(os.path.join(d, name + ".yaml"), "w") as f:
                f.write(f"# {ns}/{name}\n")
                f.write("\n".join(yaml_lines(doc, 0)) + "\n")
    pd = os.path.join(a.out, "policies")
    os.makedirs(pd, exist_ok=True)
    with open(os.path.join(pd, "baseline.yaml"), "w") as f:
        f.write("\n".join(yaml_lines({
            "apiVersion": "reeve/v1", "kind": "Policy", "metadata": {"name": "baseline"},
            "spec": {"namespaces": ["*"], "providers": ["local"], "instances": {"max": 5},
                     "require": {"backup": True, "deletionProtection": True}}}, 0)) + "\n")
    for ns in nss:
        with open(os.path.join(pd, ns + ".yaml"), "w") as f:
            f.write("\n".join(yaml_lines({
                "apiVersion": "reeve/v1", "kind": "Policy", "metadata": {"name": ns},
                "spec": {"namespaces": [ns],
                         "engines": [{"engine": "postgresql", "versions": PG_VERSIONS},
                                     {"engine": "mariadb", "versions": MARIA_VERSIONS}],
                         "resources": {"maxCpu": 16, "maxMemoryMiB": 65536,
                                       "maxStorageGiB": 1024}}}, 0)) + "\n")


if __name__ == "__main__":
    main()
