"""A small Hugging Face Hub on 127.0.0.1 for the tests: the part of the Hub HTTP API that duge-lora's calls use,
so the real huggingface_hub client (HF_ENDPOINT pointed here) is exercised end to end without a network.

Endpoints (model repos only): POST /api/repos/create; GET /api/models/{id}[/revision/{rev}] (model_info);
GET /api/models/{id}/tree/{rev} (the file list snapshot_download reads);
POST /api/models/{id}/preupload/{rev} (every file "regular": sent inline, no LFS or Xet); POST
/api/models/{id}/commit/{rev} (NDJSON header + base64 files); HEAD/GET /{id}/resolve/{rev}/{path}; GET /api/models
(list_models with filter/search); GET /api/whoami-v2; POST /api/validate-yaml. Writes need `Authorization: Bearer <token>`.
Not spoken: LFS and Xet transfers, pull requests, deletions, branches other than the one committed to.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse


class Hub:
    """Repos in memory: id -> {"private", "commits": [(oid, {path: bytes})], "branches": {name: oid}}."""

    def __init__(self, token: str = "hf_test_token", user: str = "tester"):
        self.token, self.user, self.repos = token, user, {}
        self.fail_next: str | None = None          # "commit" or "resolve": such requests fail (a network cut) ...
        self.failures = 0                          # ... this many times (the client retries a 500 a few times)

    def files(self, repo: str, rev: str) -> tuple[str, dict] | None:
        r = self.repos.get(repo)
        if r is None:
            return None
        oid = r["branches"].get(rev, rev)
        for commit_oid, files in r["commits"]:
            if commit_oid == oid:
                return commit_oid, files
        return None


def card_tags(files: dict) -> list[str]:
    """The tags in a repo's model card (its YAML front matter), as the Hub indexes them."""
    card = files.get("README.md", b"").decode(errors="replace")
    return re.findall(r"^- (\S+)$", card.split("---")[1], re.M) if card.startswith("---") else []


