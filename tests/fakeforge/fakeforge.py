#!/usr/bin/env python3
"""fakeforge.py - a strict fake of the GitHub, Gitea and GitLab commit-status APIs.

It accepts exactly what the real service documents and answers anything else
the way the real service does (status code and error body), so a client that
passes here sends what the forge expects. Where the fake is stricter than the
service (unknown JSON keys, a non-JSON Content-Type), it says so in the error;
those are mistakes the real service would silently ignore (a GitHub "name"
instead of "context" lands as context "default").

    fakeforge.py --kind github|gitea|gitlab --token T --port 0 --port-file F
                 [--repo owner/name[=id] ...] [--fail-first N]
                 [--rate-limit SECONDS] [--rate-limit-style reset|retry-after]

Test endpoints (no auth):
    GET /_fake/statuses   accepted statuses, oldest first, with received_at
    GET /_fake/requests   every API request: time, method, path, answer,
                          auth result and the non-secret headers
    GET /_fake/health     "ok"

Python 3 standard library only. Listens on 127.0.0.1 only.
"""

import argparse
import json
import math
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GITHUB_DOCS = "https://docs.github.com/rest/commits/statuses#create-a-commit-status"
GITHUB_API_VERSIONS = {"2022-11-28", "2026-03-10"}
GITHUB_STATES = {"error", "failure", "pending", "success"}
GITEA_STATES = {"pending", "success", "error", "failure", "warning"}
GITLAB_STATES = {"pending", "running", "success", "failed", "canceled", "skipped"}
GITHUB_KEYS = {"state", "target_url", "description", "context"}
GITEA_KEYS = {"state", "target_url", "description", "context"}
GITLAB_KEYS = {"state", "ref", "name", "context", "target_url", "description",
               "coverage", "pipeline_id"}
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
SAFE_HEADERS = ("accept", "content-type", "user-agent", "x-github-api-version",
                "content-length")
MAX_BODY = 1024 * 1024
# GitHub keeps at most this many statuses per sha and context.
GITHUB_STATUSES_PER_CONTEXT = 1000


class ApiError(Exception):
    """An answer other than success: status, JSON-able body, extra headers."""

    def __init__(self, status, body, headers=None, text=False):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.text = text


class Forge:
    """State shared by the handler threads."""

    def __init__(self, args):
        self.kind = args.kind
        self.token = args.token
        self.fail_first = args.fail_first
        self.rate_limit = args.rate_limit
        self.rate_limit_style = args.rate_limit_style or (
            "reset" if args.kind == "github" else "retry-after")
        self.rate_limit_until = None
        self.lock = threading.Lock()
        self.statuses = []
        self.requests = []
        self.next_id = 1
        self.repos = {}  # path -> numeric id
        for i, spec in enumerate(args.repo or ["acme/infra"]):
            path, _, num = spec.partition("=")
            self.repos[path] = int(num) if num else 1000 + i

    # -- helpers --

    def repo_by_id(self, ident):
        if ident.isdigit():
            for path, num in self.repos.items():
                if num == int(ident):
                    return path
            return None
        return ident if ident in self.repos else None

    def api_url(self, host):
        return "http://%s" % host


