#!/usr/bin/env python3
"""Deterministic CRI corpus for the litellm-sentinel benchmarks.

    python3 bench/gen_corpus.py SIZE_MB OUT_DIR [SEED]

Writes about SIZE_MB MiB of containerd-style CRI logs for 10 LiteLLM pods under
OUT_DIR/llm_litellm-<n>_<uuid>/litellm/0.log and OUT_DIR/expected.json with the
exact counts `litellm-sentinel report --json` must find (same vocabulary as the
report's `totals`), plus what a line-at-a-time matcher (mtail, rg) can find.

What the bytes look like (each pod's file is a sequence of proxy starts):

* ~99 % ordinary LiteLLM output: Uvicorn access lines (chat/embeddings/models,
  2xx and 4xx, on stdout), health/readiness/liveliness/metrics probes, LiteLLM
  INFO lines with ANSI colours (stderr, some non-ASCII), JSON_LOGS lines with
  long messages (some over 16 KiB, split by "containerd" into P/F records).
* ~1 % start-up race: per start the Prisma distro warning (twice), Uvicorn's
  start lines, the `add_deployment` / `get_credentials` load failures, the
  model-cost-map look-alike, then a burst of spend-queue monitor errors (some
  after 1.83's `retry n/3 … logs_count=N` lines, some in JSON_LOGS form with
  the stack trace inside the message), get_generic_data errors, budget-cache
  misses (error on the same line or on the next `Error: …` line), update_spend
  job failures, provider `APIConnectionError` look-alikes, bare
  `httpx.ConnectError` lines and unowned tracebacks. Tracebacks are the real
  two-exception chain. About 10 % of the event headers are split across CRI
  `P`/`F` records inside their key phrase, the way CRI-O cuts at any 8 KiB read
  boundary (a line-at-a-time matcher cannot see those).

The same SIZE_MB and SEED always give the same bytes.
"""
import datetime
import json
import os
import random
import sys
import uuid

# GEN_PODS=1 writes one pod (the per-core benchmark, bench/scan.sh).
PODS = int(os.environ.get("GEN_PODS", "10"))
ESC = "\x1b"
CONTAINERD_SPLIT = 16 * 1024
# Ordinary lines per event line: ~1 % of all lines belong to the race.
ORDINARY_PER_EVENT_LINE = 99

CONNECT = "All connection attempts failed"
TRACE = [
    "Traceback (most recent call last):",
    '  File "/usr/lib/python3.13/site-packages/httpx/_transports/default.py", line 101, in map_httpcore_exceptions',
    "    yield",
    '  File "/usr/lib/python3.13/site-packages/httpcore/_async/connection_pool.py", line 256, in handle_async_request',
    "    raise exc from None",
    "httpcore.ConnectError: All connection attempts failed",
    "",
    "The above exception was the direct cause of the following exception:",
    "",
    "Traceback (most recent call last):",
    '  File "/usr/lib/python3.13/site-packages/litellm/proxy/utils.py", line 3880, in update_spend_logs',
    "    await prisma_client.db.litellm_spendlogs.create_many(data=batch_with_dates, skip_duplicates=True)",
    '  File "/usr/lib/python3.13/site-packages/prisma/engine/http.py", line 97, in request',
    "    response = await self.session.request(method, url, **kwargs)",
    "               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    "httpx.ConnectError: All connection attempts failed",
]

WORDS = (
    "the model returned a streaming chunk with usage tokens prompt completion cached reasoning "
    "assistant user system content role tool call function arguments temperature top_p seed "
    "gpt-4o gpt-4o-mini claude-sonnet text-embedding-3-small azure openai bedrock vertex "
    "router deployment latency fallback cooldown team key alias metadata tags spend budget "
    "cost region eastus westeurope request id chatcmpl response finish reason stop length "
    "café naïve résumé 東京 données Grüße"
).split()

