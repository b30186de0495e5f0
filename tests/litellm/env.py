"""Per-release environments for the real-LiteLLM end-to-end suite.

One cached venv per LiteLLM release with the proxy's requirements, and the
prisma client generated with the Prisma CLI from npm at the version that
release's prisma-client-py expects. Everything large lives in the cache dir
(``LITELLM_E2E_CACHE``, default ``~/.cache/litellm-sentinel-e2e``), never in git.

When PyPI or npm cannot be reached the build fails with a message saying so:
this suite never skips silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


@dataclass(frozen=True)
class Release:
    """A LiteLLM release and what it takes to install its proxy here."""

    version: str
    # `proxy` extra pins that are not on PyPI, replaced by ones that are.
    replace: dict = field(default_factory=dict)
    # `proxy` extra requirements dropped (not on PyPI, not needed to run).
    drop: tuple = ()


# Newest release on PyPI when this suite was built (2026-12-01, `pip index
# versions litellm`), and the user's version.
NEWEST = "1.110.2"
USER = "1.83.14"

RELEASES = {
    NEWEST: Release(
        NEWEST,
        replace={
            "litellm-proxy-extras": "0.4.110",
            "litellm-enterprise": "0.1.83",
            "prisma": "0.15.0",
        },
        drop=("litellm-proxy",),
    ),
    USER: Release(USER),
}

# Python packages the harness itself needs inside each venv (the engine
# stand-in's PostgreSQL driver).
HARNESS_REQS = ["pg8000==1.31.2"]


class EnvError(RuntimeError):
    """Building an environment failed; the message says what to do."""


def cache_dir() -> Path:
    d = os.environ.get("LITELLM_E2E_CACHE")
    p = Path(d) if d else Path.home() / ".cache" / "litellm-sentinel-e2e"
    p.mkdir(parents=True, exist_ok=True)
    return p


def _run(cmd, *, what: str, env=None, cwd=None, net: str = "") -> str:
    """Runs ``cmd``; on failure raises EnvError naming ``what`` and, for
    network steps, saying which registry could not be reached."""
    proc = subprocess.run(
        [str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        hint = ""
        if net and re.search(
            r"(Could not find a version|No matching distribution|Connection|connect|"
            r"Network is unreachable|Temporary failure in name resolution|ENOTFOUND|"
            r"EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|Max retries)",
            tail,
        ):
            hint = f"\n=> {net} could not be reached (or lacks the package): this suite needs it to build its cache."
        raise EnvError(f"{what} failed (exit {proc.returncode}):\n{tail}{hint}")
    return proc.stdout


def _pip_env(cache: Path) -> dict:
    env = dict(os.environ)
    env["PIP_CACHE_DIR"] = str(cache / "pip")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _wheel(rel: Release, cache: Path) -> Path:
    wheels = cache / "wheels"
    wheels.mkdir(exist_ok=True)
    found = sorted(wheels.glob(f"litellm-{rel.version}-*.whl"))
    if not found:
        _run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-d", wheels,
             f"litellm=={rel.version}"],
            what=f"downloading litellm {rel.version} from PyPI",
            env=_pip_env(cache),
            net="PyPI",
        )
        found = sorted(wheels.glob(f"litellm-{rel.version}-*.whl"))
    if not found:
        raise EnvError(f"no wheel for litellm {rel.version} in {wheels}")
    return found[0]


_MARKER_EXTRA = re.compile(r"\s*(?:and\s+)?extra\s*==\s*['\"]([a-z0-9_-]+)['\"]\s*")


def requirements(rel: Release, wheel: Path) -> list[str]:
    """The `proxy` extra's requirements of ``wheel`` (plus prisma, the
    ``extra-proxy`` DB client), with this release's replacements."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = z.read(name).decode()
    out = []
    for line in meta.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = line.split(":", 1)[1].strip()
        spec, _, marker = req.partition(";")
        m = _MARKER_EXTRA.search(marker)
        if not m:
            continue  # base requirements come with the wheel itself
        extra = m.group(1)
        pkg = re.split(r"[\s\[<>=!~]", spec.strip(), maxsplit=1)[0].lower()
        if extra == "extra-proxy" and pkg == "prisma":
            pass
        elif extra != "proxy":
            continue
        if pkg in rel.drop:
            continue
        if pkg in rel.replace:
            spec = f"{pkg}=={rel.replace[pkg]}"
        rest = _MARKER_EXTRA.sub(" ", marker).strip()
        rest = re.sub(r"^and\s+|\s+and$", "", rest).strip()
        out.append(f"{spec.strip()} ; {rest}" if rest else spec.strip())
    return out


def venv_dir(version: str) -> Path:
    return cache_dir() / f"venv-{version}"


def python(version: str) -> Path:
    return venv_dir(version) / "bin" / "python"


def ensure_venv(version: str) -> Path:
    """The venv for ``version``, built once and reused while its inputs
    (requirements, harness requirements) are unchanged."""
    rel = RELEASES[version]
    cache = cache_dir()
    wheel = _wheel(rel, cache)
    reqs = requirements(rel, wheel) + HARNESS_REQS
    digest = hashlib.sha256(
        json.dumps([wheel.name, reqs, sys.version]).encode()
    ).hexdigest()[:16]
    venv = venv_dir(version)
    stamp = venv / ".sentinel-stamp"
    if stamp.exists() and stamp.read_text() == digest:
        return venv
    if venv.exists():
        shutil.rmtree(venv)
    _run([sys.executable, "-m", "venv", venv], what=f"creating venv {venv}")
    reqfile = venv / "requirements.txt"
    reqfile.write_text("\n".join(reqs) + "\n")
    _run(
        [venv / "bin" / "python", "-m", "pip", "install", "--prefer-binary",
         wheel, "-r", reqfile],
        what=f"installing litellm {version} with its proxy requirements from PyPI",
        env=_pip_env(cache),
        net="PyPI",
    )
    stamp.write_text(digest)
    return venv