class Handler(BaseHTTPRequestHandler):
    hub: Hub

    def log_message(self, *args):          # quiet
        pass

    # ------------------------------------------------------------------ helpers
    def reply(self, code: int, body=None, headers: dict | None = None, head: bool = False) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json" if not isinstance(body, bytes) else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def error(self, code: int, message: str, kind: str | None = None) -> None:
        self.reply(code, {"error": message}, {"X-Error-Message": message, **({"X-Error-Code": kind} if kind else {})})

    def authorised(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.hub.token}"

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def visible(self, repo: str) -> bool:
        r = self.hub.repos.get(repo)
        return r is not None and (not r["private"] or self.authorised())

    # ------------------------------------------------------------------ routes
    def do_GET(self, head: bool = False):  # noqa: N802
        url = urlparse(self.path)
        path = unquote(url.path)
        if path == "/api/whoami-v2":
            return self.reply(200, {"name": self.hub.user, "type": "user"}) if self.authorised() else self.error(401, "Invalid token")
        if path == "/api/models":
            return self.list_models(parse_qs(url.query))
        m = re.match(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)/?(.*)$", path)
        if m:
            return self.tree(m.group(1), m.group(2), m.group(3))
        m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/(.+))?$", path)
        if m:
            return self.model_info(m.group(1), m.group(2) or "main")
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if m:
            return self.resolve(m.group(1), m.group(2), m.group(3), head)
        self.error(404, f"no route {path}")

    def do_HEAD(self):  # noqa: N802
        self.do_GET(head=True)

    def do_POST(self):  # noqa: N802
        path = unquote(urlparse(self.path).path)
        if path == "/api/validate-yaml":          # the client checks a model card's YAML before committing it
            self.body()
            return self.reply(200, {"errors": [], "warnings": []})
        if not self.authorised():
            self.body()
            return self.error(401, "Invalid credentials in Authorization header")
        if path == "/api/repos/create":
            return self.create(json.loads(self.body()))
        m = re.match(r"^/api/models/([^/]+/[^/]+)/preupload/(.+)$", path)
        if m:
            payload = json.loads(self.body())
            return self.reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                              for f in payload["files"]]})
        m = re.match(r"^/api/models/([^/]+/[^/]+)/commit/(.+)$", path)
        if m:
            return self.commit(m.group(1), m.group(2), self.body())
        self.error(404, f"no route {path}")

    def create(self, payload: dict) -> None:
        repo = f"{payload.get('organization') or self.hub.user}/{payload['name']}"
        if repo in self.hub.repos:
            message = "You already created this model repo"
            return self.reply(409, {"error": message, "url": f"http://{self.headers['Host']}/{repo}"},
                              {"X-Error-Message": message})
        empty = hashlib.sha1(repo.encode()).hexdigest()
        self.hub.repos[repo] = {"private": bool(payload.get("private")), "commits": [(empty, {})],
                                "branches": {"main": empty}}
        self.reply(200, {"url": f"http://{self.headers['Host']}/{repo}", "name": repo})

    def commit(self, repo: str, rev: str, data: bytes) -> None:
        if self.hub.fail_next == "commit" and self.hub.failures > 0:
            self.hub.failures -= 1
            return self.error(500, "Internal Error (the test server failed this commit on purpose)")
        r = self.hub.repos.get(repo)
        if r is None:
            return self.error(404, "Repository not found", "RepoNotFound")
        files, summary = dict(self.hub.files(repo, r["branches"].get(rev, r["branches"]["main"]))[1]), ""
        for line in data.splitlines():
            item = json.loads(line)
            if item["key"] == "header":
                summary = item["value"].get("summary", "")
            elif item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
        oid = hashlib.sha1(json.dumps([summary, sorted((p, hashlib.sha256(b).hexdigest()) for p, b in files.items()),
                                       len(r["commits"])]).encode()).hexdigest()
        r["commits"].append((oid, files))
        r["branches"][rev] = oid
        self.reply(200, {"commitUrl": f"http://{self.headers['Host']}/{repo}/commit/{oid}", "commitOid": oid,
                         "success": True})

    def lookup(self, repo: str, rev: str) -> tuple[str, dict] | None:
        """(commit, files) of a visible repo at `rev`, or None after answering 404."""
        found = self.hub.files(repo, rev) if self.visible(repo) else None
        if not self.visible(repo):
            self.error(404, "Repository not found", "RepoNotFound")
        elif found is None:
            self.error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return found

    def model_info(self, repo: str, rev: str) -> None:
        found = self.lookup(repo, rev)
        if found is None:
            return
        oid, files = found
        self.reply(200, {"id": repo, "modelId": repo, "sha": oid, "private": self.hub.repos[repo]["private"],
                         "tags": card_tags(files), "siblings": [{"rfilename": p} for p in sorted(files)]})

    def tree(self, repo: str, rev: str, under: str) -> None:
        found = self.lookup(repo, rev)
        if found is None:
            return
        self.reply(200, [{"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                         for p, b in sorted(found[1].items()) if p.startswith(under)])

    def resolve(self, repo: str, rev: str, file: str, head: bool) -> None:
        if self.hub.fail_next == "resolve" and not head and self.hub.failures > 0:
            self.hub.failures -= 1
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"partial")            # a connection cut in the middle of a download
            return
        found = self.lookup(repo, rev)
        if found is None:
            return
        oid, files = found
        if file not in files:
            return self.error(404, "Entry not found", "EntryNotFound")
        data = files[file]
        etag = '"' + hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() + '"'
        self.reply(200, data, {"X-Repo-Commit": oid, "ETag": etag}, head)

    def list_models(self, query: dict) -> None:
        wanted = set(query.get("filter", []))
        search = (query.get("search") or [""])[0]
        out = []
        for repo in sorted(self.hub.repos):
            if not self.visible(repo) or search not in repo:
                continue
            oid, files = self.hub.files(repo, "main")
            tags = card_tags(files)
            if wanted <= set(tags):
                out.append({"id": repo, "modelId": repo, "sha": oid, "tags": tags, "private": self.hub.repos[repo]["private"]})
        self.reply(200, out)


def serve(hub: Hub | None = None) -> tuple[ThreadingHTTPServer, Hub, str]:
    """Start the server on a free port in a daemon thread; returns (server, hub, endpoint)."""
    hub = hub or Hub()
    handler = type("BoundHandler", (Handler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, hub, f"http://127.0.0.1:{server.server_address[1]}"
