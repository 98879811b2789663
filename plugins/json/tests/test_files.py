"""A store's files: links never followed, owners kept, stale copies cleaned, old formats read."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conveyor_json import VERSION, CorruptStore, LinkRefused, LockTimeout, NotOwner, StoreError

import conveyor
from conveyor import BackendUnavailable, ConfigError, Filter

NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to nobody")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every user can enter (pytest's tmp_path is private to its user)."""
    folder = Path(tempfile.mkdtemp(prefix="conveyor-json-"))
    folder.chmod(0o777)
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=False)


async def test_a_store_path_that_is_a_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    await conveyor.open(f"json://{real}").aclose()
    link = tmp_path / "tasks.json"
    link.symlink_to(real)
    with pytest.raises(
        LinkRefused, match=r"tasks.json is a symbolic link .*real file: .*real.json"
    ):
        conveyor.open(f"json://{link}")
    dangling = tmp_path / "new.json"
    dangling.symlink_to(tmp_path / "nowhere.json")
    with pytest.raises(LinkRefused):
        conveyor.open(f"json://{dangling}")
    assert not (tmp_path / "nowhere.json").exists()  # nothing was created through the link


async def test_a_planted_lock_link_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    victim.chmod(0o644)
    (tmp_path / "tasks.json.lock").symlink_to(victim)
    with pytest.raises(LinkRefused, match=r"tasks.json.lock is a symbolic link"):
        conveyor.open(f"json://{tmp_path}/tasks.json")
    assert victim.read_text() == "precious" and oct(victim.stat().st_mode & 0o777) == "0o644"


async def test_compaction_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    victim = tmp_path / "victim"
    victim.write_text("precious")
    async with conveyor.open(f"json://{path}") as backend:
        ids = await backend.push_many({"n": i} for i in range(5))
        # The names a compaction of this process would once have used, planted as links.
        for name in (f"tasks.json.{os.getpid()}.tmp", "tasks.json.tmp"):
            (tmp_path / name).symlink_to(victim)
        await backend.hooks.vacuum()
        assert victim.read_text() == "precious"
        assert not path.is_symlink()
        assert {t.id for t in await backend.hooks.list_all_tasks(Filter(page_size=100))} == set(ids)


async def test_a_killed_compactions_copy_is_removed_at_open(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    await conveyor.open(f"json://{path}").aclose()
    stale = [tmp_path / "tasks.json.4242.tmp", tmp_path / "tasks.json.77-0badcafe.tmp"]
    for copy in stale:
        copy.write_text("half a compaction")
    unrelated = tmp_path / "other.json.4242.tmp"
    unrelated.write_text("not ours")
    await conveyor.open(f"json://{path}").aclose()
    assert not any(copy.exists() for copy in stale)
    assert unrelated.exists()


@root_only
async def test_compaction_as_root_keeps_the_owner(shared_dir: Path) -> None:
    path = shared_dir / "tasks.json"
    async with conveyor.open(f"json://{path}") as backend:
        await backend.push({"n": 1})
    os.chown(path, NOBODY, NOBODY)
    os.chown(f"{path}.lock", NOBODY, NOBODY)
    async with conveyor.open(f"json://{path}") as backend:
        await backend.hooks.vacuum()
    info = path.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (NOBODY, NOBODY, 0o600)


@root_only
async def test_root_creating_the_lock_of_another_users_store_gives_it_to_that_user(
    shared_dir: Path,
) -> None:
    path = shared_dir / "tasks.json"
    await conveyor.open(f"json://{path}").aclose()
    os.chown(path, NOBODY, NOBODY)
    os.unlink(f"{path}.lock")
    await conveyor.open(f"json://{path}").aclose()
    assert os.stat(f"{path}.lock").st_uid == NOBODY


DROP = """
import asyncio, os, sys, tempfile, conveyor
# Everything is imported (the plugin too, by one open) before the privileges go:
# the interpreter's own files may not be readable by nobody.
scratch = tempfile.mkdtemp()
asyncio.run(conveyor.open(f"json://{scratch}/warm.json").aclose())
os.setgid(65534)
os.setuid(65534)
"""


def run_as_nobody(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DROP + code, *args], capture_output=True, text=True
    )


VACUUM = """
import asyncio, sys, conveyor
async def main():
    async with conveyor.open(sys.argv[1]) as backend:
        await backend.hooks.vacuum()
try:
    asyncio.run(main())
except conveyor.ConveyorError as exc:
    print(type(exc).__name__, exc)
"""


@root_only
async def test_compaction_by_a_user_who_does_not_own_the_store_is_refused(
    shared_dir: Path,
) -> None:
    path = shared_dir / "tasks.json"
    async with conveyor.open(f"json://{path}") as backend:
        await backend.push({"n": 1})
    path.chmod(0o666)
    os.chmod(f"{path}.lock", 0o666)
    done = run_as_nobody(VACUUM, f"json://{path}")
    assert done.stdout.startswith(NotOwner.__name__), done.stdout + done.stderr
    assert "owned by uid 0" in done.stdout and "as the store's owner" in done.stdout
    assert path.stat().st_uid == 0  # not taken over


@root_only
async def test_a_lock_file_another_user_owns_is_named_in_the_error(shared_dir: Path) -> None:
    path = shared_dir / "tasks.json"
    await conveyor.open(f"json://{path}").aclose()
    path.chmod(0o666)  # the store is writable, only the lock file is root's 0600
    done = run_as_nobody(VACUUM, f"json://{path}")
    assert f"the lock file {path}.lock (owned by uid 0, mode 600)" in done.stdout, done
    assert "directory" not in done.stdout


