#!/usr/bin/env python3
"""Mutation testing with cosmic-ray: how many seeded bugs do a target's tests catch?

    scripts/mutation.py memory rules --workers 2    # what `make mutation` runs
    scripts/mutation.py memory --fraction 0.25      # a quarter of the mutants first
    scripts/mutation.py --report memory             # the figures so far, nothing run
    scripts/mutation.py --name mine --module src/conveyor_mine --path src \
        --tests tests --python .venv/bin/python     # a third party's own backend

Run it with the interpreter of the environment that holds cosmic-ray
(`make mutation` builds build/mutation/venv from scripts/mutation-requirements.txt);
the tests run under the project's own interpreter (``--python``, default .venv).

Each mutant is one change cosmic-ray's operators make at one spot of one module
(``<`` for ``<=``, ``None`` for a value, ``break`` for ``continue``...). It is
written into a private copy of the repository (one per worker, under
build/mutation/NAME/), the target's tests run there with ``-x`` under
``nice -n 19`` and a per-mutant timeout, and the file is restored. A mutant the
tests fail on (or that hangs them) is killed; one they pass is a survivor, either
equivalent (no caller can tell it from the original: listed with its reason in
scripts/mutation_equivalent.toml) or a missing test.

The results are a cosmic-ray session (build/mutation/NAME/session.sqlite, which
``cr-report`` also reads), so an interrupted run resumes where it stopped. The
session starts afresh when the target's source changes; survivors are tested
again whenever anything else in the tree (a new test) has changed since.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import difflib
import fnmatch
import glob
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cosmic_ray.commands import init as cosmic_init
from cosmic_ray.commands.init import _all_work_items
from cosmic_ray.modules import find_modules
from cosmic_ray.mutating import mutate_code
from cosmic_ray.plugins import get_operator
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkItem, WorkResult

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT_FILE = "scripts/mutation_equivalent.toml"
BUILD = Path("build") / "mutation"
ANNOTATION = "in an annotation: never evaluated"
INCOMPETENT = "not valid Python"
IGNORED = (".git", ".venv*", "build", "__pycache__", ".hypothesis", ".*_cache", "*.pyc", "*.sqlite")

# Loaded into every test run with ``-p``: few examples, and the same examples for
# every mutant, so that a kill never depends on a lucky draw.
HYPOTHESIS_PLUGIN = '''\
"""A small deterministic Hypothesis profile for mutation runs."""
try:
    from hypothesis import HealthCheck, settings
except ImportError:
    pass
else:
    settings.register_profile(
        "mutation", max_examples=20, derandomize=True, database=None, deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    settings.load_profile("mutation")
'''


@dataclass
class Target:
    """What to mutate (``modules``), which tests judge it, and the import path they need."""

    name: str
    modules: list[str]
    tests: list[str]
    path: list[str]
    pytest_args: list[str] = field(default_factory=list)


PRESETS = {
    "memory": Target(
        "memory",
        modules=["plugins/memory/src/conveyor_memory"],
        tests=["plugins/memory/tests"],
        path=["core/src", "plugins/memory/src"],
        # test_conformance.py runs the same suite again through `conveyor check`
        # (twice, once in a subprocess): no assertion about memory the suite
        # collected beside conftest.py lacks, and twice the time of a survivor.
        pytest_args=["-m", "not slow", "--ignore=plugins/memory/tests/test_conformance.py"],
    ),
    "rules": Target(
        "rules",
        modules=["core/src/conveyor/rules"],
        # The table's cases through the pure rules, and the config validators' tests.
        tests=["core/tests/test_rules*.py", "core/tests/test_config.py"],
        path=["core/src"],
        pytest_args=["-m", "not slow"],
    ),
}


@dataclass
class Equivalent:
    file: str
    line: str
    operator: str
    reason: str
    kind: str = "equivalent"  # or "timing": differs only in how long something takes
    next: str | None = None  # the stripped line after, where `line` alone is ambiguous
    used: bool = False


@dataclass
class Tally:
    total: int = 0
    annotations: int = 0
    incompetent: int = 0
    killed: int = 0
    timeouts: int = 0
    survivors: list[tuple[WorkItem, WorkResult, Equivalent | None]] = field(default_factory=list)

    @property
    def equivalent(self) -> int:
        return sum(1 for *_, eq in self.survivors if eq is not None)

    @property
    def timing(self) -> int:
        return sum(1 for *_, eq in self.survivors if eq is not None and eq.kind == "timing")

    @property
    def missing(self) -> int:
        return len(self.survivors) - self.equivalent

    @property
    def rate(self) -> float:
        judged = self.killed + self.missing
        return 100.0 * self.killed / judged if judged else 100.0


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where a parameter, return or local-variable annotation sits in ``source``.

    Under ``from __future__ import annotations`` these stay strings that nothing
    evaluates (class- and module-level ones may be: cattrs reads a config's), so a
    mutant there cannot be told from the original and is not run.
    """
    tree = ast.parse(source)
    if not any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(a.name == "annotations" for a in node.names)
        for node in tree.body
    ):
        return []
    nodes: list[ast.expr] = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        a = func.args
        params = [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]
        nodes += [p.annotation for p in params if p is not None and p.annotation is not None]
        nodes += [func.returns] if func.returns is not None else []
        nodes += [n.annotation for n in ast.walk(func) if isinstance(n, ast.AnnAssign)]
    return [
        ((n.lineno, n.col_offset), (n.end_lineno or n.lineno, n.end_col_offset or 0)) for n in nodes
    ]


