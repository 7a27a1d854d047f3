"""A command step's process: its own process group under a wrapper that writes the exit code
beside the output file, output followed from that file (masked on its way there), and the checks
a restarted opsdash uses to tell whether a command left by another one still runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from opsdash.core.files import open_private
from opsdash.core.runbooks.state import MAX_OUTPUT, CommandControl
from opsdash.core.secrets import redactor

# The step's shell runs under a small wrapper that writes its exit code beside the output file, so a
# command that outlives a killed opsdash still leaves both for the next one to collect.
# It first writes its own pid (the process group's id): an opsdash killed before it saved the pid
# still leaves the next one a way to find the command.
# The command's output reaches the file only through opsdash's masking filter (maskfilter.py), which
# reads the secrets from fd 3 (the wrapper's stdin, a pipe from this process; the command does not
# get it); fd 4 carries the command's exit status out of the pipeline, fd 5 is the output file. The
# filter ignores the signals that stop the command (set before exec, so from its first instruction):
# it writes what the command printed up to its end, then ends itself.
_WRAPPER = (
    'exec 3<&0 5>&1 </dev/null; printf %s "$$" > "$4"; '
    's=$( { { "$3" -c "$1" 3<&- 4>&- 5>&-; printf %s "$?" >&4; } 2>&1 '
    "| ( trap '' TERM INT HUP; exec \"$5\" -P -m opsdash.core.runbooks.maskfilter 4>&- >&5 5>&- ); } 4>&1 ); "
    'exec 3<&- 5>&-; printf %s "$s" > "$2.tmp" && mv -f "$2.tmp" "$2"; exit "$s"'
)


def _feed(fd: int, data: bytes) -> None:
    """Hand the filter its secrets (in a thread: more than a pipe holds must not block the step)."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        pass  # the filter is gone: it wrote nothing, so nothing went to disk unmasked
    finally:
        os.close(fd)


def _status_path(out_path: Path) -> Path:
    return out_path.with_suffix(".status")


def _pid_path(out_path: Path) -> Path:
    return out_path.with_suffix(".pid")


def _pid_left(out_path: Path) -> int | None:
    try:
        return int(_pid_path(out_path).read_text().strip())
    except (OSError, ValueError):
        return None


def _collected(out_path: Path) -> tuple[str, int | None]:
    """What a detached command left: its output (the newest MAX_OUTPUT bytes) and exit code."""
    try:
        with out_path.open("rb") as handle:
            handle.seek(max(0, out_path.stat().st_size - MAX_OUTPUT))
            output = handle.read().decode("utf-8", "replace")
    except OSError:
        output = ""
    try:
        code: int | None = int(_status_path(out_path).read_text().strip())
    except (OSError, ValueError):
        code = None
    return output, code


def _discard(out_path: Path, *, owner: bool = True) -> None:
    """The output is kept (redacted) in the session; the raw file must not linger."""
    for path in (out_path, _status_path(out_path), _pid_path(out_path)):
        path.unlink(missing_ok=True)
    if owner:
        out_path.with_suffix(".owner").unlink(missing_ok=True)


