"""A backend that cannot be reached is one line on stderr and a non-zero exit, never a
traceback, whichever backend and whichever command (issue 14, item 3).

``conveyor.BackendUnavailable`` is exit 3; so is anything else a backend raises
once opened (a third-party driver's own connection error); what it raises while
being opened (usually a bad URL) is exit 1.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cli_support import conveyor, one_line_error
from cli_support.fake_plugins import make_network_site

UNAVAILABLE = 3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


COMMANDS = [
    ["stats"],
    ["tasks"],
    ["queues"],
    ["workers"],
    ["show", "0" * 26],
    ["push", '{"to": "a@example.com"}'],
    ["vacuum"],
    ["resume", "--abandoned"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_dead_redis_is_one_line_for_every_command(tmp_path: Path, command: list[str]) -> None:
    port = _free_port()
    result = conveyor("-b", f"redis://127.0.0.1:{port}/0", *command, cwd=tmp_path)
    line = one_line_error(result)
    assert result.returncode != 0
    assert str(port) in line


def test_a_dead_redis_for_a_bulk_push_is_one_line(tmp_path: Path) -> None:
    port = _free_port()
    result = conveyor(
        "-b", f"redis://127.0.0.1:{port}/0", "push", "--from", "-", cwd=tmp_path, stdin="1\n2\n"
    )
    line = one_line_error(result)
    assert result.returncode != 0 and str(port) in line


def test_a_port_out_of_range_is_one_line(tmp_path: Path) -> None:
    result = conveyor("-b", "redis://127.0.0.1:99999/0", "stats", cwd=tmp_path)
    assert result.returncode != 0
    assert "port" in one_line_error(result).lower()


@pytest.fixture
def site(tmp_path: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(make_network_site(tmp_path))}


@pytest.mark.parametrize("command", [["stats"], ["tasks"], ["push", "1"]], ids=lambda c: c[0])
def test_a_third_party_drivers_own_error_is_one_line_and_exit_3(
    tmp_path: Path, site: dict[str, str], command: list[str]
) -> None:
    result = conveyor("-b", "fakenet://?fail=driver", *command, cwd=tmp_path, env=site)
    line = one_line_error(result)
    assert result.returncode == UNAVAILABLE
    # The driver's message ends in a period: the line ends once, and names no Python call.
    assert line == (
        "conveyor: error: backend 'fakenet' failed: DriverError: Error 111 connecting to"
        " 127.0.0.1:1. Connection refused"
    )


def test_backend_unavailable_is_printed_as_raised_and_exit_3(
    tmp_path: Path, site: dict[str, str]
) -> None:
    result = conveyor("-b", "fakenet://?fail=unavailable", "stats", cwd=tmp_path, env=site)
    assert result.returncode == UNAVAILABLE
    assert one_line_error(result) == (
        "conveyor: error: fakenet 127.0.0.1:1 does not answer (connection refused);"
        " start it or fix the URL"
    )


def test_an_error_while_opening_names_the_backend_and_exits_1(
    tmp_path: Path, site: dict[str, str]
) -> None:
    result = conveyor("-b", "fakenet://?fail=open", "stats", cwd=tmp_path, env=site)
    assert result.returncode == 1
    assert one_line_error(result) == (
        "conveyor: error: cannot open backend 'fakenet': DriverError: port 99999 is out of"
        " range 0-65535"
    )


def test_a_bulk_push_that_fails_midway_says_what_was_stored(
    tmp_path: Path, site: dict[str, str]
) -> None:
    result = conveyor(
        "-b", "fakenet://?fail=driver", "push", "--from", "-",
        cwd=tmp_path, env=site, stdin="".join(f"{i}\n" for i in range(1500)),
    )  # fmt: skip
    line = one_line_error(result)
    assert result.returncode == UNAVAILABLE
    assert "DriverError" in line
    assert "lines 1-1000 were being pushed and may or may not be stored" in line


def test_the_traceback_is_there_for_a_bug_report_when_asked_for(
    tmp_path: Path, site: dict[str, str]
) -> None:
    env = {**site, "CONVEYOR_TRACEBACK": "1"}
    result = conveyor("-b", "fakenet://?fail=driver", "stats", cwd=tmp_path, env=env)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "DriverError" in result.stderr


def test_a_burst_worker_on_an_unreachable_backend_exits_3_with_one_error_line(
    tmp_path: Path, site: dict[str, str]
) -> None:
    (tmp_path / "jobs.py").write_text("def handle(args):\n    return args\n")
    result = conveyor(
        "-b", "fakenet://?fail=driver", "worker", "jobs:handle", "--burst", cwd=tmp_path, env=site
    )
    assert result.returncode == UNAVAILABLE, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("conveyor: error:")]
    assert len(errors) == 1 and "fakenet" in errors[0] and "DriverError" in errors[0]
