"""A local stand-in for the Hugging Face Hub's file endpoints, for ``huggingface_hub`` pointed at it.

What the hub client uses to download one file (``hf_hub_download``), as the hub serves it:

- ``HEAD /{repo}/resolve/{revision}/{path}``: ``X-Repo-Commit`` and ``ETag`` (the git blob
  sha1, quoted). Small files answer 200 with their ``Content-Length``; large (LFS) files
  answer ``302`` to the file store (a server on another port, as the hub's is on
  another host) with ``X-Linked-Etag`` (their sha256) and ``X-Linked-Size``. Unknown
  repository, revision or file: 404 with ``X-Error-Code`` ``RepoNotFound`` /
  ``RevisionNotFound`` / ``EntryNotFound``, as the hub says it.
- ``GET`` of the same path (redirected the same way) and ``GET /lfs/{sha256}``, both honouring
  ``Range: bytes=N-`` with ``206 Partial Content``.

Faults: ``cut_after[path] = n`` sends the full ``Content-Length`` but closes the connection
after ``n`` bytes, once (a dropped connection); ``status[path] = code`` answers every request
for that file with ``code``; ``corrupt`` serves LFS bytes that do not match their sha256.

It runs in its own thread (``with FakeHub() as hub:``), so synchronous code and subprocesses
can use it; ``requests`` records method, path and ``Range`` of everything asked.

Standalone: ``python -m tests.fakes.hf_hub --port 8090 --file REPO PATH LOCAL_FILE ...``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

# The hub client asks {ENDPOINT}/api/agent-harnesses once per process for its user agent, with the
# ENDPOINT it read when first imported, which may be before a test points HF_ENDPOINT here: switch
# that look-up off so that no test process ever talks to the real hub.
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
if "huggingface_hub.constants" in sys.modules:
    sys.modules["huggingface_hub.constants"].HF_HUB_DISABLE_TELEMETRY = True

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_LFS_SUFFIXES = (".bin", ".onnx")
_RANGE = re.compile(r"^bytes=(\d+)-$")


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclass
class StoredFile:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_sha1(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()


@dataclass
class FakeHub:
    """Repositories of files served like the hub; see the module docstring."""

    repos: dict[str, dict[str, StoredFile]] = field(default_factory=dict)
    revisions: tuple[str, ...] = ("main", COMMIT)
    cut_after: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    corrupt: bool = False
    requests: list[Request] = field(default_factory=list)
    base_url: str = ""
    store_url: str = ""

    def add(self, repo: str, path: str, data: bytes | Path, *, lfs: bool | None = None) -> StoredFile:
        """Serve ``data`` (bytes or a file's content) as ``path`` of ``repo``."""
        content = data.read_bytes() if isinstance(data, Path) else data
        stored = StoredFile(content, path.endswith(_LFS_SUFFIXES) if lfs is None else lfs)
        self.repos.setdefault(repo, {})[path] = stored
        return stored

    def add_folder(self, repo: str, folder: Path, prefix: str = "") -> None:
        """Serve every file under ``folder`` as ``prefix/relative/path`` of ``repo``."""
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            self.add(repo, f"{prefix}{file.relative_to(folder).as_posix()}", file)

    def gets(self, path_suffix: str) -> list[Request]:
        """The GET requests whose path ends with ``path_suffix``."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith(path_suffix)]

    # --- serving ----------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        """Serve the hub on ``port`` (0: a free one) and its file store on a free port; the hub's URL."""
        hub = self

        class Handler(_Handler):
            fake = hub

        self._servers = [ThreadingHTTPServer(("127.0.0.1", p), Handler) for p in (port, 0)]
        self._threads = []
        for server in self._servers:
            server.daemon_threads = True
            thread = threading.Thread(target=server.serve_forever, name="fake-hf-hub", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.base_url, self.store_url = (f"http://127.0.0.1:{s.server_address[1]}" for s in self._servers)
        return self.base_url

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeHub

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        fake = self.fake
        fake.requests.append(
            Request(self.command, self.path, self.headers.get("Range"), self.headers.get("Authorization"))
        )
        path = self.path.split("?", 1)[0]
        if path.startswith("/lfs/"):
            stored = next((f for files in fake.repos.values() for f in files.values() if f.sha256 == path[5:]), None)
            if stored is None:
                return self._error(404, "EntryNotFound", "no such object")
            name = next(n for files in fake.repos.values() for n, f in files.items() if f is stored)
            return self._content(stored, name, body=body)
        match = re.match(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<file>.+)$", path)
        if match is None:
            return self._error(404, None, "not a resolve URL")
        files = fake.repos.get(match["repo"])
        if files is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if match["revision"] not in fake.revisions:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {match['revision']}")
        stored = files.get(match["file"])
        if stored is None:
            return self._error(404, "EntryNotFound", f'{match["file"]} does not exist on "{match["revision"]}"')
        if match["file"] in fake.status:
            return self._error(fake.status[match["file"]], None, "injected failure")
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{stored.git_sha1}"'}
        if stored.lfs:
            headers |= {
                "Location": f"{fake.store_url}/lfs/{stored.sha256}",
                "X-Linked-Etag": f'"{stored.sha256}"',
                "X-Linked-Size": str(len(stored.data)),
                "Content-Length": "0",
            }
            self.send_response(302)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            return
        self._content(stored, match["file"], body=body, headers=headers)

    def _content(self, stored: StoredFile, name: str, *, body: bool, headers: dict[str, str] | None = None) -> None:
        data = stored.data
        if self.fake.corrupt and stored.lfs:
            data = bytes(len(data))
        start = 0
        match = _RANGE.match(self.headers.get("Range") or "")
        if match is not None:
            start = min(int(match[1]), len(data))
        self.send_response(206 if match else 200)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Disposition", f'attachment; filename="{name.rsplit("/", 1)[-1]}"')
        self.send_header("Content-Length", str(len(data) - start))
        if match:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if not body:
            return
        cut = self.fake.cut_after.pop(name, None)
        if cut is not None and cut < len(data) - start:
            self.wfile.write(data[start : start + cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-body
            self.close_connection = True
            return
        view = memoryview(data)[start:]
        for offset in range(0, len(view), 1 << 20):
            self.wfile.write(view[offset : offset + (1 << 20)])

    def _error(self, code: int, error_code: str | None, message: str) -> None:
        payload = json.dumps({"error": message}).encode()
        self.send_response(code)
        if error_code:
            self.send_header("X-Error-Code", error_code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--file", nargs=3, action="append", default=[], metavar=("REPO", "PATH", "LOCAL_FILE"))
    args = parser.parse_args()
    hub = FakeHub()
    for repo, path, local in args.file:
        hub.add(repo, path, Path(local))
    hub.start(args.port)
    print(f"fake hub on {hub.base_url} (HF_ENDPOINT={hub.base_url}); file store on {hub.store_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()
