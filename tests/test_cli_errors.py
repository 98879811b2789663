"""Every user mistake is one line on stderr and exit 1; a missing capability is exit 2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cli_support import conveyor, one_line_error
from cli_support.fake_plugins import make_site

USER_MISTAKES = [
    # (arguments, words the one-line message must contain)
    (["-b", "memroy://", "push", "1"], ["'memroy'", "Did you mean 'memory'", "memory ("]),
    (["-b", "memory://?colour=red", "push", "1"], ["colour", "Valid keys", "queue"]),
    (["-b", "memory://", "push", "{'to': 1}"], ["PAYLOAD_JSON is not valid JSON", "column 2"]),
    (["-b", "memory://", "push", "NaN"], ["NaN is not JSON"]),
    (["-b", "memory://", "worker", "no_such_module:handle"], ["'no_such_module'", "looked in"]),
    (["-b", "memory://", "worker", "json:no_such_function"], ["has no 'no_such_function'"]),
    (["-b", "memory://", "worker", "json"], ["not MODULE:FUNCTION"]),
    (["-b", "memory://", "show", "not-an-id"], ["'not-an-id' is not a task id", "26"]),
    (["-b", "memory://", "show", "0" * 26], ["no task 00000000000000000000000000"]),
    (["-b", "memory://", "tasks", "--status", "finished"],
     ["argument --status/-s:", "unknown status 'finished'", "Done"]),
    (["-b", "memory://", "tasks", "--page", "0"], ["argument --page:", "from 1"]),
    (["-b", "memory://", "tasks", "--page-size", "5000"],
     ["argument --page-size:", "'5000'", "from 1 to 1,000"]),
    (["-b", "memory://", "tasks", "--page-size", "ten"], ["--page-size", "not a whole number"]),
    (["-b", "memory://", "tasks", "--name", ""], ["argument --name", "1 to 200"]),
    (["-b", "memory://", "tasks", "--queue", ""], ["argument --queue", "non-empty"]),
    (["-b", "memory://", "stats", "--queue", ""], ["argument --queue", "non-empty"]),
    (["-b", "memory://", "workers", "--queue", ""], ["argument --queue", "non-empty"]),
    (["-b", "memory://", "worker", "json:dumps", "--queue", ""],
     ["argument --queue", "non-empty"]),
    (["-b", "memory://", "worker", "json:dumps", "--grace", "1e300"],
     ["argument --grace", "more than a year"]),
    (["-b", "memory://", "worker", "json:dumps", "--concurrency", "0"],
     ["argument --concurrency", "from 1 to 100,000"]),
    (["-b", "memory://", "worker", "json:dumps", "-c", "99999999999999999999"],
     ["argument --concurrency", "from 1 to 100,000"]),
    (["-b", "memory://", "worker", "json:dumps", "--name", ""], ["argument --name", "non-empty"]),
    (["-b", "memory://", "push", "--from", "-", "--max-line-bytes", "9" * 30],
     ["argument --max-line-bytes", "out of range"]),
    (["-b", "memory://", "push", "1e999"], ["PAYLOAD_JSON", "1e999 is out of range"]),
    (["-b", "memory://", "push", "1", "--delay", "1e300"],
     ["argument --delay", "past the year 9999", "--at"]),
    (["-b", "memory://", "push", "1", "--delay", "inf"], ["argument --delay", "zero or more"]),
    (["-b", "memory://", "push", "1", "--delay", "-1"], ["argument --delay", "zero or more"]),
    (["-b", "memory://", "push", "1", "--queue", ""], ["argument --queue", "non-empty"]),
    (["-b", "memory://", "push", "1", "--queue", "x" * 201], ["argument --queue", "at most 200"]),
    (["-b", "memory://", "push", "1", "--name", ""], ["argument --name", "1 to 200"]),
    (["-b", "memory://", "push", "1", "--priority", "high"], ["argument --priority", "whole"]),
    (["-b", "memory://", "push", "1", "--max-attempts", "0"], ["--max-attempts", "at least 1"]),
    (["-b", "memory://", "push", "1", "--at", "soon"], ["argument --at", "ISO 8601"]),
    (["-b", "memory://", "push", '"\\ud800"'], ["lone surrogate (\\ud800)", "PAYLOAD_JSON"]),
    (["-b", "memory://", "show", "0" * 26, "--json", "--bogus"], ["unrecognized arguments"]),
    (["-b", "memory://", "push", "1", "--delay", "5", "--at", "2030-01-01T00:00:00Z"],
     ["not allowed with argument"]),
    (["-b", "memory://", "push", "1", "--at", "2030-01-01T09:00"], ["no time zone"]),
    (["-b", "memory://", "push"], ["either PAYLOAD_JSON or --from FILE"]),
    (["-b", "memory://", "push", "--from", "missing.jsonl"], ["cannot read missing.jsonl"]),
    (["-b", "memory://", "resume"], ["either TASK_ID or --abandoned"]),
    (["push", "1"], ["no backend given", "CONVEYOR_BACKEND", "[tool.conveyor]"]),
    (["-b", "memory://", "frobnicate"], ["invalid choice: 'frobnicate'"]),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "words"), USER_MISTAKES, ids=lambda v: " ".join(v)[:40])
def test_a_user_mistake_is_one_line_and_exit_1(
    tmp_path: Path, argv: list[str], words: list[str]
) -> None:
    result = conveyor(*argv, cwd=tmp_path)
    line = one_line_error(result)
    assert result.returncode == 1
    assert result.stdout == ""
    for word in words:
        assert word in line


def test_an_error_inside_the_handler_module_names_its_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "jobs.py").write_text("import os\n\nraise KeyError('SMTP_HOST')\n")
    result = conveyor("-b", "memory://", "worker", "jobs:send", cwd=tmp_path)
    line = one_line_error(result)
    assert result.returncode == 1
    assert "KeyError" in line and "SMTP_HOST" in line and "jobs.py, line 3" in line


@pytest.mark.parametrize(
    ("argv", "capability"),
    [
        (["push", "1"], "push"),
        (["show", "0" * 26], "fetch_by_id"),
        (["tasks"], "list_all_tasks"),
        (["tasks", "--queue", "mail"], "list_tasks"),
        (["queues", "--json"], "list_queues"),
        (["workers"], "list_workers"),
        (["stats"], "metrics"),
        (["vacuum"], "vacuum"),
        (["resume", "0" * 26], "resume_by_id"),
        (["resume", "--abandoned"], "resume_abandoned"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_a_missing_capability_names_backend_capability_and_providers_and_exits_2(
    tmp_path: Path, argv: list[str], capability: str
) -> None:
    site = make_site(tmp_path)
    result = conveyor("-b", "minimal://", *argv, cwd=tmp_path, env={"PYTHONPATH": str(site)})
    line = one_line_error(result)
    assert result.returncode == 2
    assert f"backend 'minimal' does not support '{capability}'" in line
    assert "installed backends that do:" in line and "memory" in line


def test_a_bulk_push_to_a_backend_without_push_reads_nothing(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    result = conveyor(
        "-b", "minimal://", "push", "--from", "-", cwd=tmp_path,
        env={"PYTHONPATH": str(site)}, stdin="1\n{oops\n",
    )  # fmt: skip
    assert result.returncode == 2
    assert "does not support 'push'" in one_line_error(result)


def test_a_plugin_that_fails_to_import_is_a_one_line_error(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    result = conveyor("-b", "fakebroken://", "stats", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    line = one_line_error(result)
    assert result.returncode == 1
    assert "conveyor-fake-broken" in line and "simulated import failure" in line


def test_configuration_comes_from_flag_then_environment_then_pyproject(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    # A query key memory refuses proves which source was read.
    (project / "pyproject.toml").write_text(
        '[tool.conveyor]\nbackend = "memory://?from_pyproject=1"\n'
    )
    from_toml = conveyor("stats", cwd=project / "src")
    assert from_toml.returncode == 1
    assert "from_pyproject" in one_line_error(from_toml)

    env = {"CONVEYOR_BACKEND": "memory://?from_env=1"}
    from_env = conveyor("stats", cwd=project / "src", env=env)
    assert "from_env" in one_line_error(from_env)

    from_flag = conveyor("stats", "-b", "memory://", "--json", cwd=project / "src", env=env)
    assert from_flag.returncode == 0, from_flag.stderr
    assert '"title"' in from_flag.stdout