ENDPOINTS_2XX = [
    ("POST", "/v1/chat/completions", 40),
    ("POST", "/chat/completions", 10),
    ("POST", "/v1/embeddings", 12),
    ("GET", "/v1/models", 4),
    ("GET", "/key/info", 2),
    ("POST", "/v1/completions", 2),
]
PROBES = ["/health/readiness", "/health/liveliness", "/metrics", "/health/liveness"]
NON_2XX = [
    ("POST", "/v1/chat/completions", "401 Unauthorized"),
    ("POST", "/v1/chat/completions", "429 Too Many Requests"),
    ("POST", "/v1/chat/completions", "400 Bad Request"),
    ("POST", "/v1/embeddings", "500 Internal Server Error"),
]
INFO_MESSAGES = [
    "proxy_server.py:3922 - Request received by LiteLLM: model=gpt-4o-mini, user=team-billing",
    "router.py:1050 - litellm.acompletion(model=azure/gpt-4o) 200 OK",
    "router.py:1050 - litellm.aembedding(model=text-embedding-3-small) 200 OK",
    "utils.py:1213 - Inside async function with retries: model=claude-sonnet, attempts=1",
    "cost_calculator.py:652 - Returned custom cost for model=gpt-4o - prompt_tokens_cost_usd_dollar: 0.00125",
    "proxy_server.py:1481 - Spend update: key=sk-...a1b2, team=team-research, spend=0.0031",
    "router.py:4310 - Deployment azure/gpt-4o-eastus in cooldown for 5s (429 from provider)",
    "caching_handler.py:210 - Cache hit for key f3a9… (données en cache, Grüße)",
]


class Clock:
    """Record time of one pod: advances a few milliseconds per line."""

    BASE = datetime.datetime(2026, 11, 24, 0, 0, 0)

    def __init__(self, start_ns):
        self.ns = start_ns
        self._sec = -1
        self._prefix = ""

    def stamp(self):
        sec, frac = divmod(self.ns, 1_000_000_000)
        if sec != self._sec:
            self._sec = sec
            t = self.BASE + datetime.timedelta(seconds=sec)
            self._prefix = t.strftime("%Y-%m-%dT%H:%M:%S")
        f = f"{frac:09d}".rstrip("0")  # containerd trims trailing zeros
        return self._prefix + ("." + f if f else "") + "Z"

    def clock(self):
        """LiteLLM's own `HH:MM:SS` in the coloured prefix."""
        return self._prefix[11:19] if self._prefix else "00:00:00"

    def iso_micro(self):
        sec, frac = divmod(self.ns, 1_000_000_000)
        t = self.BASE + datetime.timedelta(seconds=sec)
        return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac // 1000:06d}"

    def tick(self, rng, lo_ms=1, hi_ms=19):
        self.ns += rng.randint(lo_ms, hi_ms) * 1_000_000 + rng.randint(0, 999_999)


def lit(clock, level, where, msg):
    return f"{ESC}[92m{clock} - LiteLLM Proxy:{level}{ESC}[0m: {where} - {msg}"


class Counts:
    FIELDS = [
        "proxy_starts",
        "db_connect_errors",
        "spend_batches_dropped",
        "spend_rows_requeued",
        "spend_rows_lost",
        "budget_cache_misses",
        "deployment_load_failures",
        "credential_load_failures",
        "engine_distro_fallbacks",
        "lines",
        "malformed_lines",
    ]

    def __init__(self):
        self.c = {k: 0 for k in self.FIELDS}
        self.ops = {}
        # What a matcher that sees one physical line at a time can find.
        self.split = {"spend_batches_dropped": 0, "budget_cache_misses": 0, "proxy_starts": 0, "db_connect_errors": 0}
        self.event_lines = 0
        self.bytes = 0

    def db(self, op):
        self.c["db_connect_errors"] += 1
        self.ops[op] = self.ops.get(op, 0) + 1

    def add(self, o):
        for k in self.FIELDS:
            self.c[k] += o.c[k]
        for k, v in o.ops.items():
            self.ops[k] = self.ops.get(k, 0) + v
        for k, v in o.split.items():
            self.split[k] += v
        self.event_lines += o.event_lines
        self.bytes += o.bytes

    def as_json(self):
        d = dict(self.c)
        d["db_connect_errors_by_operation"] = dict(sorted(self.ops.items()))
        d["split_event_headers"] = dict(self.split)
        d["event_lines"] = self.event_lines
        d["bytes"] = self.bytes
        return d