async def test_a_lock_held_too_long_is_a_clear_timeout(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    backend = conveyor.open(f"json://{path}?lock_timeout=0.2")
    holder = os.open(f"{path}.lock", os.O_RDWR)  # another open file: another holder
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with pytest.raises(LockTimeout, match=r"held the lock .*tasks.json.lock for more than"):
            await backend.push({"n": 1})
        with pytest.raises(LockTimeout):
            conveyor.open(f"json://{path}?lock_timeout=0.2")
        assert issubclass(LockTimeout, BackendUnavailable)
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    await backend.push({"n": 2})  # the lock is free again: the handle goes on
    await backend.aclose()


@pytest.mark.parametrize(
    "query",
    [
        "lease_seconds=inf",
        "lease_seconds=1e300",
        "lease_seconds=nan",
        "idle_wait=-1",
        "idle_wait=1e9",
        "poll_interval=0",
        "poll_interval=inf",
        "lock_timeout=0",
        "lock_timeout=inf",
        "compact_threshold=0",
        "compact_threshold=1e20",
    ],
)
def test_numeric_options_out_of_range_are_refused_at_open(tmp_path: Path, query: str) -> None:
    name = query.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{name}( must be a|: '.*' is not a whole number)"):
        conveyor.open(f"json://{tmp_path}/tasks.json?{query}")
    assert not (tmp_path / "tasks.json").exists()


def test_percent_encoded_dot_segments_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    for encoded in ("%2e%2e", "%2E%2e", "%2e", "a%2f..", "..%2Fx"):
        with pytest.raises(ConfigError, match="decodes to"):
            conveyor.open(f"json://{tmp_path}/a/{encoded}/tasks.json")
    plain = conveyor.open(f"json://{tmp_path}/a/../tasks.json")
    assert plain.plugin.path == str(tmp_path / "tasks.json")  # type: ignore[attr-defined]


async def test_a_version_1_store_is_read_and_rewritten_as_the_current_version(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tasks.json"
    tid = "06h0ae4oag000r1gmfpvp37ja8"
    path.write_text(
        '{"format":"conveyor-json","version":1}\n'
        f'{{"op":"put","id":"{tid}","q":"default","s":"Pending","a":0,"ma":5,'
        '"at":1795383924820602,"p":0,"meta":{"k":1},"args":{"to":"a@b.c"}}\n'
    )
    async with conveyor.open(f"json://{path}") as backend:
        task = await backend.fetch_by_id(tid)
        assert task is not None and task.args == {"to": "a@b.c"}
        await backend.push_many([{"n": 1}, {"n": 2}])
    assert json.loads(path.read_text().splitlines()[0]) == {
        "format": "conveyor-json",
        "version": VERSION,
    }
    async with conveyor.open(f"json://{path}") as backend:
        assert len(await backend.hooks.list_all_tasks(Filter())) == 3


def test_a_store_in_a_missing_place_is_still_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        conveyor.open(f"json://{tmp_path}/missing/tasks.json")


async def test_repair_cuts_at_the_last_valid_record_and_keeps_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    async with conveyor.open(f"json://{path}") as backend:
        kept = [await backend.push({"n": i}) for i in range(3)]
        acknowledged = path.stat().st_size
        await backend.push_many([{"late": 1}, {"late": 2}])
        await backend.push({"late": 3})
    original = path.read_bytes()
    # A power cut: the group's blocks never arrived (a hole), the record after it did.
    holed = bytearray(original)
    holed[acknowledged + 10 : acknowledged + 200] = b"\0" * 190
    path.write_bytes(bytes(holed))
    with pytest.raises(CorruptStore, match=r"python -m conveyor_json repair"):
        conveyor.open(f"json://{path}")
    command = [sys.executable, "-m", "conveyor_json", "repair", str(path)]
    dry = subprocess.run([*command, "--dry-run"], capture_output=True, text=True)
    assert dry.returncode == 0 and path.read_bytes() == bytes(holed), dry.stderr
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"cut at byte {acknowledged:,}" in done.stdout
    assert "kept 3 records" in done.stdout and "whole records that followed" in done.stdout
    backup = Path(done.stdout.rsplit("kept as ", 1)[1].strip())
    assert backup.read_bytes() == bytes(holed)
    async with conveyor.open(f"json://{path}") as backend:
        stored = {t.id for t in await backend.hooks.list_all_tasks(Filter(page_size=100))}
    assert stored == set(kept)
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0 and "nothing to cut" in again.stdout


def test_repair_of_something_that_is_not_a_store_is_one_line_and_exit_1(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    done = subprocess.run(
        [sys.executable, "-m", "conveyor_json", "repair", str(other)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert other.read_text() == "hello\n"


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_repair_of_a_missing_store_says_so_and_creates_nothing(
    tmp_path: Path, dry_run: list[str]
) -> None:
    missing = tmp_path / "typo.json"
    done = subprocess.run(
        [sys.executable, "-m", "conveyor_json", "repair", str(missing), *dry_run],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert f"no store at {missing}" in done.stderr
    assert list(tmp_path.iterdir()) == []


async def test_the_plugin_logs_under_the_conveyor_logger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tasks.json"
    await conveyor.open(f"json://{path}").aclose()
    (tmp_path / "tasks.json.99.tmp").write_text("left by a killed compaction")
    with caplog.at_level("WARNING", logger="conveyor"):
        await conveyor.open(f"json://{path}").aclose()
    assert [r.name for r in caplog.records] == ["conveyor.json"]
