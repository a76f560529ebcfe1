#!/usr/bin/env python3
"""webhook.py - send forge webhooks to reeve the way GitHub, Gitea and GitLab do.

Builds payloads shaped like the forges' own (the fields reeve reads plus the
usual company of fields it must skip), signs them with the forge's scheme and
POSTs them to <url>/hooks/<kind>:

    GitHub  X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)> (and the
            legacy X-Hub-Signature sha1), X-GitHub-Event, X-GitHub-Delivery
    Gitea   X-Gitea-Signature: <hex HMAC-SHA256>, X-Gitea-Event, X-Gitea-Delivery,
            plus the X-Gogs-* and X-GitHub-* copies Gitea also sends
    GitLab  X-Gitlab-Token: <secret>, X-Gitlab-Event, X-Gitlab-Event-UUID

Usage (one delivery per run; prints one JSON line: status, body, delivery,
sent_at = Unix time just before the request went out):

    webhook.py --url URL --kind K --secret S [--repo acme/specs] [--repo-id N]
               [--delivery ID] [--wrong-secret] [--timeout SECS]
               pr   --action opened|synchronize|closed|reopened --number N
                    --head SHA --head-ref BRANCH [--base-ref main] [--base-sha SHA]
                    [--before SHA] [--merged --merge-sha SHA]
               push --ref refs/heads/main --before SHA --after SHA
               raw  --event NAME --body TEXT

"synchronize" becomes Gitea's "synchronized" and GitLab's "update" with
oldrev (--before); "closed --merged" becomes GitLab's "merge".
Importable: build_pr(), build_push(), sign_headers(), send().
Python 3 standard library only.
"""

import argparse
import hashlib
import hmac
import http.client
import json
import sys
import time
import urllib.parse
import uuid

ZERO = "0" * 40
USER = {"login": "dev", "id": 4242, "type": "User"}


def _iso(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t if t is not None else time.time()))


def _gh_repo(kind, full, repo_id, web):
    owner, _, name = full.partition("/")
    owner_doc = {"login": owner, "id": repo_id + 1, "type": "Organization"}
    doc = {"id": repo_id, "name": name, "full_name": full, "private": True,
           "owner": owner_doc, "html_url": "%s/%s" % (web, full),
           "clone_url": "%s/%s.git" % (web, full), "default_branch": "main"}
    if kind == "github":
        doc.update({"node_id": "R_kgDO%08d" % repo_id, "fork": False,
                    "url": "%s/repos/%s" % (web.replace("//", "//api."), full),
                    "ssh_url": "git@%s:%s.git" % (urllib.parse.urlsplit(web).hostname, full),
                    "visibility": "private"})
    else:
        owner_doc.update({"username": owner, "full_name": "", "email": ""})
        doc.update({"description": "database cluster specs", "empty": False,
                    "ssh_url": "git@%s:%s.git" % (urllib.parse.urlsplit(web).hostname, full)})
    return doc


