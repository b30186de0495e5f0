"""Fast checks of the harness's own pieces (no proxy, no network):
``python3 -m unittest tests/litellm/test_units.py``."""

from __future__ import annotations

import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check  # noqa: E402
import engine_standin as es  # noqa: E402
import harness  # noqa: E402
import schema_topup  # noqa: E402


class StandIn(unittest.TestCase):
    def test_create_many_as_built_by_prisma_client_py(self):
        q = ('mutation {\n  result: createManyLiteLLM_SpendLogs\n  (\n    data: [\n      {\n'
             '        request_id: "a"\n        spend: 1.5\n        metadata: "{\\"x\\": 1}"\n'
             '      },\n      {\n        request_id: "b"\n      }\n    ]\n'
             '    skipDuplicates: true\n  )\n  {\n    count\n  }\n}')
        method, args, sel = es.parse_operation(q)
        self.assertEqual(method, "createManyLiteLLM_SpendLogs")
        self.assertEqual(args["data"], [{"request_id": "a", "spend": 1.5, "metadata": '{"x": 1}'},
                                        {"request_id": "b"}])
        self.assertIs(args["skipDuplicates"], True)
        self.assertEqual(sel, ["count"])

    def test_raw_query_arguments_are_json_strings(self):
        q = ('mutation {\n  result: executeRaw\n  (\n    query: "INSERT INTO t VALUES ($1)"\n'
             '    parameters: "[\\"x\\"]"\n  )\n}')
        method, args, _ = es.parse_operation(q)
        self.assertEqual(method, "executeRaw")
        self.assertEqual(json.loads(args["parameters"]), ["x"])

    def test_raw_result_formats_by_engine_version(self):
        cols, oids, rows = ["n", "s"], [23, 25], [[1, "a"]]
        self.assertEqual(es.raw_result(cols, oids, rows, "columns"),
                         {"columns": cols, "types": ["int", "string"], "rows": [[1, "a"]]})
        self.assertEqual(es.raw_result(cols, oids, rows, "typed-objects"),
                         [{"n": {"prisma__type": "int", "prisma__value": 1},
                           "s": {"prisma__type": "string", "prisma__value": "a"}}])

    def test_find_many_and_find_unique_answer_empty(self):
        e = es.Engine(db=None, raw_format="columns")  # type: ignore[arg-type]
        self.assertEqual(e.execute("query {\n result: findManyX\n (\n )\n {\n id\n }\n}"),
                         {"data": {"result": []}})
        self.assertEqual(e.execute("query {\n result: findUniqueX\n (\n where: {\n id: \"1\"\n }\n )\n {\n id\n }\n}"),
                         {"data": {"result": None}})

    def test_bind_time_is_the_latest_of_file_and_delay(self):
        with tempfile.NamedTemporaryFile("w", suffix=".t", delete=False) as f:
            f.write("12345.5")
        import os
        os.environ["SENTINEL_ENGINE_BIND_AFTER_FILE"] = f.name
        os.environ["SENTINEL_ENGINE_DELAY"] = "0"
        try:
            self.assertGreaterEqual(es._bind_at(), es.SPAWNED)
            Path(f.name).write_text(str(es.SPAWNED + 100))
            self.assertEqual(es._bind_at(), es.SPAWNED + 100)
        finally:
            del os.environ["SENTINEL_ENGINE_BIND_AFTER_FILE"]
            del os.environ["SENTINEL_ENGINE_DELAY"]

    def test_empty_bind_gate_file_keeps_the_engine_waiting(self):
        import os
        import time
        with tempfile.NamedTemporaryFile("w", suffix=".t", delete=False) as f:
            pass  # empty: the moment between truncate and write
        os.environ["SENTINEL_ENGINE_BIND_AFTER_FILE"] = f.name
        try:
            self.assertGreater(es._bind_at(), time.time())
        finally:
            del os.environ["SENTINEL_ENGINE_BIND_AFTER_FILE"]

    def test_process_looks_like_the_real_engine(self):
        """Started as prisma-client-py starts the engine (exec of the
        wrapper path with ``-p <port> --enable-metrics --enable-raw-queries``),
        the stand-in's cmdline is that argv (the real engine's) and its comm
        ``query-engine-de``: what the sidecar's /proc discovery reads."""
        import os
        import subprocess
        import time
        with tempfile.TemporaryDirectory() as d:
            w = Path(d) / "query-engine-debian-openssl-3.0.x"
            w.write_text(f"#!{sys.executable}\nimport sys\n"
                         f"sys.path.insert(0, {str(Path(es.__file__).parent)!r})\n"
                         "import engine_standin\n"
                         "sys.exit(engine_standin.main(sys.argv[1:], sys.argv[0]))\n")
            w.chmod(0o755)
            events = Path(d) / "events.jsonl"
            argv = [str(w), "-p", "45999", "--enable-metrics", "--enable-raw-queries"]
            p = subprocess.Popen(argv, env={**os.environ, "SENTINEL_ENGINE_MODE": "never",
                                            "SENTINEL_ENGINE_EVENTS": str(events)})
            try:
                harness.wait_for(lambda: events.exists() and events.read_text(), 20,
                                 "the stand-in's spawn record")
                raw = Path(f"/proc/{p.pid}/cmdline").read_bytes()
                comm = Path(f"/proc/{p.pid}/comm").read_text().strip()
            finally:
                p.kill()
                p.wait(10)
            self.assertEqual(raw.rstrip(b"\0").split(b"\0"), [a.encode() for a in argv])
            self.assertEqual(comm, "query-engine-de")
            rec = json.loads(events.read_text().splitlines()[0])
            self.assertEqual(rec["cmdline"], argv)
            self.assertEqual(rec["pid"], p.pid)


