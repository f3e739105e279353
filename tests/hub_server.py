"""A local stand-in for the Hugging Face Hub, so push/pull tests run without network.

The real ``huggingface_hub`` client talks to it over HTTP on 127.0.0.1. It serves only the
routes the client (2.4) uses to create a model or dataset repo, commit files sent inline
("regular" upload mode: base64 inside the NDJSON commit), read repo info and tree listings,
and download files; that is also all ``datasets.load_dataset("user/name")`` (5.x, through
``HfApi`` and ``HfFileSystem``) asks of a dataset repo of data files. Routes,
fields and error headers were read from the client's source (``hf_api.py``, ``_commit_api.py``,
``file_download.py``, ``hf_file_system.py``, ``utils/_http.py``): errors carry the
``X-Error-Code`` header that ``hf_raise_for_status`` turns into typed exceptions.

Not covered: LFS and xet uploads, pull requests, branches and tags other than ``main``,
repo deletion/move/settings, space repos, ``paths-info``, commit listings, dataset loading
scripts and the dataset viewer's parquet export.

Because ``huggingface_hub`` reads ``HF_ENDPOINT`` when it is imported, clients pointed at
this server run in a fresh interpreter: :func:`run_python` with :attr:`LocalHub.env`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

logger = logging.getLogger(__name__)

DEFAULT_TOKEN = "hf_local_hub_dummy_token"
DEFAULT_USER = "user"
MAX_BODY_BYTES = 512 * 1024 * 1024

# What the real Hub commits when it creates a model repo.
_INITIAL_GITATTRIBUTES = (
    b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
)
_TRUE_VALUES = {"1", "true", "True"}


def git_blob_oid(content: bytes) -> str:
    """The git blob sha1: what the Hub reports as a regular file's oid and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HubError(Exception):
    """An error answer: HTTP status plus the ``X-Error-Code`` the client dispatches on."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Commit:
    """One immutable snapshot of a repo: every path mapped to its blob oid."""

    sha: str
    files: dict[str, str]
    message: str
    date: str


REPO_TYPES = ("model", "dataset")


@dataclass
class Repo:
    """A model or dataset repo: its commits by sha and the sha ``main`` points at."""

    repo_id: str
    private: bool
    created_at: str
    repo_type: str = "model"
    commits: dict[str, Commit] = field(default_factory=dict)
    main: str = ""

    def resolve(self, revision: str) -> Commit:
        """``main`` or any commit sha of this repo; otherwise RevisionNotFound."""
        sha = self.main if revision == "main" else revision
        if sha not in self.commits:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[sha]


class RepoStore:
    """Repos and their commits; file contents live on disk, addressed by blob oid."""

    def __init__(self, root: Path):
        self.blob_dir = root / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.repos: dict[tuple[str, str], Repo] = {}  # by (repo type, repo id): a model and a dataset may share a name
        self.lock = threading.Lock()

    def blob_path(self, oid: str) -> Path:
        return self.blob_dir / oid

    def _store_blob(self, content: bytes) -> str:
        oid = git_blob_oid(content)
        path = self.blob_path(oid)
        if not path.exists():
            path.write_bytes(content)
        return oid

    def create(self, repo_id: str, private: bool, repo_type: str = "model") -> Repo:
        """Create a repo with the Hub's initial commit, or raise 409 if it exists."""
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, f"You already created this {repo_type} repo")
            repo = Repo(repo_id=repo_id, private=private, created_at=_now(), repo_type=repo_type)
            self.repos[(repo_type, repo_id)] = repo
            self._add_commit(repo, {".gitattributes": self._store_blob(_INITIAL_GITATTRIBUTES)}, "initial commit")
            return repo

    def get(self, repo_id: str, repo_type: str = "model") -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def commit(self, repo: Repo, revision: str, lines: list[dict[str, Any]]) -> Commit:
        """Apply the NDJSON commit operations on top of ``main`` and advance it."""
        if revision != "main":
            raise HubError(404, f"Invalid rev id: {revision} (the local hub only has 'main')", "RevisionNotFound")
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The commit payload must start with a header line")
        header = lines[0]["value"]
        with self.lock:
            parent = repo.resolve("main")
            if header.get("parentCommit") not in (None, parent.sha):
                raise HubError(412, f"A commit has happened since {header['parentCommit']}: main is at {parent.sha}")
            files = dict(parent.files)
            for line in lines[1:]:
                self._apply(files, line.get("key"), line.get("value") or {})
            return self._add_commit(repo, files, header.get("summary") or "")

    def _apply(self, files: dict[str, str], key: str | None, value: dict[str, Any]) -> None:
        path = _checked_path(value.get("path"))
        if key == "file":
            if value.get("encoding") != "base64":
                raise HubError(400, f"Unsupported encoding {value.get('encoding')!r} for {path}")
            files[path] = self._store_blob(base64.b64decode(value["content"], validate=True))
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            prefix = path.rstrip("/") + "/"
            for name in [name for name in files if name.startswith(prefix)]:
                del files[name]
        else:
            raise HubError(400, f"Unsupported commit operation {key!r}: the local hub accepts regular files only")

    def _add_commit(self, repo: Repo, files: dict[str, str], message: str) -> Commit:
        seed = json.dumps([repo.repo_id, repo.main, len(repo.commits), message, sorted(files.items())])
        commit = Commit(sha=hashlib.sha1(seed.encode()).hexdigest(), files=files, message=message, date=_now())
        repo.commits[commit.sha] = commit
        repo.main = commit.sha
        return commit