def site_packages(version: str) -> Path:
    return next((venv_dir(version) / "lib").glob("python3*/site-packages"))


def prisma_versions(version: str) -> tuple[str, str]:
    """(Prisma CLI version, engine hash) the installed prisma-client-py expects
    (cached in the venv: importing the generated client takes seconds)."""
    cached = venv_dir(version) / ".sentinel-prisma-versions.json"
    if cached.exists():
        cli, engine = json.loads(cached.read_text())
        return cli, engine
    out = _run(
        [python(version), "-c",
         "import json; from prisma import config as c; "
         "print(json.dumps([c.prisma_version, c.expected_engine_version]))"],
        what="reading prisma-client-py's expected Prisma version",
    )
    cli, engine = json.loads(out)
    cached.write_text(json.dumps([cli, engine]))
    return cli, engine


def ensure_prisma_cli(cli_version: str) -> Path:
    """The Prisma CLI from npm at ``cli_version``, installed in the cache."""
    d = cache_dir() / f"npm-prisma-{cli_version}"
    binp = d / "node_modules" / ".bin" / "prisma"
    if binp.exists():
        return binp
    d.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["npm_config_cache"] = str(cache_dir() / "npm")
    env["PRISMA_SKIP_POSTINSTALL_GENERATE"] = "1"
    env["PRISMA_GENERATE_SKIP_AUTOINSTALL"] = "1"
    _run(
        ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts",
         "--prefix", d, f"prisma@{cli_version}"],
        what=f"installing prisma@{cli_version} from the npm registry",
        env=env,
        net="the npm registry",
    )
    if not binp.exists():
        raise EnvError(f"npm installed prisma@{cli_version} but {binp} is missing")
    return binp


def engine_env(version: str, engine_hash: str) -> dict:
    """Environment that makes the Prisma CLI and prisma-client-py use the
    stand-in engine instead of downloading binaries."""
    stand_in = HERE / "engine_standin.py"
    return {
        "PRISMA_QUERY_ENGINE_BINARY": str(engine_wrapper(version)),
        # `prisma generate` wants a schema engine too; it only asks its version.
        "PRISMA_SCHEMA_ENGINE_BINARY": str(engine_wrapper(version)),
        "PRISMA_CLI_QUERY_ENGINE_TYPE": "binary",
        "PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING": "1",
        "SENTINEL_ENGINE_HASH": engine_hash,
        "SENTINEL_ENGINE_STANDIN": str(stand_in),
    }


def engine_wrapper(version: str) -> Path:
    """An executable named like the debian engine build that runs the
    stand-in in this release's venv: a ``#!`` script, so the kernel names the
    process after it (``comm`` ``query-engine-de``, as for the real binary)
    and the stand-in can make its cmdline the real engine's (see
    ``engine_standin.set_engine_cmdline``). One per checkout (under its
    ``target/``): the cache is shared by checkouts, and a wrapper there would
    point at whichever checkout wrote it last."""
    d = REPO / "target" / "litellm-e2e" / f"engine-{version}"
    d.mkdir(parents=True, exist_ok=True)
    w = d / "query-engine-debian-openssl-3.0.x"
    body = (
        f"#!{python(version)}\n"
        "# the query-engine stand-in of tests/litellm (engine_standin.py)\n"
        "import sys\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "import engine_standin\n"
        "sys.exit(engine_standin.main(sys.argv[1:], sys.argv[0]))\n"
    )
    if not w.exists() or w.read_text() != body:
        tmp = w.with_suffix(".tmp")
        tmp.write_text(body)
        tmp.chmod(0o755)
        tmp.replace(w)
    return w


def ensure_client(version: str) -> None:
    """Generates the prisma client from LiteLLM's schema.prisma into the
    venv's ``prisma`` package (once per venv)."""
    venv = venv_dir(version)
    stamp = venv / ".sentinel-prisma-generated"
    if stamp.exists():
        return
    cli_version, engine_hash = prisma_versions(version)
    cli = ensure_prisma_cli(cli_version)
    schema = site_packages(version) / "litellm" / "proxy" / "schema.prisma"
    if not schema.exists():
        raise EnvError(f"{schema} not found in the litellm {version} wheel")
    env = dict(os.environ)
    env.update(engine_env(version, engine_hash))
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    env["PRISMA_HIDE_UPDATE_MESSAGE"] = "1"
    env["CHECKPOINT_DISABLE"] = "1"
    env["npm_config_cache"] = str(cache_dir() / "npm")
    _run(
        [cli, "generate", "--schema", schema],
        what=f"prisma generate (prisma@{cli_version}) for litellm {version}",
        env=env,
        cwd=schema.parent,
        net="the Prisma CLI (npm) / binaries",
    )
    stamp.write_text(cli_version)


def ensure(version: str) -> Path:
    ensure_venv(version)
    ensure_client(version)
    return venv_dir(version)


if __name__ == "__main__":
    try:
        for v in sys.argv[1:] or [NEWEST, USER]:
            print(f"env {v}: {ensure(v)}", flush=True)
    except EnvError as e:
        print(f"litellm e2e: {e}", file=sys.stderr)
        sys.exit(2)
