"""A fake Hugging Face Hub on 127.0.0.1: model repos with branches and commits, for the real `huggingface_hub`.

The Hub cannot be reached from this machine, so the prefetch tests point `HF_ENDPOINT` (or the client's
`endpoint=`) here. It answers the requests `huggingface_hub` 2.x sends to resolve a revision and download a
snapshot, in the Hub's own shapes:

- `GET /api/models/{repo}/revision/{rev}`: the repo's info at a revision (`sha` is the commit), siblings with
  sizes, blob ids and LFS data when `blobs=true`;
- `GET /api/models/{repo}/tree/{rev}[/{path}]`: the file tree (`recursive=true`), files with `oid`, `size` and
  `lfs` (large files) as the Hub lists them;
- `HEAD` and `GET /{repo}/resolve/{rev}/{path}`: a file's metadata (`X-Repo-Commit`, `ETag`: the git blob id, or
  the sha256 of an LFS file, also as `X-Linked-Etag` / `X-Linked-Size`) and its bytes (Range requests too);
- errors as the Hub sends them: 401 `X-Error-Code: RepoNotFound` for a repo it does not know (the Hub does not
  say whether a private repo exists), 401 `GatedRepo` for a gated repo without an accepted token, 404
  `RevisionNotFound` for an unknown branch or commit, 404 `EntryNotFound` for a missing file.

A commit is the sha1 of its file list and contents, so the same files give the same commit; `push` moves a
branch to a new commit (the way `main` moves on the real Hub). Every request is logged in `requests`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

LFS_MIN = 10 * 1024 * 1024  # the Hub stores files above 10 MB in LFS (Xet); smaller ones are plain git blobs
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's own object id


@dataclass
class File:
    path: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def lfs(self) -> bool:
        return self.size >= LFS_MIN

    @property
    def etag(self) -> str:
        return hashlib.sha256(self.data).hexdigest() if self.lfs else git_blob_id(self.data)

    def tree_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": git_blob_id(self.data), "size": self.size, "path": self.path}
        if self.lfs:
            entry["lfs"] = {"oid": hashlib.sha256(self.data).hexdigest(), "size": self.size, "pointerSize": 134}
        return entry


@dataclass
class Repo:
    repo_id: str
    gated: bool = False
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, dict[str, File]] = field(default_factory=dict)


class FakeHub:
    """`with FakeHub() as hub:`; `hub.url` is the endpoint; `hub.push(repo, folder_or_files)` makes a commit."""

    def __init__(self, tokens: tuple[str, ...] = ()) -> None:
        self.repos: dict[str, Repo] = {}
        self.tokens = set(tokens)  # tokens that may read gated repos
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- content -----------------------------------------------------------------------------------------
    def push(self, repo_id: str, files: Path | dict[str, bytes], branch: str = "main", gated: bool = False) -> str:
        """Commit `files` (a folder's files, or name -> bytes) to `branch`; returns the commit's sha."""
        if isinstance(files, Path):
            files = {p.relative_to(files).as_posix(): p.read_bytes() for p in sorted(files.rglob("*")) if p.is_file()}
        tree = {name: File(name, data) for name, data in sorted(files.items())}
        digest = hashlib.sha1(repo_id.encode())  # noqa: S324 - a commit id, as git's are
        for f in tree.values():
            digest.update(f"{f.path}\0{git_blob_id(f.data)}\n".encode())
        with self.lock:
            repo = self.repos.setdefault(repo_id, Repo(repo_id))
            repo.gated = repo.gated or gated
            sha = digest.hexdigest()
            repo.commits[sha] = tree
            repo.branches[branch] = sha
            return sha

    def count(self, method: str, part: str) -> int:
        """Requests with this method whose path contains `part` (e.g. '/resolve/')."""
        return sum(m == method and part in p for m, p in self.requests)

    # -- HTTP ------------------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None,
                      content_type: str = "application/json", head: bool = False, length: int | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _error(self, code: int, error_code: str, message: str, head: bool = False) -> None:
                body = json.dumps({"error": message}).encode()
                self._send(code, b"" if head else body, {"X-Error-Code": error_code, "X-Error-Message": message},
                           head=head, length=len(body) if not head else 0)

            def _repo(self, repo_id: str, head: bool = False) -> Repo | None:
                repo = hub.repos.get(repo_id)
                if repo is None:
                    self._error(401, "RepoNotFound", f"Repository not found: {repo_id}", head)
                    return None
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
                if repo.gated and token not in hub.tokens:
                    self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted. You must have access "
                                                  "to it and be authenticated to access it. Please log in.", head)
                    return None
                return repo

            def _commit(self, repo: Repo, rev: str, head: bool = False) -> str | None:
                sha = rev if COMMIT.match(rev) and rev in repo.commits else repo.branches.get(rev)
                if sha is None:
                    self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
                return sha

            def _route(self, head: bool) -> None:
                url = urlparse(self.path)
                path = unquote(url.path)
                query = parse_qs(url.query)
                with hub.lock:
                    hub.requests.append((self.command, self.path))
                m = re.match(r"^/api/models/([^/]+/[^/]+)/revision/([^/]+)$", path)
                if m:
                    self._info(m.group(1), m.group(2), query.get("blobs", ["false"])[0].lower() == "true")
                    return
                m = re.match(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?$", path)
                if m:
                    self._tree(m.group(1), m.group(2), m.group(3) or "", query)
                    return
                m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
                if m:
                    self._file(m.group(1), m.group(2), m.group(3), head)
                    return
                self._error(404, "EntryNotFound", f"no route for {path}", head)

            def _info(self, repo_id: str, rev: str, blobs: bool) -> None:
                repo = self._repo(repo_id)
                sha = self._commit(repo, rev) if repo else None
                if repo is None or sha is None:
                    return
                siblings = []
                for f in repo.commits[sha].values():
                    s: dict[str, Any] = {"rfilename": f.path}
                    if blobs:
                        s |= {"size": f.size, "blobId": git_blob_id(f.data)}
                        if f.lfs:
                            s["lfs"] = {"sha256": hashlib.sha256(f.data).hexdigest(), "size": f.size,
                                        "pointerSize": 134}
                    siblings.append(s)
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
                body = {"_id": hashlib.md5(repo_id.encode()).hexdigest()[:24], "id": repo_id,  # noqa: S324
                        "modelId": repo_id, "author": repo_id.split("/")[0], "sha": sha, "private": False,
                        "gated": "manual" if repo.gated else False, "disabled": False, "downloads": 0, "likes": 0,
                        "tags": [], "library_name": "transformers", "createdAt": stamp, "lastModified": stamp,
                        "siblings": siblings}
                self._send(200, json.dumps(body).encode())

            def _tree(self, repo_id: str, rev: str, sub: str, query: dict[str, list[str]]) -> None:
                repo = self._repo(repo_id)
                sha = self._commit(repo, rev) if repo else None
                if repo is None or sha is None:
                    return
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                prefix = sub.strip("/") + "/" if sub.strip("/") else ""
                entries: list[dict[str, Any]] = []
                folders: set[str] = set()
                for f in repo.commits[sha].values():
                    if not f.path.startswith(prefix):
                        continue
                    rest = f.path[len(prefix):]
                    if "/" in rest:
                        parts = rest.split("/")
                        for i in range(1, len(parts) if recursive else 2):
                            folders.add(prefix + "/".join(parts[:i]))
                        if not recursive:
                            continue
                    entries.append(f.tree_entry())
                entries += [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(),  # noqa: S324
                             "size": 0, "path": d} for d in sorted(folders)]
                self._send(200, json.dumps(entries).encode())

            def _file(self, repo_id: str, rev: str, name: str, head: bool) -> None:
                repo = self._repo(repo_id, head)
                sha = self._commit(repo, rev, head) if repo else None
                if repo is None or sha is None:
                    return
                f = repo.commits[sha].get(name)
                if f is None:
                    self._error(404, "EntryNotFound", f"{name} does not exist on {rev}", head)
                    return
                headers = {"X-Repo-Commit": sha, "ETag": f'"{f.etag}"', "Accept-Ranges": "bytes"}
                if f.lfs:
                    headers |= {"X-Linked-Etag": f'"{f.etag}"', "X-Linked-Size": str(f.size)}
                data, code = f.data, 200
                rng = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range") or "")
                if rng and not head:
                    start = int(rng.group(1))
                    end = int(rng.group(2)) if rng.group(2) else f.size - 1
                    data, code = f.data[start:end + 1], 206
                    headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
                self._send(code, data, headers, content_type="application/octet-stream", head=head,
                           length=len(data))

            def do_GET(self) -> None:  # noqa: N802
                self._route(head=False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._route(head=True)

        return Handler