def build_pr(kind, action, number, head, head_ref, base_ref="main", base_sha=None,
             before=None, merged=False, merge_sha=None, repo="acme/specs", repo_id=4711,
             title=None):
    """(event name, payload dict) of a pull request / merge request event."""
    title = title or "Change specs (#%d)" % number
    if kind in ("github", "gitea"):
        web = "https://github.com" if kind == "github" else "https://gitea.example.com"
        rdoc = _gh_repo(kind, repo, repo_id, web)
        if kind == "github":
            wire = action
        else:
            wire = "synchronized" if action == "synchronize" else action
        state = "closed" if action == "closed" else "open"
        pr = {
            "id": 900000 + number, "number": number, "state": state, "locked": False,
            "title": title, "body": "Please review the plan status before merging.",
            "user": USER, "created_at": _iso(), "updated_at": _iso(),
            "closed_at": _iso() if action == "closed" else None,
            "merged_at": _iso() if merged else None,
            "merged": bool(merged), "mergeable": None if merged else True,
            "merge_commit_sha": merge_sha if merged else None,
            "html_url": "%s/%s/pull/%d" % (web, repo, number),
            "head": {"label": "%s:%s" % (repo.split("/")[0], head_ref), "ref": head_ref,
                     "sha": head, "user": USER, "repo": rdoc},
            "base": {"label": "%s:%s" % (repo.split("/")[0], base_ref), "ref": base_ref,
                     "sha": base_sha or ZERO, "user": USER, "repo": rdoc},
            "draft": False, "commits": 1, "additions": 1, "deletions": 1, "changed_files": 1,
        }
        if kind == "gitea":
            pr.update({"url": pr["html_url"], "labels": [], "milestone": None,
                       "assignees": None, "comments": 0, "diff_url": pr["html_url"] + ".diff",
                       "merged_by": USER if merged else None})
        doc = {"action": wire, "number": number, "pull_request": pr, "repository": rdoc,
               "sender": USER}
        if kind == "github":
            doc["installation"] = {"id": 31337, "node_id": "MDIz"}
            if action == "synchronize" and before:
                doc["before"], doc["after"] = before, head
        return "pull_request", doc
    # GitLab merge request hook
    wire = {"opened": "open", "synchronize": "update", "reopened": "reopen",
            "closed": "merge" if merged else "close"}[action]
    state = {"open": "opened", "update": "opened", "reopen": "opened",
             "merge": "merged", "close": "closed"}[wire]
    web = "https://gitlab.example.com"
    project = {"id": repo_id, "name": repo.rsplit("/", 1)[-1], "description": "specs",
               "web_url": "%s/%s" % (web, repo), "avatar_url": None,
               "git_ssh_url": "git@gitlab.example.com:%s.git" % repo,
               "git_http_url": "%s/%s.git" % (web, repo), "namespace": repo.split("/")[0],
               "visibility_level": 0, "path_with_namespace": repo, "default_branch": "main",
               "ci_config_path": None, "homepage": "%s/%s" % (web, repo),
               "url": "git@gitlab.example.com:%s.git" % repo,
               "ssh_url": "git@gitlab.example.com:%s.git" % repo,
               "http_url": "%s/%s.git" % (web, repo)}
    attrs = {
        "id": 700000 + number, "iid": number, "target_branch": base_ref,
        "source_branch": head_ref, "source_project_id": repo_id, "author_id": 4242,
        "assignee_ids": [], "reviewer_ids": [], "title": title,
        "created_at": _iso(), "updated_at": _iso(), "state": state,
        "merge_status": "can_be_merged", "detailed_merge_status": "mergeable",
        "target_project_id": repo_id, "description": "Please review the plan status.",
        "url": "%s/%s/-/merge_requests/%d" % (web, repo, number),
        "source": project, "target": project,
        "last_commit": {"id": head, "message": title + "\n", "title": title,
                        "timestamp": _iso(), "url": "%s/%s/-/commit/%s" % (web, repo, head),
                        "author": {"name": "Dev", "email": "dev@example.com"}},
        "work_in_progress": False, "draft": False, "blocking_discussions_resolved": True,
        "action": wire, "merge_commit_sha": merge_sha if merged else None,
        "merge_when_pipeline_succeeds": False, "labels": [],
    }
    if wire == "update" and before:
        attrs["oldrev"] = before
    changes = {"updated_at": {"previous": _iso(time.time() - 60), "current": _iso()}}
    if wire in ("merge", "close"):
        changes["state_id"] = {"previous": 1, "current": 3 if merged else 2}
    doc = {"object_kind": "merge_request", "event_type": "merge_request",
           "user": {"id": 4242, "name": "Dev", "username": "dev",
                    "avatar_url": None, "email": "[REDACTED]"},
           "project": project, "object_attributes": attrs, "labels": [],
           "changes": changes,
           "repository": {"name": project["name"], "url": project["url"],
                          "description": "specs", "homepage": project["homepage"]}}
    return "Merge Request Hook", doc


def build_push(kind, ref, before, after, repo="acme/specs", repo_id=4711, message="Merge"):
    """(event name, payload dict) of a branch push."""
    commit = {"id": after, "message": message + "\n", "timestamp": _iso(),
              "author": {"name": "Dev", "email": "dev@example.com"},
              "added": [], "removed": [], "modified": ["clusters/payments/billing.yaml"]}
    if kind in ("github", "gitea"):
        web = "https://github.com" if kind == "github" else "https://gitea.example.com"
        rdoc = _gh_repo(kind, repo, repo_id, web)
        commit["url"] = "%s/%s/commit/%s" % (web, repo, after)
        doc = {"ref": ref, "before": before, "after": after,
               "compare_url" if kind == "gitea" else "compare":
                   "%s/%s/compare/%s...%s" % (web, repo, before[:12], after[:12]),
               "commits": [commit], "head_commit": commit, "repository": rdoc,
               "pusher": {"name": "dev", "email": "dev@example.com"}, "sender": USER}
        if kind == "github":
            doc.update({"created": before == ZERO, "deleted": after == ZERO, "forced": False,
                        "base_ref": None})
        else:
            doc["total_commits"] = 1
        return "push", doc
    web = "https://gitlab.example.com"
    project = {"id": repo_id, "name": repo.rsplit("/", 1)[-1],
               "web_url": "%s/%s" % (web, repo), "namespace": repo.split("/")[0],
               "path_with_namespace": repo, "default_branch": "main",
               "git_http_url": "%s/%s.git" % (web, repo)}
    commit["url"] = "%s/%s/-/commit/%s" % (web, repo, after)
    doc = {"object_kind": "push", "event_name": "push", "before": before, "after": after,
           "ref": ref, "ref_protected": True, "checkout_sha": after, "message": None,
           "user_id": 4242, "user_name": "Dev", "user_username": "dev",
           "user_email": "", "project_id": repo_id, "project": project,
           "commits": [commit], "total_commits_count": 1,
           "repository": {"name": project["name"], "url": project["git_http_url"],
                          "homepage": project["web_url"]}}
    return "Push Hook", doc


