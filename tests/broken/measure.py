"""Count the seeded bugs (``seeded.py``) the conformance suite catches.

    .venv/bin/python tests/broken/measure.py [--examples N] [--seed S] [--only-model] [NAME ...]

Each bug runs the whole suite (the model at ``--examples``, default its own
default) in a pytest subprocess of its own, against ``IndieBackend(bug=NAME)``;
the intact backend (``bug=""``) must pass first. Prints one line per bug
(caught or missed, with the first failing tests) and the totals per group.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BROKEN = Path(__file__).resolve().parent
sys.path.insert(0, str(BROKEN))
from seeded import ALL, PLAIN, SUBTLE  # noqa: E402

CONFTEST = """
import sys
sys.path.insert(0, {broken!r})

import pytest
import conveyor
from indie import IndieBackend, IndieConfig

pytest_plugins = ["conveyor.testing"]


@pytest.fixture
def conveyor_backend(conveyor_clock):
    config = IndieConfig(bug={bug!r}, clock=conveyor_clock)
    return conveyor.Backend(IndieBackend(config), name="indie")
"""


def run(
    bug: str, examples: int | None, timeout: float, seed: int | None = None, select: str = ""
) -> tuple[bool, list[str], str]:
    """(whether the suite failed, the failing test ids, the tail of the output)."""
    with tempfile.TemporaryDirectory(prefix="conveyor-measure-") as scratch:
        root = Path(scratch)
        (root / "conftest.py").write_text(CONFTEST.format(broken=str(BROKEN), bug=bug))
        (root / "pytest.ini").write_text(
            "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
        )
        env = dict(os.environ)
        if examples is not None:
            env["CONVEYOR_MODEL_EXAMPLES"] = str(examples)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
                 "-m", "not slow", str(root),
                 *([] if seed is None else [f"--hypothesis-seed={seed}"]),
                 *(["-k", select] if select else [])],
                cwd=root, capture_output=True, text=True, timeout=timeout, check=False, env=env,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return True, ["(the suite hung: killed after the timeout)"], ""
    failed = [
        line.split(" ", 1)[1].split(" - ")[0].split("::", 1)[-1]
        for line in done.stdout.splitlines()
        if line.startswith(("FAILED", "ERROR"))
    ]
    return done.returncode != 0, failed, done.stdout[-1500:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--examples", type=int)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--only-model", action="store_true", help="run the stateful model alone")
    parser.add_argument(
        "--seed", type=int, help="Hypothesis seed: the model draws the same steps for every bug"
    )
    args = parser.parse_args()
    select = "TestModel" if args.only_model else ""
    intact_failed, baseline, tail = run("", args.examples, args.timeout, args.seed, select)
    if intact_failed:
        # An older suite may contradict the hookspecs the intact backend follows: a bug
        # then counts as caught only by a test that the intact backend passes.
        print(f"the intact backend fails {baseline}; those tests are not counted\n{tail}")
    names = args.names or list(ALL)
    caught: dict[str, bool] = {}
    for name in names:
        _, failed, _ = run(name, args.examples, args.timeout, args.seed, select)
        failed = [f for f in failed if f not in baseline]
        hit = bool(failed)
        caught[name] = hit
        shown = ", ".join(failed[:3]) + (f" (+{len(failed) - 3})" if len(failed) > 3 else "")
        print(f"{'caught' if hit else 'MISSED'}  {name:30} {shown}", flush=True)
    for group, members in (("plain", PLAIN), ("subtle", SUBTLE)):
        ran = [n for n in members if n in caught]
        if ran:
            print(f"{group}: {sum(caught[n] for n in ran)}/{len(ran)} caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
