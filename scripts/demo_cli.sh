#!/usr/bin/env bash
# The command-line tour on the JSON store: push 10,000 tasks from a JSON-lines
# file (with a progress bar on a terminal), drain them with a worker, show the
# statistics. Run from the repository root after `make install`:
#     scripts/demo_cli.sh
# CONVEYOR overrides the command (default: .venv/bin/conveyor); DEMO_TASKS the count.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
conveyor="${CONVEYOR:-$root/.venv/bin/conveyor}"
count="${DEMO_TASKS:-10000}"

if ! "$conveyor" backends --json | grep -q '"name": "json"'; then
    echo "demo_cli: the json backend is not installed; run 'make install' first" >&2
    exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/conveyor-demo.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export CONVEYOR_BACKEND="json://$work/tasks.json"

# The handler lives in the folder the worker runs from: `conveyor worker` imports it from there.
cat >"$work/demo_jobs.py" <<'PY'
def square(args):
    return {"n": args["n"], "square": args["n"] ** 2}
PY
awk -v n="$count" 'BEGIN { for (i = 0; i < n; i++) printf "{\"n\": %d}\n", i }' >"$work/tasks.jsonl"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

cd "$work"
step conveyor backends
"$conveyor" backends
step "conveyor push --from tasks.jsonl   # CONVEYOR_BACKEND=json://.../tasks.json"
"$conveyor" push --from tasks.jsonl
step conveyor stats
"$conveyor" stats
step conveyor worker demo_jobs:square --burst --concurrency 20
"$conveyor" worker demo_jobs:square --burst --concurrency 20
step conveyor stats
"$conveyor" stats
step conveyor tasks --page-size 3
"$conveyor" tasks --page-size 3