class Capture(unittest.TestCase):
    def test_cri_timestamps_trim_trailing_zeros(self):
        self.assertEqual(harness.rfc3339(0.5), "1970-01-01T00:00:00.5Z")
        self.assertEqual(harness.rfc3339(1.0), "1970-01-01T00:00:01Z")

    def test_long_lines_split_into_p_records_and_partial_last_line(self):
        with tempfile.TemporaryDirectory() as d:
            out = Path(d)
            cap = harness.Capture(out, out / "pods" / "x" / "c" / "0.log")
            cap._emit("stdout", b"a" * (harness.CRI_MAX_LINE + 10), True, 1.0)
            cap._emit("stderr", b"tail", False, 2.0)
            cap.close()
            recs = (out / "pods" / "x" / "c" / "0.log").read_bytes().split(b"\n")[:-1]
            tags = [r.split(b" ", 3)[1:3] for r in recs]
            self.assertEqual(tags, [[b"stdout", b"P"], [b"stdout", b"F"], [b"stderr", b"P"]])
            self.assertEqual(len(recs[0].split(b" ", 3)[3]), harness.CRI_MAX_LINE)


class Ports(unittest.TestCase):
    def test_harness_ports_never_come_from_the_ephemeral_pool(self):
        # Prisma gives the engine a bind(0) port while the proxy starts: a
        # harness port from that pool once collided with it.
        lo, hi = harness._ephemeral_range()
        ports = {harness.free_port() for _ in range(50)}
        self.assertTrue(all(not lo <= p <= hi for p in ports), (lo, hi, sorted(ports)))
        self.assertGreater(len(ports), 40)


class SchemaTopUp(unittest.TestCase):
    def test_missing_table_enum_and_column(self):
        with tempfile.NamedTemporaryFile("w", suffix=".prisma", delete=False) as f:
            f.write('enum State {\n  pending\n  done\n}\n\nmodel A {\n  id String @id\n'
                    '  n Int @default(0)\n  s State @default(pending)\n  t DateTime @default(now())\n'
                    '  b B? @relation(fields: [id], references: [id])\n  @@map("a_table")\n}\n'
                    'model B {\n  id String @id\n  x String?\n}\n')
        sql = schema_topup.statements(Path(f.name), set(), {"B": {"id"}})
        self.assertIn("CREATE TYPE \"State\" AS ENUM ('pending', 'done')", sql)
        self.assertIn('CREATE TABLE "a_table" ("id" TEXT NOT NULL, "n" INTEGER NOT NULL DEFAULT 0, '
                      '"s" "State" NOT NULL DEFAULT \'pending\', '
                      '"t" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY ("id"))', sql)
        self.assertIn('ALTER TABLE "B" ADD COLUMN "x" TEXT', sql)


class Checks(unittest.TestCase):
    def test_timestamps_with_nanoseconds(self):
        self.assertAlmostEqual(check.ts("1970-01-01T00:00:01.123456789Z"), 1.123456, places=5)

    def test_metrics_parse_and_pod_lookup(self):
        m = check.parse_metrics('# HELP x\nlitellm_sentinel_proxy_starts_total{namespace="e2e",pod="p"} 1\n')
        self.assertEqual(check._pod_value(m, "proxy_starts_total", "p"), 1.0)
        self.assertIsNone(check._pod_value(m, "proxy_starts_total", "q"))

    def test_every_worker_ready_at_needs_an_engine_per_worker(self):
        engines = [
            {"pid": 10, "ppid": 1, "spawn_at": 0, "bind_at": 5, "killed_by_harness_at": 8},
            {"pid": 11, "ppid": 2, "spawn_at": 0, "bind_at": 9},
            {"pid": 12, "ppid": 1, "spawn_at": 8, "bind_at": 12, "exit_at": 30},
            {"pid": 13, "ppid": 2, "spawn_at": 0, "exit_at": 3},  # never bound
        ]
        two = {"workers": 2, "engines": engines}
        # worker 1's first engine died before worker 2's bound: ready at 12
        self.assertEqual(check.every_worker_ready_at(two), 12)
        self.assertEqual(check.every_worker_ready_at({"workers": 1, "engines": engines}), 5)
        self.assertEqual(check.every_worker_ready_at({"workers": 1, "engines": engines}, 8), 9)
        self.assertIsNone(check.every_worker_ready_at({"workers": 3, "engines": engines}))


if __name__ == "__main__":
    unittest.main()