def skip_annotations(db: WorkDB) -> None:
    spans: dict[str, list[tuple[tuple[int, int], tuple[int, int]]]] = {}
    skipped = []
    for item in db.work_items:
        spec = item.mutations[0]
        module = str(spec.module_path)
        if module not in spans:
            spans[module] = annotation_spans(Path(module).read_text(encoding="utf-8"))
        start = tuple(spec.start_pos)
        if any(low <= start < high for low, high in spans[module]):
            skipped.append(item.job_id)
    if skipped:
        db.set_multiple_results(
            skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=ANNOTATION)
        )


def digest(paths: Iterable[Path]) -> str:
    sha = hashlib.sha256()
    for path in sorted(paths):
        sha.update(str(path).encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()


def tree_files(exclude: set[Path]) -> list[Path]:
    """Every file a copy holds, relative to the root, less the target's own modules."""
    out = []
    for path in Path(".").rglob("*"):
        if any(fnmatch.fnmatch(part, p) for part in path.parts for p in IGNORED):
            continue
        if path.suffix == ".md" or path.name == Path(EQUIVALENT_FILE).name:
            continue  # prose and the equivalents list judge no mutant
        if path.is_file() and not path.is_symlink() and path not in exclude:
            out.append(path)
    return out


def stage(copy: Path) -> None:
    """A fresh private copy of the tree for one worker (links are not followed)."""
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(".", copy, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)


def test_command(target: Target, python: str, copy: Path) -> list[str]:
    tests: list[str] = []
    for pattern in target.tests:
        found = sorted(glob.glob(pattern, root_dir=copy))
        if not found:
            raise SystemExit(f"{target.name}: no tests match {pattern!r}; check --tests")
        tests.extend(found)
    return [
        "nice",
        "-n",
        "19",
        python,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "mutation_hypothesis",
        *target.pytest_args,
        *tests,
    ]


def test_env(target: Target, copy: Path, plugin_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str((copy / p).resolve()) for p in target.path] + [str(plugin_dir.resolve())]
    env["PYTHONPATH"] = os.pathsep.join(
        [*paths, env["PYTHONPATH"]] if env.get("PYTHONPATH") else paths
    )
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a restored file must never be shadowed by a stale .pyc
    return env


def run_tests(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[str, str]:
    """(``"killed"``/``"survived"``/``"timeout"``, the output's tail)."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "timeout", f"timed out after {timeout:.0f} s"
    text = out.decode(errors="replace")[-4000:]
    # Any failure kills, an import error included (pytest exits 4 for a broken conftest):
    # the baseline has already shown that the unmutated tree passes.
    return ("survived" if proc.returncode == 0 else "killed"), text


def mutate(
    item: WorkItem,
    copy: Path,
    sources: dict[str, str],
    cmd: list[str],
    env: dict[str, str],
    timeout: float,
) -> WorkResult:
    spec = item.mutations[0]
    module = str(spec.module_path)
    source = sources[module]
    mutated = mutate_code(
        source, get_operator(spec.operator_name)(**spec.operator_args), spec.occurrence
    )
    if mutated is None:
        return WorkResult(worker_outcome=WorkerOutcome.NO_TEST)
    try:
        with warnings.catch_warnings():  # `x is "literal"` mutants warn; they still run
            warnings.simplefilter("ignore")
            compile(mutated, module, "exec")
    except SyntaxError as exc:  # `*` in a signature made `+`: no test needs to run
        return WorkResult(
            worker_outcome=WorkerOutcome.NORMAL,
            output=f"{INCOMPETENT}: {exc}",
            test_outcome=TestOutcome.INCOMPETENT,
        )
    path = copy / module
    path.write_text(mutated, encoding="utf-8")
    try:
        verdict, output = run_tests(cmd, copy, env, timeout)
    finally:
        path.write_text(source, encoding="utf-8")
    diff = "".join(
        difflib.unified_diff(source.splitlines(True), mutated.splitlines(True), module, module, n=0)
    )
    return WorkResult(
        worker_outcome=WorkerOutcome.NORMAL,
        output=output if verdict != "timeout" else "timeout: " + output,
        test_outcome=TestOutcome.SURVIVED if verdict == "survived" else TestOutcome.KILLED,
        diff=diff,
    )


def load_equivalents(path: Path, name: str) -> list[Equivalent]:
    if not path.exists():
        return []
    with path.open("rb") as handle:
        entries = tomllib.load(handle).get(name, [])
    return [
        Equivalent(
            e["file"],
            e["line"].strip(),
            e["operator"],
            e["reason"],
            e.get("kind", "equivalent"),
            e["next"].strip() if "next" in e else None,
        )
        for e in entries
    ]


def source_line(spec_path: str, line: int, cache: dict[str, list[str]]) -> str:
    if spec_path not in cache:
        cache[spec_path] = Path(spec_path).read_text(encoding="utf-8").splitlines()
    lines = cache[spec_path]
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def tally(db: WorkDB, equivalents: list[Equivalent]) -> Tally:
    result = Tally(total=db.num_work_items)
    lines: dict[str, list[str]] = {}
    for item, outcome in db.completed_work_items:
        if outcome.worker_outcome in (WorkerOutcome.NO_TEST, WorkerOutcome.SKIPPED):
            result.total -= 1
            result.annotations += outcome.output == ANNOTATION
            continue
        if outcome.test_outcome is TestOutcome.INCOMPETENT:
            result.total -= 1
            result.incompetent += 1
            continue
        if outcome.test_outcome is not TestOutcome.SURVIVED:
            result.killed += 1
            result.timeouts += (outcome.output or "").startswith("timeout")
            continue
        spec = item.mutations[0]
        at = spec.start_pos[0]
        for _ in range(5):  # a decorator's span starts at the blank line above it
            if source_line(str(spec.module_path), at, lines):
                break
            at += 1
        text = source_line(str(spec.module_path), at, lines)
        match = next(
            (
                e
                for e in equivalents
                if e.file == str(spec.module_path)
                and e.line == text
                and fnmatch.fnmatchcase(spec.operator_name, e.operator)
                and e.next in (None, source_line(e.file, at + 1, lines))
            ),
            None,
        )
        if match is not None:
            match.used = True
        result.survivors.append((item, outcome, match))
    return result


def write_survivors(path: Path, name: str, t: Tally) -> None:
    def key(entry: tuple[WorkItem, WorkResult, Equivalent | None]) -> tuple[str, int, str]:
        spec = entry[0].mutations[0]
        return str(spec.module_path), spec.start_pos[0], spec.operator_name

    with path.open("w", encoding="utf-8") as out:
        out.write(f"# {name}: {len(t.survivors)} survivors, {t.missing} without a reason\n")
        for item, outcome, eq in sorted(t.survivors, key=key):
            spec = item.mutations[0]
            verdict = (
                f"{eq.kind}: {eq.reason}" if eq else "MISSING TEST (or an unlisted equivalent)"
            )
            out.write(
                f"\n{spec.module_path}:{spec.start_pos[0]}  {spec.operator_name}"
                f"  #{spec.occurrence}  [{verdict}]\n"
            )
            body = [ln for ln in (outcome.diff or "").splitlines() if ln[:1] in "+-"]
            out.writelines(f"    {ln}\n" for ln in body if not ln.startswith(("---", "+++")))


def report(target: Target, db: WorkDB, equivalents: list[Equivalent], out_dir: Path) -> Tally:
    t = tally(db, equivalents)
    done = t.killed + len(t.survivors)
    write_survivors(out_dir / "survivors.txt", target.name, t)
    print(
        f"{target.name}: {done}/{t.total} mutants run: killed {t.killed}"
        f" (timeout {t.timeouts}), survived {len(t.survivors)}, equivalent {t.equivalent}"
        f" (timing-only {t.timing});"
        f" rate {t.killed}/{t.killed + t.missing} = {t.rate:.1f}% of non-equivalent;"
        f" {t.annotations} more in annotations and {t.incompetent} not valid Python, not run"
        f"  (survivors: {out_dir / 'survivors.txt'})",
        flush=True,
    )
    for eq in equivalents:
        if not eq.used and done == t.total:
            print(
                f"  note: no survivor matches the equivalent {eq.file}: {eq.line!r} ({eq.operator})"
            )
    return t


def baseline(cmd: list[str], copy: Path, env: dict[str, str]) -> float:
    start = time.monotonic()
    verdict, output = run_tests(cmd, copy, env, 1800)
    if verdict != "survived":
        raise SystemExit(f"the unmutated tests do not pass ({verdict}):\n{output}")
    return time.monotonic() - start


def run(target: Target, args: argparse.Namespace) -> Tally:
    out_dir = BUILD / target.name
    out_dir.mkdir(parents=True, exist_ok=True)
    modules = sorted(set(find_modules([Path(m) for m in target.modules])))
    state_file, session = out_dir / "state.json", out_dir / "session.sqlite"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    digests = {str(m): digest([m]) for m in modules}
    tree_digest = digest(tree_files(set(modules)))
    equivalents = load_equivalents(Path(args.equivalent), target.name)

    known = state.get("modules") if session.exists() else None
    if known is None and session.exists() and state.get("source") == digest(modules):
        known = digests  # a session from before per-module digests, of this very source
    changed = [m for m in modules if known is None or known.get(str(m)) != digests[str(m)]]
    gone = sorted(set(known or ()) - set(digests))
    if args.report and (changed or gone):
        raise SystemExit(f"{target.name}: no results for the current source; run it first")
    if args.fresh or known is None:
        session.unlink(missing_ok=True)
        with use_db(str(session)) as db:
            cosmic_init(modules, db, {})
            skip_annotations(db)
    elif changed or gone:
        # Only the modules that changed (a merge touched one file) are mutated afresh.
        with use_db(str(session), WorkDB.Mode.open) as db:
            _drop_modules(db, [str(m) for m in changed] + gone)
            db.add_work_items(_all_work_items(changed, {}))
            skip_annotations(db)
    state["modules"] = digests
    state_file.write_text(json.dumps(state))  # before any run: --report must see it
    with use_db(str(session), WorkDB.Mode.open) as db:
        if args.report:
            return report(target, db, equivalents, out_dir)
        if state.get("tree") != tree_digest:
            # Survivors were judged by other tests (or by a run that did not finish):
            # judge them again. Kills stand: tests are added far more than removed.
            again = [
                i for i, r in db.completed_work_items if r.test_outcome is TestOutcome.SURVIVED
            ]
            _forget(db, [i.job_id for i in again])
            state["tree"] = tree_digest
            state_file.write_text(json.dumps(state))
        items = sorted(db.work_items, key=lambda i: i.job_id)  # job ids are random: a fair sample
        chosen = {i.job_id for i in items[: math.ceil(args.fraction * len(items))]}
        pending = sorted(
            (i for i in db.pending_work_items if i.job_id in chosen), key=lambda i: i.job_id
        )
        if pending:
            _execute(target, args, db, pending, modules, out_dir)
        return report(target, db, equivalents, out_dir)


def _drop_modules(db: WorkDB, module_paths: Sequence[str]) -> None:
    """Forget every mutant (and its result) of ``module_paths``."""
    from cosmic_ray.work_db import MutationSpecStorage, WorkItemStorage, WorkResultStorage

    with db._session_maker.begin() as s:
        specs = s.query(MutationSpecStorage.job_id).where(
            MutationSpecStorage.module_path.in_(module_paths)
        )
        ids = [row[0] for row in specs]
        for table in (WorkResultStorage, MutationSpecStorage, WorkItemStorage):
            s.query(table).where(table.job_id.in_(ids)).delete()


def _forget(db: WorkDB, job_ids: Sequence[str]) -> None:
    from cosmic_ray.work_db import WorkResultStorage

    with db._session_maker.begin() as s:  # cosmic-ray has no public "un-set result"
        s.query(WorkResultStorage).where(WorkResultStorage.job_id.in_(job_ids)).delete()


def _execute(
    target: Target,
    args: argparse.Namespace,
    db: WorkDB,
    pending: list[WorkItem],
    modules: list[Path],
    out_dir: Path,
) -> None:
    plugin_dir = out_dir / "plugin"
    plugin_dir.mkdir(exist_ok=True)
    (plugin_dir / "mutation_hypothesis.py").write_text(HYPOTHESIS_PLUGIN)
    sources = {str(m): m.read_text(encoding="utf-8") for m in modules}
    copies = [out_dir / f"work-{n}" for n in range(args.workers)]
    for copy in copies:
        stage(copy)
    cmd = test_command(target, args.python, copies[0])
    envs = {c: test_env(target, c, plugin_dir) for c in copies}
    took = baseline(cmd, copies[0], envs[copies[0]])
    timeout = args.timeout or max(60.0, 4 * took)
    print(
        f"{target.name}: {len(pending)} mutants to run; the unmutated tests take {took:.1f} s,"
        f" timeout {timeout:.0f} s; {' '.join(cmd[3:])}",
        flush=True,
    )
    free = list(copies)
    done = 0
    with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
        running: dict[concurrent.futures.Future[WorkResult], tuple[WorkItem, Path]] = {}
        queue = list(reversed(pending))
        while queue or running:
            while queue and free:
                item, copy = queue.pop(), free.pop()
                future = pool.submit(mutate, item, copy, sources, cmd, envs[copy], timeout)
                running[future] = item, copy
            finished, _ = concurrent.futures.wait(running, return_when="FIRST_COMPLETED")
            for future in finished:
                item, copy = running.pop(future)
                free.append(copy)
                db.set_result(item.job_id, future.result())
                done += 1
                if done % 25 == 0 or not (queue or running):
                    print(f"  {target.name}: {done}/{len(pending)}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help=f"presets: {', '.join(PRESETS)}")
    parser.add_argument("--workers", type=int, default=2, help="tests run in parallel (default 2)")
    parser.add_argument(
        "--fraction",
        type=float,
        default=1.0,
        help="run only this share of the mutants (a fixed random sample)",
    )
    parser.add_argument("--timeout", type=float, default=0, help="per mutant (default 4x baseline)")
    parser.add_argument("--python", default=".venv/bin/python", help="the interpreter for tests")
    parser.add_argument("--fresh", action="store_true", help="forget earlier results")
    parser.add_argument("--report", action="store_true", help="print the figures; run nothing")
    parser.add_argument(
        "--fail-under",
        type=float,
        default=90.0,
        help="exit 1 when a rate is below this percentage (default 90)",
    )
    parser.add_argument(
        "--equivalent",
        default=str(EQUIVALENT_FILE),
        help="TOML of known equivalent mutants, one table per target",
    )
    custom = parser.add_argument_group("a target of your own (instead of a preset)")
    custom.add_argument("--name", help="names the results folder and the equivalents table")
    custom.add_argument(
        "--module", action="append", default=[], help="a package or module to mutate"
    )
    custom.add_argument("--tests", action="append", default=[], help="a test file, folder or glob")
    custom.add_argument("--path", action="append", default=[], help="a source root for PYTHONPATH")
    custom.add_argument(
        "--pytest-arg", action="append", default=[], help="one more pytest argument (presets too)"
    )
    args = parser.parse_args(argv)
    os.chdir(ROOT if not args.name else Path.cwd())
    args.python = os.path.abspath(args.python)  # not resolve(): a venv's python is a link
    targets = [PRESETS[t] for t in args.targets if t in PRESETS]
    unknown = [t for t in args.targets if t not in PRESETS]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r}; presets are {', '.join(PRESETS)}")
    if args.name:
        if not (args.module and args.tests):
            parser.error("--name needs --module and --tests")
        targets.append(Target(args.name, args.module, args.tests, args.path, []))
    for target in targets:
        target.pytest_args = [*target.pytest_args, *args.pytest_arg]
    if not targets:
        parser.error("name a preset or give --name, --module and --tests")
    if not 0 < args.fraction <= 1 or args.workers < 1:
        parser.error("--fraction is in (0, 1] and --workers at least 1")
    if not Path(args.python).exists():
        parser.error(f"no interpreter at {args.python}; run `make install` or pass --python")
    rates = [run(target, args) for target in targets]
    return 1 if any(t.rate < args.fail_under for t in rates) else 0


if __name__ == "__main__":
    sys.exit(main())