def _checked_path(path: Any) -> str:
    """A relative POSIX path inside the repo; anything else is a 400."""
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in PurePosixPath(path).parts:
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def _front_matter_errors(content: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a model card's YAML header, as ``/api/validate-yaml`` reports them."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.DOTALL)
    if match is None:
        return [], ["empty or missing yaml metadata in repo card"]
    try:
        metadata = yaml.safe_load(match.group(1))
    except yaml.YAMLError as err:
        return [f"Invalid YAML in the model card: {err}"], []
    if metadata is not None and not isinstance(metadata, dict):
        return ["The model card metadata must be a YAML mapping"], []
    return [], []


_REPO = r"(?P<repo>[^/]+(?:/[^/]+)?)"
_REV = r"(?P<rev>[^/]+)"
_KIND = r"(?P<kind>models|datasets)"  # the API path's plural of the repo type


class _Handler(BaseHTTPRequestHandler):
    """Routes one request to the matching ``_route_*`` method; ``server.hub`` holds the state."""

    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections end instead of pinning a thread
    server: _Server

    ROUTES: list[tuple[tuple[str, ...], re.Pattern[str], str]] = [
        (("POST",), re.compile(r"/api/repos/create"), "_route_create_repo"),
        (("POST",), re.compile(r"/api/validate-yaml"), "_route_validate_yaml"),
        (("POST",), re.compile(rf"/api/{_KIND}/{_REPO}/preupload/{_REV}"), "_route_preupload"),
        (("POST",), re.compile(rf"/api/{_KIND}/{_REPO}/commit/{_REV}"), "_route_commit"),
        (("GET",), re.compile(rf"/api/{_KIND}/{_REPO}/tree/{_REV}(?:/(?P<path>.+))?"), "_route_tree"),
        (("GET",), re.compile(rf"/api/{_KIND}/{_REPO}(?:/revision/{_REV})?"), "_route_repo_info"),
        # Model files resolve under /{repo}, dataset files under /datasets/{repo}.
        (
            ("GET", "HEAD"),
            re.compile(rf"/(?:(?P<kind>datasets)/)?{_REPO}/resolve/{_REV}/(?P<path>.+)"),
            "_route_resolve",
        ),
    ]

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("local hub: " + format, *args)

    # -- plumbing -------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        self.server.hub.requests.append((method, url.path))
        try:
            body = self._read_body()
            for methods, pattern, name in self.ROUTES:
                match = pattern.fullmatch(url.path)
                if method in methods and match:
                    params = {key: unquote(value) for key, value in match.groupdict().items() if value is not None}
                    getattr(self, name)(method, body, **params)
                    return
            raise HubError(404, f"The local hub has no route for {method} {url.path}")
        except HubError as err:
            self._send_error(method, err)
        except Exception as err:  # a bug here must reach the client as a 500, not a hung socket
            logger.exception("local hub failed on %s %s", method, self.path)
            self._send_error(method, HubError(500, f"{type(err).__name__}: {err}"))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise HubError(413, f"Request body over {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length) if length else b""

    def _send(self, method: str, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def _send_json(self, method: str, payload: Any, status: int = 200) -> None:
        self._send(method, status, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def _send_error(self, method: str, err: HubError) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": err.message, **err.headers}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._send(method, err.status, json.dumps({"error": err.message}).encode(), headers)

    def _json_body(self, body: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(body or b"{}")
        except json.JSONDecodeError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from err
        if not isinstance(payload, dict):
            raise HubError(400, "The JSON body must be an object")
        return payload

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.server.hub.token}"

    def _require_token(self) -> None:
        if not self._authorized():
            raise HubError(401, "Invalid credentials in Authorization header")

    def _readable_repo(self, repo_id: str, kind: str) -> Repo:
        """The repo, hidden like a missing one when it is private and the caller has no token."""
        repo = self.server.hub.store.get(repo_id, _repo_type(kind))
        if repo.private and not self._authorized():
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    # -- routes ---------------------------------------------------------------------------

    def _route_create_repo(self, method: str, body: bytes) -> None:
        self._require_token()
        payload = self._json_body(body)
        repo_type = payload.get("type", "model")
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"The local hub only hosts {' and '.join(REPO_TYPES)} repos, not {repo_type!r}")
        name = payload.get("name")
        if not isinstance(name, str) or not name:
            raise HubError(400, "Missing repo name")
        repo_id = f"{payload.get('organization') or self.server.hub.user}/{name}"
        url = f"{self.server.hub.endpoint}/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
        try:
            self.server.hub.store.create(repo_id, private=payload.get("visibility") == "private", repo_type=repo_type)
        except HubError as err:
            if err.status == 409:
                self._send_json(method, {"error": err.message, "url": url}, status=409)
                return
            raise
        self._send_json(method, {"url": url, "name": repo_id, "id": repo_id})

    def _route_validate_yaml(self, method: str, body: bytes) -> None:
        errors, warnings = _front_matter_errors(str(self._json_body(body).get("content", "")))
        payload = {"errors": [{"message": m} for m in errors], "warnings": [{"message": m} for m in warnings]}
        self._send_json(method, payload, status=400 if errors else 200)

    def _route_preupload(self, method: str, body: bytes, kind: str, repo: str, rev: str) -> None:
        self._require_token()
        if self.query.get("create_pr") in _TRUE_VALUES:
            raise HubError(400, "Pull requests are not supported by the local hub")
        commit = self.server.hub.store.get(repo, _repo_type(kind)).resolve(rev)
        files = self._json_body(body).get("files") or []
        answer = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": commit.files.get(f["path"])}
            for f in files
        ]
        self._send_json(method, {"files": answer, "commitOid": commit.sha})

    def _route_commit(self, method: str, body: bytes, kind: str, repo: str, rev: str) -> None:
        self._require_token()
        if self.query.get("create_pr") in _TRUE_VALUES:
            raise HubError(400, "Pull requests are not supported by the local hub")
        try:
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise HubError(400, f"Invalid NDJSON commit payload: {err}") from err
        hub = self.server.hub
        commit = hub.store.commit(hub.store.get(repo, _repo_type(kind)), rev, lines)
        url = f"{hub.endpoint}/{'datasets/' if kind == 'datasets' else ''}{repo}/commit/{commit.sha}"
        self._send_json(method, {"success": True, "commitOid": commit.sha, "commitUrl": url, "pullRequestUrl": None})

    def _route_repo_info(self, method: str, body: bytes, kind: str, repo: str, rev: str = "main") -> None:
        entry = self._readable_repo(repo, kind)
        commit = entry.resolve(rev)
        with_blobs = self.query.get("blobs") in _TRUE_VALUES
        siblings = []
        for path, oid in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sibling.update(size=self.server.hub.store.blob_path(oid).stat().st_size, blobId=oid)
            siblings.append(sibling)
        author = repo.split("/")[0] if "/" in repo else None
        self._send_json(
            method,
            {
                "_id": hashlib.sha1(repo.encode()).hexdigest()[:24],
                "id": repo,
                **({"modelId": repo} if kind == "models" else {}),
                "author": author,
                "sha": commit.sha,
                "lastModified": commit.date,
                "createdAt": entry.created_at,
                "private": entry.private,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
            },
        )

    def _route_tree(self, method: str, body: bytes, kind: str, repo: str, rev: str, path: str = "") -> None:
        commit = self._readable_repo(repo, kind).resolve(rev)
        recursive = self.query.get("recursive") in _TRUE_VALUES
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        under = {name: oid for name, oid in commit.files.items() if name.startswith(prefix)}
        if prefix and not under:
            raise HubError(404, f"{path} does not exist on {rev}", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        entries: dict[str, dict[str, Any]] = {}
        for name, oid in under.items():
            parts = name[len(prefix) :].split("/")
            depth = len(parts) if recursive else 1
            for level in range(1, min(depth, len(parts) - 1) + 1):
                folder = prefix + "/".join(parts[:level])
                entries[folder] = {"type": "directory", "oid": _folder_oid(commit, folder), "size": 0, "path": folder}
            if recursive or len(parts) == 1:
                size = self.server.hub.store.blob_path(oid).stat().st_size
                entries[name] = {"type": "file", "oid": oid, "size": size, "path": name}
        self._send_json(method, [entries[key] for key in sorted(entries)])

    def _route_resolve(self, method: str, body: bytes, repo: str, rev: str, path: str, kind: str = "models") -> None:
        commit = self._readable_repo(repo, kind).resolve(rev)
        oid = commit.files.get(path)
        if oid is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        content = self.server.hub.store.blob_path(oid).read_bytes()
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{oid}"',
            "X-Repo-Commit": commit.sha,
            "Accept-Ranges": "bytes",
        }
        status, content = _apply_range(self.headers.get("Range"), content, headers)
        self._send(method, status, content, headers)


def _repo_type(kind: str) -> str:
    """``model`` or ``dataset`` from the API path's ``models``/``datasets``."""
    return kind.removesuffix("s")


def _folder_oid(commit: Commit, folder: str) -> str:
    """A stable tree id for a folder: the sha1 of what lies under it."""
    under = sorted((name, oid) for name, oid in commit.files.items() if name.startswith(folder + "/"))
    return hashlib.sha1(json.dumps(under).encode()).hexdigest()


def _apply_range(range_header: str | None, content: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """Serve ``bytes=START-[END]`` (the client resumes interrupted downloads this way)."""
    if not range_header:
        return 200, content
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header.strip())
    if match is None or int(match.group(1)) >= max(len(content), 1):
        raise HubError(
            416, f"Unsatisfiable range {range_header!r}", headers={"Content-Range": f"bytes */{len(content)}"}
        )
    start = int(match.group(1))
    end = min(int(match.group(2)), len(content) - 1) if match.group(2) else len(content) - 1
    headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
    return 206, content[start : end + 1]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: LocalHub


class LocalHub:
    """A Hub stand-in on 127.0.0.1 with a free port; use as a context manager.

    ``requests`` records ``(method, path)`` of every request, so a test can check that a
    pull really went over HTTP to this server.
    """

    def __init__(self, root: Path, hf_home: Path, *, token: str = DEFAULT_TOKEN, user: str = DEFAULT_USER):
        self.store = RepoStore(root)
        self.hf_home = hf_home
        self.token = token
        self.user = user
        self.requests: list[tuple[str, str]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("The local hub is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for a client process of this hub, with its caches under ``hf_home``."""
        return self.env_for(self.hf_home)

    def env_for(self, hf_home: Path) -> dict[str, str]:
        """Like :attr:`env` but with caches under another ``hf_home`` (a cold-cache client)."""
        return {
            "HF_ENDPOINT": self.endpoint,
            "HF_TOKEN": self.token,
            "HF_HOME": str(hf_home),
            "HF_HUB_CACHE": str(hf_home / "hub"),
            "HF_MODULES_CACHE": str(hf_home / "modules"),
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_OFFLINE": "0",
            "TRANSFORMERS_OFFLINE": "0",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }

    def start(self) -> LocalHub:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="local-hub", daemon=True
        )
        self._thread.start()
        logger.debug("local hub serving %s from %s", self.endpoint, self.store.blob_dir.parent)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_python(
    code: str, env: Mapping[str, str], *, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with ``env`` over ``os.environ``; raise with its output if it fails.

    Client scripts drive tiny models, so torch gets one thread unless ``env`` says otherwise:
    extra threads only spin on the few shared cores.
    """
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"Subprocess exited with {result.returncode}.\n--- code ---\n{code}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result


def last_json_line(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a client script printed as its last stdout line (libraries may print before it)."""
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if not lines:
        raise AssertionError(f"The subprocess printed nothing.\n--- stderr ---\n{result.stderr}")
    return json.loads(lines[-1])
