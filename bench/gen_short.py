#!/usr/bin/env python3
"""One pod's CRI log of short lines, for the per-core scan benchmark.

    python3 bench/gen_short.py SIZE_MB OUT_DIR [SEED]

Writes OUT_DIR/llm_litellm-short_<uuid>/litellm/0.log: about SIZE_MB MiB of
containerd-style lines of 60-110 bytes — half of them Uvicorn access lines
(`… HTTP/1.1" 200 OK`, the pack's most frequent literal hit), the rest short
LiteLLM INFO lines — with a proxy start and a spend-queue failure burst
(header, two-exception traceback, budget-cache misses) about every 50,000
lines. Deterministic for a given SIZE_MB and SEED.
"""
import os
import random
import sys
import time
import uuid

ACCESS = [
    'INFO:     10.0.{a}.{b}:{p} - "POST /v1/chat/completions HTTP/1.1" 200 OK',
    'INFO:     10.0.{a}.{b}:{p} - "POST /v1/embeddings HTTP/1.1" 200 OK',
    'INFO:     10.0.{a}.{b}:{p} - "GET /health/readiness HTTP/1.1" 200 OK',
    'INFO:     10.0.{a}.{b}:{p} - "POST /v1/chat/completions HTTP/1.1" 429 Too Many Requests',
]
INFO = [
    "18:33:49 - LiteLLM Proxy:INFO: proxy_server.py:4012 - Request received model=gpt-4o-mini",
    "18:33:50 - LiteLLM Router:INFO: router.py:1085 - acompletion(model=azure/gpt-4o) 200 OK",
    "18:33:50 - LiteLLM:DEBUG: utils.py:4410 - model_info: {'key': 'gpt-4o-mini'}",
    "18:33:51 - LiteLLM Proxy:INFO: spend_tracking.py:88 - spend updated for key sk-...a1b2",
]
START = [
    "INFO:     Started server process [7]",
    "INFO:     Waiting for application startup.",
    "INFO:     Application startup complete.",
    "INFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)",
]
BURST = [
    "18:33:49 - LiteLLM Proxy:ERROR: utils.py:2721 - Error in spend logs queue monitor: All connection attempts failed",
    "Traceback (most recent call last):",
    '  File "/usr/lib/python3.13/site-packages/httpx/_transports/default.py", line 101, in map',
    "    raise exc from None",
    "httpcore.ConnectError: All connection attempts failed",
    "",
    "The above exception was the direct cause of the following exception:",
    "",
    "Traceback (most recent call last):",
    '  File "/usr/lib/python3.13/site-packages/prisma/engine/http.py", line 97, in request',
    "httpx.ConnectError: All connection attempts failed",
    "Budget lookup failed for user; cache will not be populated. Error: All connection attempts failed.",
]


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    size = int(float(argv[1]) * 1024 * 1024)
    seed = int(argv[3]) if len(argv) > 3 else 1
    rng = random.Random(seed)
    uid = uuid.UUID(int=rng.getrandbits(128), version=4)
    d = os.path.join(argv[2], f"llm_litellm-short_{uid}", "litellm")
    os.makedirs(d, exist_ok=True)
    ns = 1_795_514_400 * 1_000_000_000
    written, n = 0, 0
    with open(os.path.join(d, "0.log"), "w", encoding="utf-8") as f:
        while written < size:
            ns += rng.randrange(100_000, 5_000_000)
            if n % 50_000 == 0:
                msgs = START if n % 100_000 == 0 else BURST
            elif rng.random() < 0.5:
                msgs = [rng.choice(ACCESS).format(a=rng.randrange(256), b=rng.randrange(256), p=rng.randrange(1024, 65535))]
            else:
                msgs = [rng.choice(INFO)]
            secs, frac = divmod(ns, 1_000_000_000)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
            if frac:
                stamp += f".{frac:09d}".rstrip("0")
            stamp += "Z"
            stream = "stderr" if msgs is BURST else "stdout"
            for m in msgs:
                line = f"{stamp} {stream} F {m}\n"
                f.write(line)
                written += len(line)
                n += 1
    print(f"gen_short: {written / 1048576:.1f} MiB, {n} lines → {d}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