def sign_headers(kind, secret, event, body, delivery):
    """The headers the forge sends with this body."""
    sha256 = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    sha1 = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    h = {"Content-Type": "application/json"}
    if kind == "github":
        h.update({"User-Agent": "GitHub-Hookshot/7d1b2c3", "X-GitHub-Event": event,
                  "X-GitHub-Delivery": delivery, "X-GitHub-Hook-ID": "471101",
                  "X-GitHub-Hook-Installation-Target-ID": "4711",
                  "X-GitHub-Hook-Installation-Target-Type": "repository",
                  "X-Hub-Signature": "sha1=" + sha1, "X-Hub-Signature-256": "sha256=" + sha256})
    elif kind == "gitea":
        h.update({"User-Agent": "Go-http-client/1.1",
                  "X-Gitea-Event": event, "X-Gitea-Event-Type": event,
                  "X-Gitea-Delivery": delivery, "X-Gitea-Signature": sha256,
                  "X-Gogs-Event": event, "X-Gogs-Event-Type": event,
                  "X-Gogs-Delivery": delivery, "X-Gogs-Signature": sha256,
                  "X-GitHub-Event": event, "X-GitHub-Event-Type": event,
                  "X-GitHub-Delivery": delivery,
                  "X-Hub-Signature": "sha1=" + sha1, "X-Hub-Signature-256": "sha256=" + sha256})
    else:
        h.update({"User-Agent": "GitLab/17.5.1", "X-Gitlab-Event": event,
                  "X-Gitlab-Token": secret, "X-Gitlab-Event-UUID": delivery,
                  "X-Gitlab-Webhook-UUID": "3c8b8f5e-5ad4-4a40-9d8e-6c3f1f0a8b42",
                  "X-Gitlab-Instance": "https://gitlab.example.com",
                  "Idempotency-Key": delivery})
    return h


def send(url, kind, secret, event, doc, delivery=None, timeout=10.0, body=None):
    """POST one delivery; returns dict(status, body, delivery, sent_at, elapsed)."""
    delivery = delivery or str(uuid.uuid4())
    if body is None:
        body = json.dumps(doc, separators=(",", ":")).encode()
    elif isinstance(body, str):
        body = body.encode()
    headers = sign_headers(kind, secret, event, body, delivery)
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    path = u.path.rstrip("/") + "/hooks/" + kind
    try:
        sent_at = time.time()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        elapsed = time.time() - sent_at
        return {"status": resp.status, "body": text.strip(), "delivery": delivery,
                "sent_at": sent_at, "elapsed": elapsed}
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="reeve's base URL, http://127.0.0.1:PORT")
    ap.add_argument("--kind", required=True, choices=["github", "gitea", "gitlab"])
    ap.add_argument("--secret", required=True)
    ap.add_argument("--wrong-secret", action="store_true",
                    help="sign with a different secret (expect 401)")
    ap.add_argument("--repo", default="acme/specs")
    ap.add_argument("--repo-id", type=int, default=4711)
    ap.add_argument("--delivery")
    ap.add_argument("--timeout", type=float, default=10.0)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("pr")
    p.add_argument("--action", required=True,
                   choices=["opened", "synchronize", "closed", "reopened"])
    p.add_argument("--number", type=int, required=True)
    p.add_argument("--head", required=True)
    p.add_argument("--head-ref", required=True)
    p.add_argument("--base-ref", default="main")
    p.add_argument("--base-sha")
    p.add_argument("--before", help="previous head (GitLab oldrev)")
    p.add_argument("--merged", action="store_true")
    p.add_argument("--merge-sha")
    q = sub.add_parser("push")
    q.add_argument("--ref", required=True)
    q.add_argument("--before", required=True)
    q.add_argument("--after", required=True)
    r = sub.add_parser("raw")
    r.add_argument("--event", required=True)
    r.add_argument("--body", required=True)
    a = ap.parse_args()

    body = None
    if a.what == "pr":
        event, doc = build_pr(a.kind, a.action, a.number, a.head, a.head_ref, a.base_ref,
                              a.base_sha, a.before, a.merged, a.merge_sha, a.repo, a.repo_id)
    elif a.what == "push":
        event, doc = build_push(a.kind, a.ref, a.before, a.after, a.repo, a.repo_id)
    else:
        event, doc, body = a.event, None, a.body
    secret = a.secret + "-not-it" if a.wrong_secret else a.secret
    try:
        res = send(a.url, a.kind, secret, event, doc, a.delivery, a.timeout, body)
    except OSError as e:
        print(json.dumps({"status": 0, "body": "connection failed: %s" % e,
                          "delivery": a.delivery or "", "sent_at": time.time()}))
        return 2
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
