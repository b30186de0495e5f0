#!/usr/bin/env python3
"""A pod for one proxy run: a PID namespace of its own, as Kubernetes gives
a pod with ``shareProcessNamespace: true``, with the proxy and (optionally)
the sidecar in it.

    pod.py --proc DIR [--sidecar-config CFG --sidecar-log LOG --sidecar-bin BIN] -- ARGV...

This process (outside) unshares a PID and a mount namespace and forks the
pod's PID 1 (the "pause" process: reaps orphans, forwards SIGTERM). PID 1
mounts the namespace's procfs at ``DIR`` — only inside the new mount
namespace, so nothing leaks onto the host and nothing needs unmounting —
starts the sidecar (``BIN run --config CFG``, output to ``LOG``, the
environment of this process minus ``DATABASE_URL``: ``inject`` does not hand
the sidecar the database URL), then execs the proxy as its second process with
this process's stdout/stderr (the capture's pipes). ``/proc`` itself stays
the host's procfs, so the harness's pids (the stand-in records
``/proc/self``) keep working; the sidecar reads ``DIR``, where it sees only
the pod: pause, itself, the proxy, its workers and their engines.

Signals: SIGTERM/SIGINT to this process go to PID 1, which sends SIGTERM to
the proxy (the kubelet signals the container's main process). When the
proxy exits, the sidecar gets SIGTERM, PID 1 exits with the proxy's status
and the kernel kills whatever is left in the namespace (stray engines).
This process exits with the same status (128 + signal when killed).

Needs root (or CAP_SYS_ADMIN) for the namespaces and the mount.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _status(st: int) -> int:
    if os.WIFEXITED(st):
        return os.WEXITSTATUS(st)
    if os.WIFSIGNALED(st):
        return 128 + os.WTERMSIG(st)
    return 1


def pause(a) -> int:
    """PID 1 of the pod."""
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    _check(_libc.mount(b"proc", os.fsencode(a.proc), b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                       None), f"mount proc on {a.proc}")
    sidecar = None
    if a.sidecar_bin:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        log = os.open(a.sidecar_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sidecar = os.fork()
        if sidecar == 0:
            os.dup2(log, 1)
            os.dup2(log, 2)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.execve(a.sidecar_bin, [a.sidecar_bin, "run", "--config", a.sidecar_config], env)
        os.close(log)
    proxy = os.fork()
    if proxy == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execvp(a.argv[0], a.argv)

    def forward(signum, _frame):
        try:
            os.kill(proxy, signal.SIGTERM)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 1
    while True:
        try:
            pid, st = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == proxy:
            code = _status(st)
            break
        if pid == sidecar:
            sidecar = None
    if sidecar is not None:
        try:
            os.kill(sidecar, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(sidecar, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                break
            time.sleep(0.05)
    return code


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proc", required=True, help="where the pod's procfs is mounted (a directory)")
    ap.add_argument("--sidecar-bin")
    ap.add_argument("--sidecar-config")
    ap.add_argument("--sidecar-log")
    ap.add_argument("argv", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    if a.argv[:1] == ["--"]:
        a.argv = a.argv[1:]
    if not a.argv:
        ap.error("no proxy command")
    _check(_libc.unshare(CLONE_NEWPID | CLONE_NEWNS), "unshare(CLONE_NEWPID|CLONE_NEWNS)")
    child = os.fork()
    if child == 0:
        try:
            code = pause(a)
        except BaseException as e:  # PID 1 must not die with a traceback unreported
            sys.stderr.write(f"pod.py: {e}\n")
            code = 125
        os._exit(code)

    def forward(signum, _frame):
        try:
            os.kill(child, signal.SIGTERM)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            _, st = os.waitpid(child, 0)
            return _status(st)
        except InterruptedError:
            continue


if __name__ == "__main__":
    sys.exit(main())
