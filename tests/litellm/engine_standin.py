#!/usr/bin/env python3
"""A stand-in for Prisma's query engine, for the real-LiteLLM e2e suite.

prisma-client-py starts it (``PRISMA_QUERY_ENGINE_BINARY``) as
``<path> -p <port> --enable-metrics --enable-raw-queries`` with the proxy's
stdout/stderr, polls ``GET /status`` every 0.1 s for 10 s, then sends queries
as ``POST /`` (GraphQL-like text built by ``prisma/_builder.py``).

What it does (wire format read from prisma-client-py 0.11.0 and 0.15.0):

* ``--version`` prints ``query-engine <hash>`` (the hash prisma-client-py
  expects, ``SENTINEL_ENGINE_HASH``).
* Binds ``127.0.0.1:<port>`` only once the bind time has passed (see
  ``_bind_at``) and it has connected to PostgreSQL — the real engine also
  binds only after connecting.
* ``SENTINEL_ENGINE_MODE=unreachable``: after ``SENTINEL_ENGINE_CONNECT_TIMEOUT``
  seconds (default 5, the Postgres connector's default) prints the engine's
  one-line JSON start-up error (P1001) to stderr and exits 1, as the real
  engine does when PostgreSQL cannot be reached. ``never``: never binds and
  stays alive (until killed).
* ``GET /status`` -> ``{"status":"ok"}``; ``GET /metrics`` -> a minimal body.
* ``queryRaw`` / ``executeRaw``: the SQL (``$1``… placeholders) and its
  parameters are run on the real PostgreSQL (pg8000, unnamed statement).
* ``createMany<Model>``: turned into one ``INSERT … ON CONFLICT DO NOTHING``
  on the real PostgreSQL (1.83.x writes its spend logs this way).
* Every other operation answers a plausible empty success (``null`` for
  find-one, ``[]`` for find-many/group-by, zero counts, the given ``data``
  echoed for create/update/upsert-one) without touching the database.
* Every write (raw SQL, createMany, and the not-forwarded *One/*Many writes)
  and every life-cycle event (spawn, bind, exit) is appended as one JSON line
  with a unix timestamp to ``SENTINEL_ENGINE_EVENTS``.

Known differences from the real engine are listed in tests/litellm/README.md.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_HASH = "393aa359c9ad4a4bb28630fb5613f9c281cde053"
SPAWNED = time.time()
EVENTS = os.environ.get("SENTINEL_ENGINE_EVENTS")
_events_lock = threading.Lock()


def _host_pid() -> int:
    """This process's pid as the harness sees it. Inside the pod's PID
    namespace (harness ``pod.py``) ``os.getpid()`` is the namespace's pid,
    but ``/proc`` here is still the host's procfs (the namespace's own is
    mounted elsewhere, for the sidecar), so ``/proc/self`` names the host pid."""
    try:
        return int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        return os.getpid()


HOST_PID = _host_pid()


def _host_ppid() -> int | None:
    """The parent's host pid (the worker that spawned this engine), from
    ``/proc/self/stat`` (field 4, after the parenthesised ``comm``)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            return int(f.read().rsplit(b") ", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def record(kind: str, **fields) -> None:
    """One JSON line per event; O_APPEND keeps lines of concurrent engines whole."""
    if not EVENTS:
        return
    line = json.dumps({"t": time.time(), "event": kind, "pid": HOST_PID, **fields},
                      default=str)
    with _events_lock:
        fd = os.open(EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


# --------------------------------------------------------------------------
# The request language: prisma-client-py's builder output.
#   mutation {\n  result: createManyX\n  (\n    data: [ {...}, ... ]\n  )\n  {\n count\n }\n}
# Scalars are JSON (``dumps``), objects ``{ key: value \n ... }``, lists
# ``[ v,\n v ]``, raw-query arguments JSON strings holding JSON.

_TOKEN = re.compile(r'\s*(?:(?P<p>[{}\[\]():,])|(?P<s>")|(?P<w>[A-Za-z_][A-Za-z0-9_]*)|(?P<n>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?))')


class ParseError(ValueError):
    pass


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self._dec = json.JSONDecoder()

    def peek(self):
        m = _TOKEN.match(self.text, self.pos)
        if not m:
            return None, None
        if m.group("p"):
            return "p", m.group("p")
        if m.group("s"):
            return "s", None
        if m.group("w"):
            return "w", m.group("w")
        return "n", m.group("n")

    def next(self):
        m = _TOKEN.match(self.text, self.pos)
        if not m:
            raise ParseError(f"unexpected input at {self.pos}")
        if m.group("s"):
            start = m.start("s")
            val, end = self._dec.raw_decode(self.text, start)
            self.pos = end
            return "s", val
        self.pos = m.end()
        for k in ("p", "w", "n"):
            if m.group(k):
                return k, m.group(k)
        raise ParseError("bad token")

    def expect(self, p: str) -> None:
        k, v = self.next()
        if k != "p" or v != p:
            raise ParseError(f"expected {p!r}, got {v!r}")

    def value(self):
        k, v = self.next()
        if k == "s":
            return v
        if k == "n":
            return json.loads(v)
        if k == "w":
            return {"true": True, "false": False, "null": None}.get(v, v)
        if v == "{":
            return self.obj_body("}")
        if v == "[":
            out = []
            while True:
                pk, pv = self.peek()
                if pk == "p" and pv == "]":
                    self.next()
                    return out
                if pk == "p" and pv == ",":
                    self.next()
                    continue
                out.append(self.value())
        raise ParseError(f"unexpected {v!r}")

    def obj_body(self, close: str) -> dict:
        out = {}
        while True:
            pk, pv = self.peek()
            if pk == "p" and pv == close:
                self.next()
                return out
            if pk == "p" and pv == ",":
                self.next()
                continue
            k, key = self.next()
            if k != "w":
                raise ParseError(f"expected a key, got {key!r}")
            self.expect(":")
            out[key] = self.value()

    def selection(self) -> list:
        """Top-level field names of a ``{ a b c { … } }`` selection."""
        pk, pv = self.peek()
        if not (pk == "p" and pv == "{"):
            return []
        self.next()
        fields, depth = [], 1
        while depth:
            k, v = self.next()
            if k == "p" and v in "{(":
                depth += 1
            elif k == "p" and v in "})":
                depth -= 1
            elif k == "w" and depth == 1:
                fields.append(v)
        return fields


def parse_operation(query: str):
    """(method, arguments, selection) of one builder query."""
    m = re.search(r"result:\s*([A-Za-z_][A-Za-z0-9_]*)", query)
    if not m:
        raise ParseError("no `result:` in query")
    method = m.group(1)
    p = _Parser(query)
    p.pos = m.end()
    args = {}
    pk, pv = p.peek()
    if pk == "p" and pv == "(":
        p.next()
        args = p.obj_body(")")
    sel = p.selection()
    return method, args, sel


# --------------------------------------------------------------------------
# PostgreSQL side (pg8000, one connection, serialised).

def _datasource_url() -> str:
    over = os.environ.get("OVERWRITE_DATASOURCES")
    if over:
        try:
            ds = json.loads(over)
            if ds and ds[0].get("url"):
                return ds[0]["url"]
        except (ValueError, AttributeError, IndexError, KeyError):
            pass
    return os.environ.get("DATABASE_URL", "")


class Db:
    def __init__(self, url: str) -> None:
        import pg8000.native  # the release venv carries it (HARNESS_REQS)

        u = urllib.parse.urlsplit(url)
        q = urllib.parse.parse_qs(u.query)
        self.schema = (q.get("schema") or ["public"])[0]
        self.con = pg8000.native.Connection(
            user=urllib.parse.unquote(u.username or ""),
            password=urllib.parse.unquote(u.password or "") or None,
            host=u.hostname or "127.0.0.1",
            port=u.port or 5432,
            database=(u.path or "/postgres").lstrip("/") or "postgres",
            timeout=30,
        )
        self.lock = threading.Lock()

    def run(self, sql: str, params: list):
        with self.lock:
            ctx = self.con.execute_unnamed(sql, vals=list(params))
            cols = [c["name"] for c in (ctx.columns or [])]
            oids = [c["type_oid"] for c in (ctx.columns or [])]
            return cols, oids, (ctx.rows or []), ctx.row_count


_OID_TYPES = {
    16: "bool", 20: "bigint", 21: "int", 23: "int", 700: "float", 701: "double",
    1700: "decimal", 25: "string", 1043: "string", 1042: "char", 19: "string",
    114: "json", 3802: "json", 2950: "uuid", 1114: "datetime", 1184: "datetime",
    1082: "date", 1083: "time", 17: "bytes",
}
_ARRAY_OIDS = {1000: "bool", 1016: "bigint", 1007: "int", 1009: "string", 1015: "string",
               199: "json", 3807: "json", 2951: "uuid", 1115: "datetime", 1185: "datetime",
               1231: "decimal", 1022: "double"}


def _ptype(oid: int) -> str:
    if oid in _OID_TYPES:
        return _OID_TYPES[oid]
    if oid in _ARRAY_OIDS:
        return _ARRAY_OIDS[oid] + "-array"
    return "unknown"


def _jsonable(v):
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=_dt.timezone.utc)
        return v.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(v, (_dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        import base64
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return v
    return v


def raw_result(cols, oids, rows, fmt: str):
    """queryRaw result: engines 5.17+ answer columns/types/rows (what
    prisma-client-py 0.15 reads); 5.4 answers a list of
    ``{col: {prisma__type, prisma__value}}`` (what 0.11 reads)."""
    types = [_ptype(o) for o in oids]
    vals = [[_jsonable(v) for v in r] for r in rows]
    if fmt == "typed-objects":
        return [
            {c: {"prisma__type": t if v is not None else "null", "prisma__value": v}
             for c, t, v in zip(cols, types, r)}
            for r in vals
        ]
    return {"columns": cols, "types": types, "rows": vals}


# --------------------------------------------------------------------------

class Engine:
    def __init__(self, db: Db, raw_format: str) -> None:
        self.db = db
        self.raw_format = raw_format

    def execute(self, query: str):
        method, args, sel = parse_operation(query)
        if method in ("queryRaw", "executeRaw"):
            sql = args.get("query", "")
            params = json.loads(args.get("parameters") or "[]")
            t0 = time.time()
            try:
                cols, oids, rows, count = self.db.run(sql, params)
            except Exception as e:  # the DB's error goes back as P2010, like the engine
                record("write" if _is_write(sql) else "read", method=method, sql=sql,
                       params=len(params), ok=False, error=type(e).__name__, detail=str(e)[:300],
                       sent_at=t0)
                return _error("P2010", f"Raw query failed. Code: `{getattr(e, 'args', [''])[0]}`. Message: `{e}`")
            if _is_write(sql):
                record("write", method=method, sql=sql, params=len(params), ok=True,
                       rows=count, sent_at=t0)
            if method == "executeRaw":
                return {"data": {"result": max(count, 0)}}
            return {"data": {"result": raw_result(cols, oids, rows, self.raw_format)}}
        if method.startswith("createMany"):
            model = method[len("createMany"):]
            data = args.get("data") or []
            if isinstance(data, dict):
                data = [data]
            n = self._insert_many(model, data, bool(args.get("skipDuplicates")))
            return {"data": {"result": {"count": n}}}
        for prefix in ("createOne", "updateOne", "upsertOne", "deleteOne",
                       "updateMany", "deleteMany"):
            if method.startswith(prefix):
                model = method[len(prefix):]
                data = args.get("data") or args.get("create") or {}
                record("write", method=method, model=model, forwarded=False, ok=True,
                       fields=sorted(data) if isinstance(data, dict) else [])
                if prefix.endswith("Many"):
                    return {"data": {"result": {"count": 0}}}
                if prefix == "deleteOne":
                    return _error("P2025", "An operation failed because it depends on one or more records that were required but not found. Record to delete does not exist.")
                row = {f: None for f in sel}
                if isinstance(data, dict):
                    row.update({k: v for k, v in data.items() if not isinstance(v, (dict, list))})
                return {"data": {"result": row}}
        if method.startswith("findMany") or method.startswith("groupBy"):
            return {"data": {"result": []}}
        if method.endswith("OrThrow"):
            return _error("P2025", "An operation failed because it depends on one or more records that were required but not found. Expected a record, found none.")
        if method.startswith("findUnique") or method.startswith("findFirst"):
            return {"data": {"result": None}}
        if method.startswith("aggregate"):
            res = {}
            for f in sel:
                res[f] = {"_all": 0} if f == "_count" else None
            return {"data": {"result": res}}
        return {"data": {"result": None}}

    def _insert_many(self, model: str, data: list, skip_dup: bool) -> int:
        t0 = time.time()
        if not data:
            return 0
        cols = sorted({k for row in data for k in row})
        params, tuples = [], []
        for row in data:
            ph = []
            for c in cols:
                v = row.get(c)
                if isinstance(v, (dict, list)):
                    v = json.dumps(v)
                if v is None:
                    ph.append("DEFAULT")
                else:
                    params.append(v)
                    ph.append(f"${len(params)}")
            tuples.append("(" + ", ".join(ph) + ")")
        sql = (f'INSERT INTO "{self.db.schema}"."{model}" ('
               + ", ".join(f'"{c}"' for c in cols) + ") VALUES " + ", ".join(tuples)
               + (" ON CONFLICT DO NOTHING" if skip_dup else ""))
        try:
            _, _, _, count = self.db.run(sql, params)
        except Exception as e:
            record("write", method=f"createMany{model}", model=model, rows_sent=len(data),
                   ok=False, error=type(e).__name__, detail=str(e)[:300], sent_at=t0)
            raise
        record("write", method=f"createMany{model}", model=model, rows_sent=len(data),
               rows=count, ok=True, sent_at=t0)
        return max(count, 0)


def _is_write(sql: str) -> bool:
    return bool(re.match(r"\s*(INSERT|UPDATE|DELETE|UPSERT|MERGE|WITH\b.*\b(INSERT|UPDATE|DELETE)\b)",
                         sql, re.I | re.S))


def _error(code: str, message: str):
    return {"errors": [{"error": message, "user_facing_error": {
        "is_panic": False, "message": message, "meta": {}, "error_code": code}}]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine: Engine = None  # type: ignore[assignment]

    def log_message(self, *a) -> None:  # the real engine logs nothing at RUST_LOG=error
        pass

    def _send(self, code: int, body, ctype="application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body, default=str).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self) -> None:
        self._body()
        if self.path.startswith("/status"):
            self._send(200, {"status": "ok"})
        elif self.path.startswith("/metrics"):
            if "format=prometheus" in self.path:
                self._send(200, b"# stand-in engine\n", "text/plain")
            else:
                self._send(200, {"counters": [], "gauges": [], "histograms": []})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        raw = self._body()
        path = self.path.split("?")[0]
        try:
            if path == "/transaction/start":
                self._send(200, {"id": uuid.uuid4().hex})
                return
            if path.startswith("/transaction/"):
                self._send(200, {})
                return
            req = json.loads(raw or b"{}")
            if "batch" in req:
                out = []
                for q in req["batch"]:
                    try:
                        out.append(self.engine.execute(q["query"]))
                    except Exception as e:
                        out.append(_error("P2010", f"{type(e).__name__}: {e}"))
                self._send(200, {"batchResult": out})
                return
            try:
                self._send(200, self.engine.execute(req.get("query", "")))
            except Exception as e:
                self._send(200, _error("P2010", f"{type(e).__name__}: {e}"))
        except (ValueError, KeyError) as e:
            self._send(400, {"error": f"bad request: {e}"})


def _bind_at() -> float:
    """Earliest bind time: ``SENTINEL_ENGINE_BIND_AFTER`` (unix time), the
    number in ``SENTINEL_ENGINE_BIND_AFTER_FILE`` (re-read, so the harness
    can open the gate once the proxy accepts), ``SENTINEL_ENGINE_DELAY``
    seconds after this engine's spawn; the latest wins."""
    t = max(float(os.environ.get("SENTINEL_ENGINE_BIND_AFTER", "0") or 0),
            SPAWNED + float(os.environ.get("SENTINEL_ENGINE_DELAY", "0") or 0))
    f = os.environ.get("SENTINEL_ENGINE_BIND_AFTER_FILE")
    if f:
        try:
            with open(f) as fh:
                text = fh.read().strip()
            # empty: being written (the harness replaces it atomically; be safe)
            t = max(t, float(text) if text else time.time() + 1)
        except (OSError, ValueError):
            t = max(t, time.time() + 1)  # not readable yet: keep waiting
    return t


def _unreachable_exit(url: str) -> None:
    u = urllib.parse.urlsplit(url)
    host, port = u.hostname or "localhost", u.port or 5432
    msg = (f"Can't reach database server at `{host}`:`{port}`\n\n"
           f"Please make sure your database server is running at `{host}`:`{port}`.")
    sys.stderr.write(json.dumps({"is_panic": False, "message": msg,
                                 "meta": {"database_host": host, "database_port": port},
                                 "error_code": "P1001"}) + "\n")
    sys.stderr.flush()
    record("exit", code=1, reason="unreachable")
    os._exit(1)


def set_engine_cmdline(argv: list[str]) -> dict:
    """Makes ``/proc/self/cmdline`` the real engine's: the kernel started
    this file through its ``#!`` line, so the argument area holds
    ``<python> <this path> -p <port> …``; prisma-client-py exec'd
    ``<this path> -p <port> …``, which is what a real engine's cmdline is.
    The area is rewritten in place with ``argv`` (NUL-separated), the rest
    zeroed; shrinking the area to fit (``PR_SET_MM_ARG_END``) needs
    ``CAP_SYS_RESOURCE`` and is tried, so without it the cmdline ends in as
    many extra NUL bytes as the interpreter path takes. ``comm`` needs
    nothing: for a ``#!`` script the kernel names the process after the
    script (``query-engine-de``), as for the real binary.

    Returns what ``/proc/self/cmdline`` and ``comm`` read afterwards."""
    out: dict = {}
    try:
        import ctypes

        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b") ", 1)[1].split()
        # after `comm)`: field 3 is index 0; arg_start/arg_end are fields 48/49
        arg_start, arg_end = int(fields[45]), int(fields[46])
        want = b"".join(os.fsencode(a) + b"\0" for a in argv)
        area = arg_end - arg_start
        if 0 < len(want) <= area:
            ctypes.memmove(arg_start, want + b"\0" * (area - len(want)), area)
            libc = ctypes.CDLL(None, use_errno=True)
            # PR_SET_MM (35), PR_SET_MM_ARG_END (9)
            trimmed = libc.prctl(35, 9, ctypes.c_ulong(arg_start + len(want)),
                                 ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0
            out["cmdline_trimmed"] = trimmed
        else:
            out["cmdline_error"] = f"argument area {area} bytes, argv {len(want)}"
    except (OSError, ValueError, IndexError, AttributeError) as e:
        out["cmdline_error"] = type(e).__name__
    try:
        with open("/proc/self/cmdline", "rb") as f:
            raw = f.read()
        body = raw.rstrip(b"\0")
        out["cmdline"] = [a.decode("utf-8", "replace") for a in body.split(b"\0")]
        out["cmdline_nul_padding"] = len(raw) - len(body) - 1
        with open("/proc/self/comm") as f:
            out["comm"] = f.read().strip()
    except OSError as e:
        out["cmdline_error"] = type(e).__name__
    return out


def main(argv: list[str], argv0: str | None = None) -> int:
    """``argv``: the arguments after the program name; ``argv0``: the program
    name prisma-client-py exec'd (the wrapper's path), for the cmdline."""
    proc_view = set_engine_cmdline([argv0] + argv) if argv0 else {}
    if "--version" in argv or "version" in argv[:1]:
        print(f"query-engine {os.environ.get('SENTINEL_ENGINE_HASH', DEFAULT_HASH)}")
        return 0
    port = None
    for i, a in enumerate(argv):
        if a in ("-p", "--port") and i + 1 < len(argv):
            port = int(argv[i + 1])
    if port is None:
        sys.stderr.write("engine stand-in: -p <port> is required\n")
        return 2

    def _stop(signum, _frame):
        record("exit", signal=signum, port=port)
        os._exit(0)

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    record("spawn", port=port, argv=argv, ns_pid=os.getpid(), ppid=_host_ppid(), **proc_view)

    mode = os.environ.get("SENTINEL_ENGINE_MODE", "normal")
    url = _datasource_url()
    if mode == "unreachable":
        time.sleep(float(os.environ.get("SENTINEL_ENGINE_CONNECT_TIMEOUT", "5")))
        _unreachable_exit(url)
    if mode == "never":
        while True:
            time.sleep(3600)
    while time.time() < _bind_at():
        time.sleep(0.05)
    try:
        db = Db(url)
    except Exception:
        _unreachable_exit(url)
    raw_format = os.environ.get("SENTINEL_ENGINE_RAW_FORMAT", "columns")
    Handler.engine = Engine(db, raw_format)
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    record("bind", port=port)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