def now_iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def chars(s):
    # Code points, as Ruby's String#length and Go's utf8.RuneCountInString.
    return len(s)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakeforge/1"
    forge = None  # set in main()

    def log_message(self, fmt, *args):  # quiet unless asked
        if os.environ.get("FAKEFORGE_VERBOSE"):
            sys.stderr.write("fakeforge: " + (fmt % args) + "\n")

    # -- plumbing --

    def send_json(self, status, body, headers=None, text=False):
        if text:
            data = body.encode()
            ctype = "text/plain; charset=utf-8"
        else:
            data = json.dumps(body).encode()
            ctype = "application/json; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise ApiError(411, {"message": "chunked bodies are not supported by fakeforge"})
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise ApiError(400, {"message": "bad Content-Length"})
        if n < 0 or n > MAX_BODY:
            raise ApiError(413, {"message": "Payload Too Large"})
        return self.rfile.read(n)

    def record(self, status, auth):
        f = self.forge
        entry = {
            "at": time.time(),
            "method": self.command,
            "path": self.path,
            "status": status,
            "auth": auth,
            "headers": {k: self.headers.get(k) for k in SAFE_HEADERS
                        if self.headers.get(k) is not None},
        }
        with f.lock:
            f.requests.append(entry)

    # -- test endpoints --

    def fake_endpoint(self):
        f = self.forge
        path = self.path.split("?", 1)[0]
        if self.command != "GET":
            self.send_json(405, {"message": "method not allowed"})
            return
        with f.lock:
            if path == "/_fake/statuses":
                self.send_json(200, {"statuses": list(f.statuses)})
            elif path == "/_fake/requests":
                self.send_json(200, {"requests": list(f.requests)})
            elif path == "/_fake/health":
                self.send_json(200, "ok\n", text=True)
            else:
                self.send_json(404, {"message": "no such fake endpoint"})

    # -- dispatch --

    def handle_any(self):
        if self.path.startswith("/_fake/"):
            self.fake_endpoint()
            return
        f = self.forge
        self.auth = "n/a"
        try:
            body = self.read_body()
            faults = self.faults()
            if faults:
                raise faults
            handler = {"github": self.github, "gitea": self.gitea, "gitlab": self.gitlab}
            status, doc, headers = handler[f.kind](body)
            text = False
        except ApiError as e:
            status, doc, headers, text = e.status, e.body, e.headers, e.text
        # Record before answering, so a test that reads /_fake/requests after
        # its call returned sees it.
        self.record(status, self.auth)
        self.send_json(status, doc, headers, text)

    do_GET = handle_any
    do_POST = handle_any
    do_PUT = handle_any
    do_PATCH = handle_any
    do_DELETE = handle_any

    # -- fault injection --

    def faults(self):
        f = self.forge
        t = time.time()
        with f.lock:
            if f.rate_limit > 0:
                if f.rate_limit_until is None:
                    # Whole seconds, as the reset headers carry them.
                    f.rate_limit_until = math.ceil(t + f.rate_limit)
                if t < f.rate_limit_until:
                    return self.rate_limited(f.rate_limit_until, t)
            if f.fail_first > 0:
                f.fail_first -= 1
                return ApiError(503, {"message": "Service Unavailable"})
        return None

    def rate_limited(self, until, t):
        f = self.forge
        wait = max(1, math.ceil(until - t))
        if f.kind == "github" and f.rate_limit_style == "reset":
            return ApiError(403, {
                "message": "API rate limit exceeded for user ID 1. If you reach out to GitHub "
                           "Support for help, please include the request ID.",
                "documentation_url": "https://docs.github.com/rest/overview/"
                                     "rate-limits-for-the-rest-api",
                "status": "403"}, {
                "x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
                "x-ratelimit-used": "5000", "x-ratelimit-reset": str(int(until)),
                "x-ratelimit-resource": "core"})
        if f.kind == "github":
            return ApiError(429, {
                "message": "You have exceeded a secondary rate limit. Please wait a few "
                           "minutes before you try again.",
                "documentation_url": "https://docs.github.com/rest/overview/"
                                     "rate-limits-for-the-rest-api#about-secondary-rate-limits",
                "status": "429"}, {"retry-after": str(wait)})
        if f.kind == "gitlab":
            headers = {"Retry-After": str(wait), "RateLimit-Limit": "600",
                       "RateLimit-Observed": "600", "RateLimit-Remaining": "0",
                       "RateLimit-Reset": str(int(until)),
                       "RateLimit-ResetTime": time.strftime(
                           "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(until))}
            if f.rate_limit_style == "reset":
                del headers["Retry-After"]
            return ApiError(429, "Retry later\n", headers, text=True)
        return ApiError(429, {"message": "rate limit exceeded", "url": ""},
                        {"Retry-After": str(wait)})

    # -- common checks --

    def split_path(self):
        raw = self.path
        path, _, query = raw.partition("?")
        return path, urllib.parse.parse_qs(query)

    def bearer(self, forms):
        """The token from Authorization: '<form> <token>', or None."""
        value = self.headers.get("Authorization")
        if value is None:
            return None
        scheme, _, tok = value.partition(" ")
        if scheme.lower() in forms and tok:
            return tok
        return ""  # present but malformed

    @staticmethod
    def parse_json(body, bad_json_error):
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise bad_json_error
        return doc

    def accept(self, record):
        f = self.forge
        t = time.time()
        with f.lock:
            record["id"] = f.next_id
            f.next_id += 1
            record["received_at"] = t
            f.statuses.append(record)
        return record["id"], t

    # -- GitHub --

    def github(self, body):
        f = self.forge
        path, _ = self.split_path()
        m = re.match(r"^/repos/([^/]+)/([^/]+)/statuses/([^/]+)$", path)
        not_found = ApiError(404, {"message": "Not Found", "documentation_url": GITHUB_DOCS,
                                   "status": "404"})
        if not m or self.command != "POST":
            raise not_found
        if not self.headers.get("User-Agent"):
            raise ApiError(403, "Request forbidden by administrative rules. Please make sure "
                                "your request has a User-Agent header "
                                "(https://docs.github.com/rest/overview/resources-in-the-rest-"
                                "api#user-agent-required). Check "
                                "https://developer.github.com for other possible causes.\n",
                           text=True)
        version = self.headers.get("X-GitHub-Api-Version")
        if version is not None and version not in GITHUB_API_VERSIONS:
            raise ApiError(400, {"message": "Invalid API version provided. Please check the "
                                            "documentation for a list of supported versions.",
                                 "documentation_url": "https://docs.github.com/rest/overview/"
                                                      "api-versions",
                                 "status": "400"})
        tok = self.bearer({"bearer", "token"})
        if tok is None:
            self.auth = "missing"
            raise ApiError(401, {"message": "Requires authentication",
                                 "documentation_url": GITHUB_DOCS, "status": "401"})
        if tok != f.token:
            self.auth = "bad"
            raise ApiError(401, {"message": "Bad credentials",
                                 "documentation_url": "https://docs.github.com/rest",
                                 "status": "401"})
        self.auth = "ok"
        owner, repo, sha = (urllib.parse.unquote(x) for x in m.groups())
        if "%s/%s" % (owner, repo) not in f.repos:
            raise not_found
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ApiError(415, {"message": "Unsupported 'Content-Type' header (fakeforge "
                                            "expects application/json)",
                                 "documentation_url": GITHUB_DOCS, "status": "415"})
        doc = self.parse_json(body, ApiError(400, {"message": "Problems parsing JSON",
                                                   "documentation_url": GITHUB_DOCS,
                                                   "status": "400"}))
        if not isinstance(doc, dict):
            raise ApiError(400, {"message": "Body should be a JSON object",
                                 "documentation_url": GITHUB_DOCS, "status": "400"})

        def invalid(text):
            return ApiError(422, {"message": "Invalid request.\n\n" + text,
                                  "documentation_url": GITHUB_DOCS, "status": "422"})

        def failed(field, text):
            return ApiError(422, {"message": "Validation Failed",
                                  "errors": [{"resource": "Status", "code": "custom",
                                              "field": field, "message": text}],
                                  "documentation_url": GITHUB_DOCS, "status": "422"})

        for key in doc:
            if key not in GITHUB_KEYS:
                raise invalid('"%s" is not a permitted key. (stricter than GitHub, which '
                              'ignores it)' % key)
        if "state" not in doc:
            raise invalid('"state" wasn\'t supplied.')
        for key in ("state", "target_url", "description", "context"):
            if key in doc and not (isinstance(doc[key], str) or
                                   (doc[key] is None and key != "state")):
                raise invalid("For 'properties/%s', %s is not a string%s." % (
                    key, json.dumps(doc[key]), "" if key == "state" else " or null"))
        if doc["state"] not in GITHUB_STATES:
            raise invalid("For 'properties/state', \"%s\" is not one of [\"error\", "
                          "\"failure\", \"pending\", \"success\"]." % doc["state"])
        desc = doc.get("description") or ""
        context = doc.get("context") or "default"
        target = doc.get("target_url") or ""
        if chars(desc) > 140:
            raise failed("description", "description is too long (maximum is 140 characters)")
        if chars(context) > 255:
            raise failed("context", "context is too long (maximum is 255 characters)")
        if target and not re.match(r"^https?://[^\s]+$", target):
            raise failed("target_url", "target_url must use http(s) scheme")
        if not SHA_RE.match(sha):
            raise ApiError(422, {"message": "No commit found for SHA: %s" % sha,
                                 "documentation_url": GITHUB_DOCS, "status": "422"})
        with f.lock:
            same = sum(1 for s in f.statuses if s["repo"] == "%s/%s" % (owner, repo)
                       and s["sha"] == sha and s["context"].lower() == context.lower())
        if same >= GITHUB_STATUSES_PER_CONTEXT:
            raise failed("context", "This SHA and context has reached the maximum number "
                                    "of statuses.")
        sid, t = self.accept({"repo": "%s/%s" % (owner, repo), "sha": sha, "state": doc["state"],
                              "context": context, "description": desc, "target_url": target})
        host = self.headers.get("Host", "127.0.0.1")
        url = "http://%s/repos/%s/%s/statuses/%s" % (host, owner, repo, sha)
        return 201, {
            "url": url, "avatar_url": "", "id": sid, "node_id": "SC_%d" % sid,
            "state": doc["state"], "description": desc or None,
            "target_url": target or None, "context": context,
            "created_at": now_iso(t), "updated_at": now_iso(t),
            "creator": {"login": "reeve-bot", "id": 1, "type": "User"}}, {
            "Location": url, "x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999",
            "x-ratelimit-reset": str(int(t) + 3600)}

    # -- Gitea --

    def gitea(self, body):
        f = self.forge
        path, query = self.split_path()
        swagger = "http://%s/api/swagger" % self.headers.get("Host", "127.0.0.1")
        m = re.match(r"^/api/v1/repos/([^/]+)/([^/]+)/statuses/([^/]+)$", path)
        not_found = ApiError(404, {"errors": [], "message": "The target couldn't be found.",
                                   "url": swagger})
        if not m or self.command != "POST":
            raise not_found
        tok = self.bearer({"token", "bearer"})
        if tok is None:
            tok = (query.get("token") or query.get("access_token") or [None])[0]
        if tok is None:
            self.auth = "missing"
            raise ApiError(401, {"message": "token is required", "url": swagger})
        if tok != f.token:
            self.auth = "bad"
            raise ApiError(401, {"message": "user does not exist [uid: 0, name: ]",
                                 "url": swagger})
        self.auth = "ok"
        owner, repo, sha = (urllib.parse.unquote(x) for x in m.groups())
        if "%s/%s" % (owner, repo) not in f.repos:
            raise not_found
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            # Gitea's binding would read an empty form and miss every field.
            raise ApiError(422, {"message": "[State]: Required (fakeforge: send "
                                            "Content-Type: application/json)", "url": swagger})
        doc = self.parse_json(body, ApiError(422, {"message": "invalid character in JSON "
                                                              "body", "url": swagger}))
        if not isinstance(doc, dict):
            raise ApiError(422, {"message": "json: cannot unmarshal into Go value of type "
                                            "structs.CreateStatusOption", "url": swagger})
        for key in doc:
            if key not in GITEA_KEYS:
                raise ApiError(422, {"message": "[%s]: unknown field (stricter than Gitea, "
                                                "which ignores it)" % key, "url": swagger})
        for key in ("state", "target_url", "description", "context"):
            if key in doc and not isinstance(doc[key], str):
                raise ApiError(422, {"message": "json: cannot unmarshal %s into Go struct "
                                                "field CreateStatusOption.%s of type string"
                                                % (type(doc[key]).__name__, key),
                                     "url": swagger})
        if doc.get("state", "") == "":
            raise ApiError(422, {"message": "[State]: Required", "url": swagger})
        if doc["state"] not in GITEA_STATES:
            raise ApiError(422, {"message": "[State]: invalid commit status state '%s'"
                                            % doc["state"], "url": swagger})
        target = doc.get("target_url", "")
        if target and not re.match(r"^https?://[^\s]+$", target):
            raise ApiError(422, {"message": "[TargetURL]: Url", "url": swagger})
        if not SHA_RE.match(sha):
            raise ApiError(422, {"message": "sha '%s' is not a valid commit id" % sha,
                                 "url": swagger})
        context = doc.get("context", "") or "default"
        sid, t = self.accept({"repo": "%s/%s" % (owner, repo), "sha": sha, "state": doc["state"],
                              "context": context, "description": doc.get("description", ""),
                              "target_url": target})
        return 201, {
            "id": sid, "status": doc["state"], "target_url": target,
            "description": doc.get("description", ""),
            "url": "http://%s/api/v1/repos/%s/%s/statuses/%s" % (
                self.headers.get("Host", "127.0.0.1"), owner, repo, sha),
            "context": context, "creator": {"id": 1, "login": "reeve-bot"},
            "created_at": now_iso(t), "updated_at": now_iso(t)}, {}

    # -- GitLab --

    def gitlab(self, body):
        f = self.forge
        path, query = self.split_path()
        # The raw path: a project path must arrive URL-encoded ("group%2Fproject");
        # a literal slash makes a different, unknown route.
        m = re.match(r"^/api/v4/projects/([^/]+)/statuses/([^/]+)$", path)
        if not m or self.command != "POST":
            raise ApiError(404, {"error": "404 Not Found"})
        tok = self.headers.get("PRIVATE-TOKEN")
        if tok is None:
            tok = self.bearer({"bearer"})
        if tok is None:
            self.auth = "missing"
            raise ApiError(401, {"message": "401 Unauthorized"})
        if tok != f.token:
            self.auth = "bad"
            raise ApiError(401, {"message": "401 Unauthorized"})
        self.auth = "ok"
        project = f.repo_by_id(urllib.parse.unquote(m.group(1)))
        sha = urllib.parse.unquote(m.group(2))
        if project is None:
            raise ApiError(404, {"message": "404 Project Not Found"})
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/json":
            doc = self.parse_json(body, ApiError(400, {"error": "The provided content-type "
                                                                "'application/json' is not "
                                                                "supported."}))
            if not isinstance(doc, dict):
                raise ApiError(400, {"error": "body must be a JSON object"})
        elif ctype == "application/x-www-form-urlencoded":
            doc = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace"),
                                                              keep_blank_values=True).items()}
        else:
            doc = {}
        for k, v in query.items():
            doc.setdefault(k, v[-1])
        for key in doc:
            if key not in GITLAB_KEYS:
                raise ApiError(400, {"error": "%s does not exist (stricter than GitLab, which "
                                              "ignores it)" % key})
        for key in ("state", "ref", "name", "context", "target_url", "description"):
            if key in doc and not isinstance(doc[key], str):
                raise ApiError(400, {"error": "%s is invalid" % key})
        if "state" not in doc:
            raise ApiError(400, {"error": "state is missing"})
        if doc["state"] not in GITLAB_STATES:
            raise ApiError(400, {"error": "state does not have a valid value"})
        name = doc.get("name") or doc.get("context") or "default"
        desc = doc.get("description") or ""
        target = doc.get("target_url") or ""
        problems = {}
        if chars(name) > 255:
            problems["name"] = ["is too long (maximum is 255 characters)"]
        if chars(desc) > 255:
            problems["description"] = ["is too long (maximum is 255 characters)"]
        if chars(target) > 255:
            problems["target_url"] = ["is too long (maximum is 255 characters)"]
        elif target and not re.match(r"^https?://[^\s]+$", target):
            problems["target_url"] = ["is blocked: Only allowed schemes are http, https"]
        if problems:
            raise ApiError(400, {"message": problems})
        if not SHA_RE.match(sha):
            raise ApiError(404, {"message": "404 Commit Not Found"})
        # A status that is still pending or running is updated in place, and
        # GitLab refuses a transition to the state it is already in.
        state = doc["state"]
        with f.lock:
            live = [s for s in f.statuses if s["repo"] == project and s["sha"] == sha
                    and s["context"] == name]
            current = live[-1]["state"] if live else None
        if current in ("pending", "running") and state == current:
            event = "enqueue" if state == "pending" else "run"
            raise ApiError(400, {"message": "Cannot transition status via :%s from :%s "
                                            "(Reason(s): Status cannot transition via \"%s\")"
                                            % (event, current, event)})
        sid, t = self.accept({"repo": project, "sha": sha, "state": state, "context": name,
                              "description": desc, "target_url": target})
        return 201, {
            "id": sid, "sha": sha, "ref": doc.get("ref") or "main", "status": state,
            "name": name, "target_url": target or None, "description": desc or None,
            "created_at": now_iso(t), "started_at": None, "finished_at": None,
            "allow_failure": False, "coverage": None,
            "author": {"id": 1, "username": "reeve-bot", "name": "reeve",
                       "state": "active"}}, {}


def main():
    p = argparse.ArgumentParser(description="strict fake of forge commit-status APIs")
    p.add_argument("--kind", required=True, choices=["github", "gitea", "gitlab"])
    p.add_argument("--token", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--repo", action="append",
                   help="known repository (owner/name; GitLab: group/project[=id]); "
                        "default acme/infra")
    p.add_argument("--fail-first", type=int, default=0,
                   help="answer the first N API requests with 503")
    p.add_argument("--rate-limit", type=float, default=0,
                   help="rate limit every API request for SECONDS from the first one")
    p.add_argument("--rate-limit-style", choices=["reset", "retry-after"],
                   help="reset: remaining 0 + reset time (GitHub 403); retry-after: 429 + "
                        "Retry-After (default: reset on GitHub, retry-after elsewhere)")
    args = p.parse_args()
    if not args.host.startswith("127."):
        p.error("--host must be a loopback address (127.0.0.0/8)")

    Handler.forge = Forge(args)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    server.server_close()


if __name__ == "__main__":
    main()
