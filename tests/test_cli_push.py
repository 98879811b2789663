"""``conveyor push``: one task prints its id; a JSON-lines file pushes in chunks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conveyor import TaskId

sys.path.insert(0, str(Path(__file__).parent))
from cli_support import conveyor as run
from cli_support import one_line_error
from cli_support.terminal import in_terminal


def test_push_prints_the_new_task_id(tmp_path: Path) -> None:
    result = run(
        "-b", "memory://", "push", '{"to": "a@example.com"}', "--queue", "mail",
        "--delay", "30", "--priority", "-2", "--max-attempts", "3", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip()
    assert TaskId.parse(printed) == printed


def test_bulk_push_of_10000_lines_prints_the_count(tmp_path: Path) -> None:
    source = tmp_path / "tasks.jsonl"
    source.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(10_000)))
    result = run("-b", "memory://", "push", "--from", str(source), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "10000\n"
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_bulk_push_reads_stdin_and_skips_blank_lines(tmp_path: Path) -> None:
    result = run("-b", "memory://", "push", "--from", "-", cwd=tmp_path, stdin='1\n\n"two"\n[3]')
    assert result.returncode == 0, result.stderr
    assert result.stdout == "3\n"


def test_a_malformed_line_is_named_and_only_whole_chunks_before_it_are_pushed(
    tmp_path: Path,
) -> None:
    lines = [json.dumps({"n": i}) for i in range(3000)]
    lines[1499] = '{"n": 1499'  # line 1500, in the second chunk of 1000
    source = tmp_path / "tasks.jsonl"
    source.write_text("\n".join(lines) + "\n")
    result = run("-b", "memory://", "push", "--from", str(source), cwd=tmp_path)
    line = one_line_error(result)
    assert result.returncode == 1
    assert f"{source} line 1500 is not valid JSON" in line
    assert "the 1000 tasks of lines 1-1000 were pushed, nothing from line 1001 on" in line


def test_a_malformed_first_chunk_pushes_nothing(tmp_path: Path) -> None:
    result = run("-b", "memory://", "push", "--from", "-", cwd=tmp_path, stdin="1\n2\nthree\n")
    line = one_line_error(result)
    assert "stdin line 3 is not valid JSON" in line and "nothing was pushed" in line


def test_an_overlong_line_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    result = run(
        "-b", "memory://", "push", "--from", "-", "--max-line-bytes", "64",
        cwd=tmp_path, stdin='"short"\n"' + "x" * 1000 + '"\n',
    )  # fmt: skip
    line = one_line_error(result)
    assert "stdin line 2 is longer than 64 bytes" in line and "--max-line-bytes" in line


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    source = tmp_path / "latin1.jsonl"
    source.write_bytes(b'"ok"\n"caf\xe9"\n')
    result = run("-b", "memory://", "push", "--from", str(source), cwd=tmp_path)
    assert "line 2 is not UTF-8" in one_line_error(result)


def test_on_a_terminal_bulk_push_shows_a_progress_bar(tmp_path: Path) -> None:
    source = tmp_path / "tasks.jsonl"
    source.write_text("".join(f"{i}\n" for i in range(2500)))
    status, output = in_terminal("-b", "memory://", "push", "--from", str(source), cwd=tmp_path)
    assert status == 0, output
    assert "pushing" in output and "2,500 tasks" in output and "100%" in output
    assert output.rstrip().endswith("2500")
