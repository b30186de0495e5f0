"""Tops up a database migrated from litellm-proxy-extras to what a release's
``schema.prisma`` declares.

Newer LiteLLM releases use tables and columns that the newest
litellm-proxy-extras on PyPI does not create yet (1.110.2:
``LiteLLM_SpendLogDelivery`` and its enum, among others). The real set-up runs
``prisma db push`` with the schema engine, which cannot be downloaded here,
so this creates what is missing from the schema file itself: enums, tables
(columns, primary key, defaults, unique constraints) and columns. It never
drops or alters what exists.
"""

from __future__ import annotations

import re
from pathlib import Path

SCALARS = {
    "String": "TEXT", "Int": "INTEGER", "BigInt": "BIGINT", "Float": "DOUBLE PRECISION",
    "Boolean": "BOOLEAN", "DateTime": "TIMESTAMP(3)", "Json": "JSONB",
    "Decimal": "DECIMAL(65,30)", "Bytes": "BYTEA",
}


def _blocks(text: str, kind: str):
    for m in re.finditer(rf"^{kind}\s+(\w+)\s*\{{(.*?)^\}}", text, re.M | re.S):
        yield m.group(1), m.group(2)


def parse(schema: Path):
    text = re.sub(r"//[^\n]*", "", schema.read_text())
    enums = {n: re.findall(r"^\s*(\w+)\s*$", b, re.M) for n, b in _blocks(text, "enum")}
    models = {}
    for name, body in _blocks(text, "model"):
        table = name
        m = re.search(r'@@map\("([^"]+)"\)', body)
        if m:
            table = m.group(1)
        cols, pk, uniques = [], [], []
        for line in body.splitlines():
            line = line.strip()
            if not line or line.startswith("@@"):
                um = re.match(r"@@(id|unique)\(\[([^\]]+)\]", line)
                if um:
                    names = [x.strip() for x in um.group(2).split(",")]
                    (pk.extend(names) if um.group(1) == "id" else uniques.append(names))
                continue
            fm = re.match(r"(\w+)\s+(\w+)(\[\])?(\?)?\s*(.*)", line)
            if not fm:
                continue
            fname, ftype, arr, opt, attrs = fm.groups()
            if ftype not in SCALARS and ftype not in enums:
                continue  # a relation field
            col = fname
            mm = re.search(r'@map\("([^"]+)"\)', attrs)
            if mm:
                col = mm.group(1)
            sqlt = SCALARS.get(ftype) or f'"{ftype}"'
            if arr:
                sqlt += "[]"
            default = None
            dm = re.search(r"@default\((.*?)\)(?:\s|$)", attrs + " ")
            if dm:
                d = dm.group(1)
                if d.startswith("now("):
                    default = "CURRENT_TIMESTAMP"
                elif d.startswith(("uuid(", "cuid(", "autoincrement(", "dbgenerated(")):
                    default = None
                elif d.startswith('"'):
                    default = "'" + d.strip('"').replace("'", "''") + "'"
                elif d in ("true", "false") or re.fullmatch(r"-?\d+(\.\d+)?", d):
                    default = d
                elif d == "[]":
                    default = "ARRAY[]::" + sqlt
                elif ftype in enums:
                    default = f"'{d}'"
                if d.startswith("autoincrement("):
                    sqlt = "SERIAL" if ftype == "Int" else "BIGSERIAL"
            if "@id" in attrs:
                pk.append(col)
            if re.search(r"@unique\b", attrs):
                uniques.append([col])
            cols.append({"col": col, "type": sqlt, "null": bool(opt), "default": default})
        models[table] = {"cols": cols, "pk": pk, "uniques": uniques}
    return enums, models


def statements(schema: Path, existing_enums: set, existing: dict) -> list[str]:
    """SQL for what ``existing`` ({table: {columns}}) lacks."""
    enums, models = parse(schema)
    out = []
    for e, vals in enums.items():
        if e not in existing_enums:
            out.append(f'CREATE TYPE "{e}" AS ENUM (' + ", ".join(f"'{v}'" for v in vals) + ")")
    for table, m in models.items():
        if table not in existing:
            parts = []
            for c in m["cols"]:
                s = f'"{c["col"]}" {c["type"]}'
                if not c["null"]:
                    s += " NOT NULL"
                if c["default"] is not None:
                    s += f' DEFAULT {c["default"]}'
                parts.append(s)
            if m["pk"]:
                parts.append("PRIMARY KEY (" + ", ".join(f'"{p}"' for p in m["pk"]) + ")")
            for u in m["uniques"]:
                parts.append("UNIQUE (" + ", ".join(f'"{x}"' for x in u) + ")")
            out.append(f'CREATE TABLE "{table}" (' + ", ".join(parts) + ")")
            continue
        for c in m["cols"]:
            if c["col"] not in existing[table]:
                s = f'ALTER TABLE "{table}" ADD COLUMN "{c["col"]}" {c["type"]}'
                if c["default"] is not None:
                    s += f' DEFAULT {c["default"]}'
                if not c["null"] and c["default"] is not None:
                    s += " NOT NULL"
                out.append(s)
    return out
