import pytest
from tests.unit.cli.test_check import FAULT_CASES, demo  # noqa: F401

@pytest.mark.parametrize("fault", sorted(FAULT_CASES) * 3)
def test_dbg(run, demo, fault):  # noqa: F811
    run("demo", "fault", fault, "on")
    try:
        result = run("check", "--config", demo.profile, "--json")
        assert "audit" not in result.err, result.err
    finally:
        run("demo", "fault", fault, "off")
