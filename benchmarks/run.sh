#!/usr/bin/env bash
# The one benchmark command: makes or reuses benchmarks/.venv (smoothl1 from this checkout, plus the
# peers in requirements.txt: benchmark-only, never smoothl1's dependencies), generates the
# seeded data under benchmarks/data/, runs every contender and writes the tables into BENCHMARKS.md.
#
#   bash benchmarks/run.sh [--rows 1000000,5000000] [--rounds 3] [--scaling] [--with-1e8] [--no-write]
#   bash benchmarks/run.sh engines [--rounds 5] [--compare NAME=OTHER/smoothl1] [--no-write]   (engines.py)
#
# `bash benchmarks/run.sh --help` lists every option.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# The peers (and smoothl1's own dependencies): installed once, again only when requirements.txt changes.
stamp="$(sha256sum < "$here/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$venv/.bench-stamp" 2>/dev/null)" != "$stamp" ]; then
    "$venv/bin/pip" install -q -r "$here/requirements.txt" "$here/.."
    echo "$stamp" > "$venv/.bench-stamp"
fi
# smoothl1 itself: a regular install of this checkout, as a user has it (an editable install adds an
# import hook to every start-up), reinstalled on every run so it is the code being measured.
"$venv/bin/pip" install -q --no-deps --force-reinstall "$here/.."
cd "$here/.."
script=bench.py
if [ "${1:-}" = engines ]; then  # bash benchmarks/run.sh engines [...]: the targets of engines.py
    script=engines.py
    shift
fi
exec "$venv/bin/python" "$here/$script" "$@"
