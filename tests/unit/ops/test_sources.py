"""The watch follows the files it was read from: a changed env file or profile is noticed by its
stamp (inode, size, mtime_ns) and read again, a broken one leaves the last good state with a
message naming the file and line, and the watch loop probes with what the files now say."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.model import CheckResult
from opsdash.core.health.state import SustainedState
from opsdash.core.providers import ikhokha
from opsdash.core.secrets import redactor
from opsdash.demo.httpserver import Request, Response
from opsdash.ops.base import Ops
from opsdash.ops.sources import Reload, Sources
from tests.conftest import Project, fake_secret, good_env
from tests.servers import http_server
from tests.waits import DEADLINE

SECRET = "IKHOKHA_API_SECRET"


def sources(project: Project) -> Sources:
    return Sources(Ops.open(project.profile), lambda profile: list(profile.checks))


def secret_in(change: Reload | Sources) -> str | None:
    assert change.ctx.env is not None
    return change.ctx.env.get(SECRET)


def rewrite_keeping_stamp(path: Path, text: str, *, replace: bool) -> None:
    """New content with the old size and mtime_ns: only the inode (replace) or nothing tells."""
    before = path.stat()
    if replace:
        fresh = path.with_name(path.name + ".tmp")
        fresh.write_text(text)
        os.replace(fresh, path)
    else:
        path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_change_is_noticed_by_inode_size_or_mtime_and_read_again(project: Project) -> None:
    env = good_env()
    project.write_env(env)
    watched = sources(project)
    assert watched.reload() is None  # nothing changed: nothing read

    same_size = fake_secret()[: len(env[SECRET])]
    rewrite_keeping_stamp(
        project.env_file, project.env_file.read_text().replace(env[SECRET], same_size), replace=True
    )
    change = watched.reload()
    assert change is not None and change.problem is None, "a replaced file (new inode) was missed"
    assert change.changed == (project.env_file,) and secret_in(change) == same_size
    assert redactor.redact(same_size) != same_size  # registered with the masker, as at start

    longer = fake_secret() + "x"
    text = project.env_file.read_text().replace(same_size, longer)
    rewrite_keeping_stamp(project.env_file, text, replace=False)
    change = watched.reload()
    assert change is not None and secret_in(change) == longer, "a file of another size was missed"

    os.utime(project.env_file, ns=(0, project.env_file.stat().st_mtime_ns + 1_000_000))  # `touch`
    change = watched.reload()
    assert change is not None and change.problem is None, "a new mtime was missed"
    assert watched.reload() is None


def test_a_broken_env_file_keeps_the_last_good_state_until_it_is_fixed(project: Project) -> None:
    env = good_env()
    project.write_env(env)
    watched = sources(project)
    good = project.env_file.read_text()
    lines = good.splitlines()
    line = next(n for n, text in enumerate(lines, start=1) if text.startswith(f"{SECRET}="))
    lines[line - 1] = f'{SECRET}="{fake_secret()}'  # saved halfway: the closing quote is not there yet
    project.env_file.write_text("\n".join(lines) + "\n")

    change = watched.reload()
    assert change is not None and change.problem is not None
    assert change.problem.startswith(f"{project.env_file}:{line}: cannot parse the value of {SECRET}")
    assert secret_in(change) == secret_in(watched) == env[SECRET]  # the last good credentials
    assert watched.reload() is None  # said once, not on every look

    project.env_file.unlink()  # an editor that writes a new file after removing the old one
    change = watched.reload()
    assert (
        change is not None
        and change.problem == f"{project.env_file}: the env file is gone (deleted, or being saved)"
    )

    fixed = fake_secret()
    project.write_env({**env, SECRET: fixed})
    change = watched.reload()
    assert change is not None and change.problem is None and secret_in(change) == fixed


def test_a_broken_profile_keeps_the_last_good_one_until_it_is_fixed(project: Project) -> None:
    watched = sources(project)
    good = project.profile.read_text()
    lines = good.count("\n")
    project.profile.write_text(good + '\n[[checks]]\nname = "half-saved\n')

    change = watched.reload()
    assert change is not None and change.problem is not None
    assert change.problem.startswith(f"{project.profile}:{lines + 3}:"), change.problem
    assert "invalid TOML" in change.problem
    assert change.ops is watched.ops and not change.ops.profile.checks

    project.profile.write_text(
        good + '\n[[checks]]\nname = "app-port"\nkind = "tcp"\nhost = "127.0.0.1"\nport = 9\n'
    )
    change = watched.reload()
    assert change is not None and change.problem is None
    assert [c.name for c in change.checks] == ["app-port"]
    assert change.ops.profile.checks[0].name == "app-port" and watched.ops is change.ops


async def test_the_watch_loop_probes_with_the_secret_written_while_it_runs(tmp_path: Path) -> None:
    """`check --watch`, `opsdash serve` and the dashboard: the rotated secret is used without a
    restart, and every check is polled with it at once."""
    from opsdash.ops.checks import Watch

    accepted = fake_secret()

    async def api(req: Request) -> Response:
        signature = req.headers.get(ikhokha.SIGN_HEADER.lower(), "")
        if ikhokha.verify(accepted, req.path, req.body, signature):
            return Response.json('{"paylinkID":"x","status":"PAID"}')
        return Response.json('{"message":"Unauthorized"}', 401)

    env, app_id = tmp_path / ".env", f"app-{fake_secret()}"
    env.write_text(f"IKHOKHA_API_KEY={app_id}\n{SECRET}={fake_secret()}\n")
    async with http_server(api) as server:
        profile = tmp_path / "opsdash.toml"
        profile.write_text(
            f"""
[target]
name = "rotation"
base_url = "https://app.example.com"

[env]
files = [".env"]

[provider]
kind = "ikhokha"
api_base = "{server.base_url}/api"
app_id_variable = "IKHOKHA_API_KEY"
secret_variable = "{SECRET}"

[[checks]]
name = "ikhokha-api"
kind = "provider"
interval = 600
retries = 0
"""
        )
        reloads: list[Reload] = []
        seen: list[ErrorClass | None] = []
        watch = Watch(Ops.open(profile), record=False, on_reload=reloads.append)

        def on_result(result: CheckResult, _state: SustainedState) -> None:
            seen.append(result.error_class)
            if len(seen) == 1:  # the secret is rotated in the env file, as the app's operator does
                env.write_text(f"IKHOKHA_API_KEY={app_id}\n{SECRET}={accepted}\n")
            if result.error_class is None:
                watch.stop()

        # the check polls every 600 s: a second result within the deadline is the reload's own poll
        await asyncio.wait_for(watch.run(on_result), DEADLINE)
    assert seen == [ErrorClass.HTTP_AUTH, None]
    assert [(r.changed, r.problem) for r in reloads] == [((env,), None)]
