#!/usr/bin/env python3
"""Helper for auditing a LiteLLM release against the rule pack.

    pip download --no-deps -d /tmp/w litellm==X.Y.Z && unzip -q /tmp/w/litellm-X.Y.Z-*.whl -d /tmp/w/X.Y.Z
    python3 rules/audit/audit.py extract /tmp/w/X.Y.Z            # candidate log calls (TSV)
    python3 rules/audit/audit.py check rules/audit/X.Y.Z.tsv /tmp/w/X.Y.Z

`extract` lists every warning-or-worse log call (logger.warning/error/
exception/critical and LiteLLM's spend_log_error helper) in the files on the
DB / Prisma / spend / budget / credential / deployment / config / health
paths, with file:function (no line numbers), level and the message template
(printf and f-string fields shown as {…}). `check` reports the table's
templates that are no longer in the source, and the candidate calls that no
row of the table covers, so a new release is: copy the previous table, run
`check`, read the code of each reported call, add or fix rows, run
`cargo test --test audit`.

Needs only the Python standard library; never imports LiteLLM.
"""
import ast
import json
import os
import re
import sys

LEVELS = {"warning", "warn", "error", "exception", "critical"}
SCOPE_PREFIXES = ("litellm/proxy/db/",)
SCOPE_FILES = {
    "litellm/proxy/utils.py",
    "litellm/proxy/proxy_server.py",
    "litellm/proxy/auth/auth_checks.py",
    "litellm/proxy/health_endpoints/_health_endpoints.py",
    "litellm/proxy/common_utils/reset_budget_job.py",
    "litellm/proxy/hooks/proxy_track_cost_callback.py",
    "litellm/proxy/spend_tracking/cloudzero_endpoints.py",
    "litellm/proxy/spend_tracking/vantage_endpoints.py",
}


def template(node):
    """The literal text of a message argument, fields as {…}."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            str(v.value) if isinstance(v, ast.Constant) else "{…}" for v in node.values
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return template(node.left) + template(node.right)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return re.sub(r"%[-0-9.]*[sdrfi]", "{…}", template(node.left))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    ):
        return re.sub(r"\{[^}]*\}", "{…}", template(node.func.value))
    return "{…}"


def calls(root):
    for d, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(d, f)
            rel = os.path.relpath(path, root)
            if not (rel in SCOPE_FILES or rel.startswith(SCOPE_PREFIXES)):
                continue
            try:
                tree = ast.parse(open(path, encoding="utf-8").read())
            except (SyntaxError, UnicodeDecodeError) as e:
                print(f"skipping {rel}: {e}", file=sys.stderr)
                continue
            stack = []
            out = []

            class Visitor(ast.NodeVisitor):
                def visit_FunctionDef(self, n):
                    stack.append(n.name)
                    self.generic_visit(n)
                    stack.pop()

                visit_AsyncFunctionDef = visit_FunctionDef
                visit_ClassDef = visit_FunctionDef

                def visit_Call(self, n):
                    fn = n.func
                    level = None
                    if isinstance(fn, ast.Name) and fn.id == "spend_log_error":
                        level = "ERROR"
                    elif isinstance(fn, ast.Attribute) and fn.attr in LEVELS:
                        base = ast.unparse(fn.value).lower()
                        if "logger" in base or base in ("logging", "log", "_log"):
                            level = {"warn": "WARNING", "exception": "ERROR"}.get(
                                fn.attr, fn.attr.upper()
                            )
                    if level:
                        msg = template(n.args[0]) if n.args else "{…}"
                        out.append((f"{rel}:{'.'.join(stack) or '<module>'}", level, msg))
                    self.generic_visit(n)

            Visitor().visit(tree)
            yield from out


def key(text):
    """Comparable form of a template: fields and numbers erased."""
    text = text.split("\\n")[0].split("\n")[0]
    text = re.sub(r"\{[^}]*\}|%[-0-9.]*[sdrfi]|[0-9]+", "#", text)
    return re.sub(r"\s+", " ", text).strip()


def literal_chunks(text):
    return [c.strip() for c in re.split(r"\{[^}]*\}", text.split("\\n")[0]) if len(c.strip()) >= 12]


def main(argv):
    if len(argv) == 3 and argv[1] == "extract":
        print("source\tlevel\ttemplate")
        for src, level, msg in sorted(set(calls(argv[2]))):
            print(f"{src}\t{level}\t{json.dumps(msg)[1:-1]}")
        return 0
    if len(argv) == 4 and argv[1] == "check":
        rows = [l.split("\t") for l in open(argv[2], encoding="utf-8").read().splitlines()[1:] if l]
        root = argv[3]
        sources = {}
        for d, _, files in os.walk(os.path.join(root, "litellm")):
            for f in files:
                if f.endswith(".py"):
                    p = os.path.join(d, f)
                    sources[p] = open(p, encoding="utf-8", errors="replace").read()
        blob = "\n".join(sources.values())
        status = 0
        for row in rows:
            t = row[0]
            if not row[1].startswith("litellm/"):
                continue  # Uvicorn, apscheduler, Prisma, PostgreSQL texts
            chunks = literal_chunks(t)
            if chunks and not any(c[:22] in blob for c in chunks):
                print(f"GONE\t{t}")
                status = 1
        covered = [key(r[0]) for r in rows]
        for src, level, msg in sorted(set(calls(root))):
            k = key(msg)
            if len(k) < 8 or any(k.startswith(c[:30]) or c.startswith(k[:30]) for c in covered):
                continue
            print(f"UNREVIEWED\t{src}\t{level}\t{json.dumps(msg)[1:-1][:160]}")
        return status
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