class PodWriter:
    def __init__(self, path, rng, target_bytes, start_ns):
        self.f = open(path, "w", encoding="utf-8", newline="\n")
        self.rng = rng
        self.target = target_bytes
        self.clock = Clock(start_ns)
        self.counts = Counts()
        self.buf = []
        self.buf_bytes = 0
        self.written = 0
        self.json_payloads = self._payloads()

    # -- output -------------------------------------------------------------

    def put(self, stream, text, tag="F", event=False):
        line = f"{self.clock.stamp()} {stream} {tag} {text}\n"
        self.buf.append(line)
        n = len(line.encode("utf-8")) if not line.isascii() else len(line)
        self.buf_bytes += n
        self.counts.c["lines"] += 1
        if event:
            self.counts.event_lines += 1
        if self.buf_bytes > 1 << 20:
            self.flush()

    def put_long(self, stream, text):
        """A line containerd splits into 16 KiB `P` records plus a final `F` (ASCII text)."""
        for i in range(0, len(text), CONTAINERD_SPLIT):
            chunk = text[i : i + CONTAINERD_SPLIT]
            self.put(stream, chunk, "F" if i + CONTAINERD_SPLIT >= len(text) else "P")

    def put_split(self, stream, text, cut_inside):
        """An event header cut by the runtime inside `cut_inside` (CRI-O-like),
        sometimes into three records, with stdout traffic in between."""
        at = text.index(cut_inside) + self.rng.randint(2, len(cut_inside) - 2)
        parts = [text[:at], text[at:]]
        if self.rng.random() < 0.3 and len(parts[1]) > 4:
            at2 = self.rng.randint(1, len(parts[1]) - 1)
            parts = [parts[0], parts[1][:at2], parts[1][at2:]]
        for i, part in enumerate(parts):
            self.put(stream, part, "F" if i == len(parts) - 1 else "P", event=True)
            if i < len(parts) - 1:
                if self.rng.random() < 0.5:
                    self.ordinary_stdout()
                self.clock.tick(self.rng, 0, 1)

    def flush(self):
        self.f.write("".join(self.buf))
        self.written += self.buf_bytes
        self.buf = []
        self.buf_bytes = 0

    def close(self):
        self.flush()
        self.f.close()
        self.counts.bytes = self.written

    def size(self):
        return self.written + self.buf_bytes

    # -- ordinary lines -----------------------------------------------------

    def _payloads(self):
        rng = self.rng
        out = []
        for i in range(256):
            if i % 64 == 63:
                n = rng.randint(18_000, 40_000)  # split by containerd
            else:
                n = int(rng.lognormvariate(6.2, 0.9))  # ~500 B median, a few KiB tail
            words = []
            size = 0
            while size < n:
                w = rng.choice(WORDS)
                words.append(w)
                size += len(w) + 1
            msg = "litellm.acompletion(model=gpt-4o-mini) 200 OK - messages=" + " ".join(words)
            out.append(msg)
        return out

    def ip(self):
        r = self.rng
        return f"10.{r.randint(0, 3)}.{r.randint(0, 255)}.{r.randint(1, 254)}:{r.randint(32768, 60999)}"

    def ordinary_stdout(self):
        r = self.rng.random()
        if r < 0.56:
            method, path = self.pick_endpoint()
            self.put("stdout", f'INFO:     {self.ip()} - "{method} {path} HTTP/1.1" 200 OK')
        elif r < 0.83:
            path = self.rng.choice(PROBES)
            self.put("stdout", f'INFO:     {self.ip()} - "GET {path} HTTP/1.1" 200 OK')
        elif r < 0.91:
            method, path, status = self.rng.choice(NON_2XX)
            self.put("stdout", f'INFO:     {self.ip()} - "{method} {path} HTTP/1.1" {status}')
        else:
            self.json_line()
        self.clock.tick(self.rng)

    def pick_endpoint(self):
        total = sum(w for _, _, w in ENDPOINTS_2XX)
        x = self.rng.randint(1, total)
        for method, path, w in ENDPOINTS_2XX:
            x -= w
            if x <= 0:
                return method, path
        return ENDPOINTS_2XX[0][:2]

    def json_line(self):
        msg = self.rng.choice(self.json_payloads)
        doc = {
            "message": msg,
            "level": "INFO",
            "timestamp": self.clock.iso_micro(),
            "component": "LiteLLM Router",
            "logger": "router.py:1050",
        }
        text = json.dumps(doc)  # ASCII (non-ASCII is \u-escaped)
        if len(text) > CONTAINERD_SPLIT:
            self.put_long("stdout", text)
        else:
            self.put("stdout", text)

    def ordinary_stderr(self):
        msg = self.rng.choice(INFO_MESSAGES)
        self.put("stderr", lit(self.clock.clock(), "INFO", *msg.split(" - ", 1)))
        self.clock.tick(self.rng)

    def ordinary(self, n, until_target=False):
        for _ in range(n):
            if until_target and self.size() >= self.target:
                return
            if self.rng.random() < 0.85:
                self.ordinary_stdout()
            else:
                self.ordinary_stderr()

    # -- the start-up race ------------------------------------------------------

    def maybe_split(self, text, key, split_key):
        if self.rng.random() < 0.10:
            self.put_split("stderr", text, key)
            self.counts.split[split_key] += 1
            return True
        self.put("stderr", text, event=True)
        return False

    def trace(self):
        for line in TRACE:
            self.put("stderr", line, event=True)
            if self.rng.random() < 0.2:
                self.ordinary_stdout()  # other streams interleave freely

    def start(self):
        c = self.counts
        warn = 'prisma:warn Prisma doesn\'t know which engines to download for the Linux distro "wolfi". Falling back to Prisma engines built "debian".'
        for _ in range(2):  # the Prisma CLI prints it twice per start
            self.put("stderr", warn, event=True)
            c.c["engine_distro_fallbacks"] += 1
            self.clock.tick(self.rng)
        for text in ["INFO:     Started server process [1]", "INFO:     Waiting for application startup."]:
            self.put("stderr", text)
            self.clock.tick(self.rng)
        self.put("stdout", f"{ESC}[32mLiteLLM: Proxy initialized with Config, Set models:{ESC}[0m")
        self.put("stderr", "LiteLLM: model cost map fetch attempt 1/3 failed (ConnectError fetching https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json)", event=True)
        self.put("stderr", "INFO:     Application startup complete.")
        self.clock.tick(self.rng, 100, 400)
        split = self.maybe_split(
            "INFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)", "Uvicorn running on ", "proxy_starts"
        )
        c.c["proxy_starts"] += 1
        del split

    def event(self, kind):
        """One race event on stderr, after an ordinary stderr line that ends any fold."""
        c, rng = self.counts, self.rng
        self.ordinary_stderr()
        clk = self.clock.clock()
        if kind == "add_deployment":
            self.put("stderr", lit(clk, "ERROR", "proxy_server.py:3155", f"litellm.proxy.proxy_server.py::ProxyConfig:add_deployment - {CONNECT}"), event=True)
            c.c["deployment_load_failures"] += 1
            c.db("add_deployment")
        elif kind == "get_credentials":
            self.put("stderr", lit(clk, "ERROR", "proxy_server.py:3380", f"litellm.proxy_server.py::get_credentials() - Error getting credentials from DB - {CONNECT}"), event=True)
            c.c["credential_load_failures"] += 1
            c.db("get_credentials")
        elif kind == "spend_monitor":
            # 1.83.x: four attempts (1/3 … 4/3, LiteLLM's off-by-one) with the
            # batch's logs_count, then the monitor error: rows lost = that
            # count. A quarter of the pods log at ERROR: no WARNING retry
            # lines, the batch is dropped with no count.
            rows = None
            if rng.random() < 0.75:
                rows = rng.randint(1, 10_000)
                for attempt in range(1, 5):
                    self.put("stderr", lit(clk, "WARNING", "db_spend_update_writer.py:1071", f"Spend tracking - DB connection error writing spend logs, retry {attempt}/3. logs_count={rows}, error={CONNECT}"), event=True)
                    c.db("spend_logs_queue")
                    self.clock.tick(rng)
            text = lit(clk, "ERROR", "utils.py:3905", f"Error in spend logs queue monitor: {CONNECT}")
            if self.maybe_split(text, "Error in spend logs queue monitor", "spend_batches_dropped"):
                c.split["db_connect_errors"] += 1
            self.trace()
            c.c["spend_batches_dropped"] += 1
            c.c["spend_rows_lost"] += rows or 0
            c.db("spend_logs_queue")
        elif kind == "spend_monitor_json":
            doc = {
                "message": f"Error in spend logs queue monitor: {CONNECT}",
                "level": "ERROR",
                "timestamp": self.clock.iso_micro(),
                "component": "LiteLLM Proxy",
                "logger": "utils.py:3905",
                "stacktrace": "\n".join(TRACE),
            }
            self.put("stderr", json.dumps(doc), event=True)
            c.c["spend_batches_dropped"] += 1
            c.db("spend_logs_queue")
        elif kind == "get_generic_data":
            text = lit(clk, "ERROR", "utils.py:2721", f"LiteLLM Prisma Client Exception get_generic_data: {CONNECT}")
            if self.maybe_split(text, "Prisma Client Exception get_generic_data", "db_connect_errors"):
                pass
            c.db("get_generic_data")
        elif kind in ("budget_same_line", "budget_next_line"):
            who = rng.choice(["user", "team", "key", "end_user"])
            head = f"Budget lookup failed for {who}; cache will not be populated. Each request will hit the database."
            if kind == "budget_same_line":
                text = lit(clk, "WARNING", "auth_checks.py:511", f"{head} Error: {CONNECT}.")
            else:
                text = lit(clk, "WARNING", "auth_checks.py:511", head)
            if self.maybe_split(text, "Budget lookup failed for ", "budget_cache_misses"):
                c.split["db_connect_errors"] += 1
            if kind == "budget_next_line":
                self.put("stderr", f"Error: {CONNECT}.", event=True)
            c.c["budget_cache_misses"] += 1
            c.db("budget_lookup")
        elif kind == "update_spend_job":
            self.put("stderr", f'Job "update_spend (trigger: interval[0:00:10][+9s], next run at: {self.clock.stamp()[:10]} {clk} UTC)" raised an exception', event=True)
            self.trace()
            c.db("update_spend")
        elif kind == "provider_lookalike":
            self.put("stderr", lit(clk, "ERROR", "proxy_server.py:4000", f"litellm.APIConnectionError: OllamaException - {CONNECT}"), event=True)
            if rng.random() < 0.5:
                self.trace()
        elif kind == "bare_connect_error":
            self.put("stderr", f"httpx.ConnectError: {CONNECT}", event=True)
            c.db("other")
        elif kind == "unowned_traceback":
            self.trace()
            c.db("other")
        else:
            raise ValueError(kind)
        self.clock.tick(rng)

    BURST = [
        ("spend_monitor", 4),
        ("spend_monitor_json", 1),
        ("get_generic_data", 3),
        ("budget_same_line", 3),
        ("budget_next_line", 1),
        ("update_spend_job", 1),
        ("provider_lookalike", 1),
        ("bare_connect_error", 1),
        ("unowned_traceback", 1),
    ]

    def cycle(self):
        """One proxy start: the race burst mixed into traffic, then steady traffic."""
        before = self.counts.event_lines
        self.start()
        kinds = ["add_deployment", "get_credentials"]
        population = [k for k, w in self.BURST for _ in range(w)]
        kinds += [self.rng.choice(population) for _ in range(self.rng.randint(6, 12))]
        for kind in kinds:
            self.ordinary(self.rng.randint(5, 60))
            self.event(kind)
        burst_events = self.counts.event_lines - before
        self.ordinary(burst_events * ORDINARY_PER_EVENT_LINE - 35 * len(kinds), until_target=True)
        # The rest of the pod's life: a quiet minute at least before the next start.
        self.clock.ns += self.rng.randint(60, 600) * 1_000_000_000

    def run(self):
        while self.size() < self.target:
            self.cycle()
        self.close()
        return self.counts


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    size_mb = float(argv[1])
    out = argv[2]
    seed = int(argv[3]) if len(argv) > 3 else 1
    os.makedirs(out, exist_ok=True)
    master = random.Random(seed)
    per_pod = int(size_mb * 1024 * 1024 / PODS)
    totals = Counts()
    pods = {}
    for n in range(PODS):
        uid = uuid.UUID(int=master.getrandbits(128), version=4)
        pod = f"litellm-{n}"
        d = os.path.join(out, f"llm_{pod}_{uid}", "litellm")
        os.makedirs(d, exist_ok=True)
        rng = random.Random(master.getrandbits(64))
        start_ns = n * 37 * 1_000_000_000
        counts = PodWriter(os.path.join(d, "0.log"), rng, per_pod, start_ns).run()
        pods[pod] = counts.as_json()
        totals.add(counts)
    t = totals.as_json()
    # Per-event counts a matcher sees when it reads one physical line at a time.
    line_level = {
        k: t[k] - t["split_event_headers"][k]
        for k in ("spend_batches_dropped", "budget_cache_misses", "proxy_starts")
    }
    doc = {
        "size_mb": size_mb,
        "seed": seed,
        "pods": pods,
        "totals": t,
        "line_level": line_level,
        "event_line_fraction": round(t["event_lines"] / max(1, t["lines"]), 5),
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
    print(
        f"gen_corpus: {t['bytes'] / 1048576:.1f} MiB, {t['lines']} lines "
        f"({doc['event_line_fraction'] * 100:.2f} % race lines), {PODS} pods → {out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
