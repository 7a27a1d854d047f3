"""The Validation pane runs the credential trace (t) and shows where each secret was found."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from textual.widgets import DataTable, Static

from opsdash.demo.httpserver import Request, Response
from opsdash.tui.app import OpsdashApp
from opsdash.tui.panes.validation import ValidationPane
from tests.conftest import Project
from tests.servers import ThreadedHttpServer
from tests.tui.conftest import SIZE, until


def text_of(app: OpsdashApp, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


@pytest.fixture
def leaking_site(project: Project) -> Iterator[tuple[ThreadedHttpServer, str]]:
    secret = next(
        line.split("=", 1)[1]
        for line in project.env_file.read_text().splitlines()
        if line.startswith("IKHOKHA_API_SECRET=")
    )
    pages = {
        "/": b'<!doctype html><script type="module" src="/assets/index-1a2b.js"></script>',
        "/assets/index-1a2b.js": f'import"./x.css";\nconst a=1;\nconst s="{secret}";\n'.encode(),
    }

    async def handler(req: Request) -> Response:
        body = pages.get(req.path)
        return Response(200, body) if body is not None else Response(404, b"")

    site = ThreadedHttpServer(handler)
    text = re.sub(
        r'^base_url = ".*"$',
        f'base_url = "{site.base_url}/"',
        project.profile.read_text(),
        count=1,
        flags=re.M,
    )
    project.profile.write_text(text)
    yield site, secret
    site.close()


async def test_the_trace_shows_where_the_secret_was_found(
    project: Project, leaking_site: tuple[ThreadedHttpServer, str]
) -> None:
    site, secret = leaking_site
    url = f"{site.base_url}/assets/index-1a2b.js"
    app = OpsdashApp.on_profile(project.profile, record=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: text_of(app, "#verdict").startswith("GO"))
        await pilot.press("t")
        table = app.query_one("#findings", DataTable)

        def rules() -> list[str]:
            return [str(table.get_row_at(i)[2]) for i in range(table.row_count)]

        await until(pilot, lambda: "secret-served-live" in rules())
        assert "trace: " in text_of(app, "#verdict")
        pane = app.query_one(ValidationPane)
        table.move_cursor(row=rules().index("secret-served-live"))
        await until(pilot, lambda: "found at:" in text_of(app, "#detail"))
        detail = text_of(app, "#detail")
        assert f"found at: {url}, line 3 (script)" in detail, detail
        current = pane.current()
        assert current is not None and current.subject == url
        assert secret not in app.export_screenshot()
