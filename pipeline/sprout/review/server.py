"""The inspector's local server: the page (static files shipped with sprout) and a small JSON API over the run's
index, on the loopback interface only. Nothing is fetched from anywhere; the page has no external resources.

The page asks for a page of rows at a time (100 of 100,000), so a large run stays responsive: facets, counts and the
full-text search are SQL over indexed columns and FTS5, never a scan in the browser.

API: GET /api/summary, /api/rows?status=..&rule=..&q=..&mark=..&audit=1&offset=..&limit=.., /api/row/ROWID,
/api/find?id=PREFIX, /api/audit; POST /api/mark {"id", "mark": "good"|"bad"|null, "note"}.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from sprout.review import audit, queries
from sprout.review.marks import MARKS, STATUSES, append_mark, read_marks
from sprout.review.run_index import FACETS

STATIC = Path(__file__).parent / "static"
PAGE_FILES = ("index.html", "app.js", "app.css")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}


class Inspector:
    """The state one server holds: the index connection (one, behind a lock), the marks and the audit sample."""

    def __init__(self, run_dir: Path, conn, marks_path: Path, sample: dict | None = None):
        self.run_dir, self.conn, self.marks_path, self.sample = Path(run_dir), conn, Path(marks_path), sample
        self.lock = threading.Lock()
        self.marks = read_marks(self.marks_path)
        self.marks_table = queries.Marks(conn, self.marks)
        self.sample_rowids = audit.sample_rowids(conn, sample) if sample else None

    def summary(self) -> dict:
        with self.lock:
            found = queries.run_summary(self.conn)
        return {**found, "facets": list(FACETS), "marks_file": str(self.marks_path),
                "audit": self.sample is not None, "marks": len(self.marks)}

    def rows(self, params: dict[str, list[str]]) -> dict:
        filters = {f: params[f] for f in FACETS if f in params}
        rowids = self.sample_rowids if params.get("audit", ["0"])[0] == "1" and self.sample else None
        with self.lock:
            return queries.list_rows(self.conn, filters, params.get("q", [""])[0], params.get("mark", [None])[0],
                                     _int(params, "offset", 0), _int(params, "limit", 100), rowids)

    def row(self, rowid: int) -> dict | None:
        with self.lock:
            return queries.row_detail(self.conn, rowid)

    def find(self, prefix: str) -> list[dict]:
        with self.lock:
            return queries.find_rows(self.conn, prefix)

    def mark(self, body: dict) -> dict:
        record_id, status, mark = body.get("id"), body.get("status"), body.get("mark")
        note = str(body.get("note") or "")[:2000]
        if not isinstance(record_id, str) or not record_id or status not in STATUSES or \
                (mark is not None and mark not in MARKS):
            raise ValueError("a mark needs an id, a status (accepted or rejected) and mark good, bad or null")
        with self.lock:
            saved = append_mark(self.marks_path, record_id, status, mark, note)  # on disk before the page hears
            if mark is None:
                self.marks.pop((record_id, status), None)
            else:
                self.marks[(record_id, status)] = {"mark": mark, "note": note, "at": saved["at"]}
            self.marks_table.set(record_id, status, mark, note)
        return saved

    def audit_report(self) -> dict | None:
        with self.lock:
            return audit.audit_report(self.sample, self.marks) if self.sample else None


def _int(params: dict, key: str, default: int) -> int:
    try:
        return max(0, min(int(params.get(key, [default])[0]), 2**62))  # SQLite integers are 64-bit
    except ValueError:
        return default


class Handler(BaseHTTPRequestHandler):
    inspector: Inspector  # set on the subclass `serve` makes

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name; quiet: the page polls nothing
        pass

    def _local(self) -> bool:
        """Only this machine's own page: a request naming another host (a web page that rebound its name to
        127.0.0.1) or, for a write, coming from another origin is refused."""
        port = self.server.server_address[1]
        allowed = {f"127.0.0.1:{port}", f"localhost:{port}"}
        origin = self.headers.get("Origin")
        return self.headers.get("Host") in allowed and (origin is None or origin.removeprefix("http://") in allowed)

    def do_GET(self):  # noqa: N802 - the stdlib's name
        if not self._local():
            return self._json({"error": "forbidden"}, 403)
        url = urlparse(self.path)
        params = parse_qs(url.query)
        path = url.path
        if path in ("/", "/index.html"):
            return self._file(STATIC / "index.html")
        if path.startswith("/static/"):
            name = path.removeprefix("/static/")
            if name not in PAGE_FILES:
                return self._json({"error": "not found"}, 404)
            return self._file(STATIC / name)
        routes = {"/api/summary": lambda: self.inspector.summary(), "/api/rows": lambda: self.inspector.rows(params),
                  "/api/find": lambda: self.inspector.find(params.get("id", [""])[0]),
                  "/api/audit": lambda: self.inspector.audit_report()}
        if path in routes:
            return self._json(routes[path]())
        if path.startswith("/api/row/") and path.removeprefix("/api/row/").isdigit() and len(path) < 28:
            found = self.inspector.row(int(path.removeprefix("/api/row/")))
            return self._json(found, 200 if found else 404)
        return self._json({"error": "not found"}, 404)

    def do_POST(self):  # noqa: N802
        if not self._local() or not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return self._json({"error": "forbidden"}, 403)  # a form post from elsewhere cannot send JSON unasked
        if urlparse(self.path).path != "/api/mark":
            return self._json({"error": "not found"}, 404)
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > 65536:
                raise ValueError("a mark is small; this request is not one")
            body = json.loads(self.rfile.read(length) or b"{}")
            return self._json(self.inspector.mark(body))
        except (ValueError, AttributeError, OverflowError) as exc:
            return self._json({"error": str(exc)}, 400)

    def _file(self, path: Path):
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", TYPES.get(path.suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _json(self, payload, status: int = 200):
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)


def make_server(inspector: Inspector, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    handler = type("InspectorHandler", (Handler,), {"inspector": inspector})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