def _started(pid: int) -> str:
    """When a process started (/proc's start time), so a reused pid is not taken for it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rfind(")") + 2 :].split()[19]


def claim_ownership(out_path: Path) -> None:
    """Beside a step this opsdash has just claimed, which process it is: until its command has a
    process group, a second opsdash resuming the session knows the step is being started by a
    live opsdash and waits, instead of taking it for one left by an opsdash that died."""
    out_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    me = os.getpid()
    out_path.with_suffix(".owner").write_text(f"{me} {_started(me)}")


def owner_elsewhere(out_path: Path) -> int | None:
    """The pid of another live opsdash that claimed this step (None: none, it died, or it is us)."""
    try:
        pid_text, _, started = out_path.with_suffix(".owner").read_text().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid if _started(pid) == started.strip() else None


def _run_command(
    script: str,
    timeout: float,
    cwd: Any,
    on_output: Callable[[str], None] | None,
    extra_env: Mapping[str, str],
    on_start: Callable[[int], None],
    out_path: Path,
    control: CommandControl,
) -> tuple[str, int | None, str]:
    """Run a script in its own process group, its output going to `out_path` (which this process
    follows, so the command never dies of a closed pipe if opsdash does); returns (output, exit
    code, detail). The exit code is None when `control` asked to detach: the command runs on."""
    out_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _discard(out_path, owner=False)
    sink = open_private(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    secrets_in, secrets_out = os.pipe()
    try:
        shell = shutil.which("bash") or "/bin/sh"
        status = str(_status_path(out_path))
        args = [script, status, shell, str(_pid_path(out_path)), sys.executable]
        proc = subprocess.Popen(  # noqa: S603 - the script is the runbook's, parameters are shell-quoted
            ["/bin/sh", "-c", _WRAPPER, "opsdash-step", *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=secrets_in,
            cwd=cwd,
            env={**os.environ, **extra_env},
            start_new_session=True,
        )
    except BaseException:
        os.close(secrets_out)
        raise
    finally:
        os.close(sink)
        os.close(secrets_in)
    values, fingerprints = redactor.known()
    known = json.dumps({"values": values, "fingerprints": fingerprints}).encode()
    threading.Thread(target=_feed, args=(secrets_out, known), name="runbook-mask-feed", daemon=True).start()
    on_start(proc.pid)
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + timeout
    detail = ""
    with out_path.open("rb") as follow:
        while True:
            data = follow.read(65536)
            if data:
                chunks.append(data)
                size += len(data)
                while size > MAX_OUTPUT and len(chunks) > 1:
                    size -= len(chunks.pop(0))
                if on_output is not None:
                    on_output(redactor.redact(data.decode("utf-8", "replace")))
                continue
            if proc.poll() is not None:
                _take(follow.read(), chunks, on_output)
                break
            if control.detach.is_set():
                return b"".join(chunks).decode("utf-8", "replace"), None, "detached"
            if control.interrupt.is_set():
                detail = f"interrupted by the operator: {control.reason}" if control.reason else "interrupted"
            elif time.monotonic() > deadline:
                detail = f"timed out after {timeout:g} s; stopped"
            if detail:
                _kill(proc)
                # what the command printed before it stopped is still on its way through the filter
                drained = time.monotonic() + 2.0
                while not _group_gone(proc.pid) and time.monotonic() < drained:
                    time.sleep(0.02)
                _take(follow.read(), chunks, on_output)
                break
            time.sleep(0.02)
    code = proc.wait()
    return b"".join(chunks).decode("utf-8", "replace"), code if not detail else (code or 124), detail


def _take(rest: bytes, chunks: list[bytes], on_output: Callable[[str], None] | None) -> None:
    """The last of a command's output, read after it ended: kept, and shown masked."""
    if rest:
        chunks.append(rest)
        if on_output is not None:
            on_output(redactor.redact(rest.decode("utf-8", "replace")))


def command_alive(pgid: int, session_id: str) -> bool:
    """Whether the process group a step's command started still has a live member (zombies left
    for a reaper do not count). Where /proc shows the leader, its environment must name this
    session, so a reused pid is not mistaken for ours."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    members = _live_members(pgid)
    if members is None:  # no /proc: the group answers signals, so it may still run
        return True
    if pgid not in members:
        return bool(members)  # the leader is gone but the group lives on
    try:
        environ = Path(f"/proc/{pgid}/environ").read_bytes().split(b"\0")
    except OSError:
        return True
    return f"OPSDASH_RUNBOOK_SESSION={session_id}".encode() in environ


def _group_gone(pgid: int) -> bool:
    """Whether no live process of a process group is left (zombies do not count)."""
    members = _live_members(pgid)
    if members is not None:
        return not members
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _live_members(pgid: int) -> set[int] | None:
    """The pids of a process group that are not zombies, from /proc (None without /proc)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    found: set[int] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            found.add(int(entry.name))
    return found


def _kill(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(2)
            return
        except subprocess.TimeoutExpired:
            continue


def _kill_group(pgid: int, grace: float = 2.0) -> None:
    """Stop a process group this process did not start (a command left by an opsdash that died)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
