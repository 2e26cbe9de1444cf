#!/usr/bin/env bash
# Static checks: the import contracts (import-linter), types (mypy), lint and format (ruff).
# import-linter and mypy look at the INSTALLED layout: in the checkout, `concord/` holds only
# __init__ and __main__ and setuptools maps app/, services/, ... into it, which neither tool
# follows. So the package is first installed (no dependencies, no network) into a temporary
# folder, and both run there. Needs the project's venv with the `test` extra.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/concord-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failed=()

run() {
  echo "+ $*" >&2
  "$@"
}

check() { # check NAME COMMAND...: run it, remember a failure, go on with the other checks
  local name=$1
  shift
  if ! run "$@"; then
    failed+=("$name")
  fi
}

# pip builds in the source folder (build/, *.egg-info); a copy keeps parallel runs and
# scripts/wheel_check.sh from sharing one build folder in the checkout.
folders=(concord app services storage importers exporters analysis codebooks)
mkdir "$tmp/src"
tar -c --exclude=__pycache__ pyproject.toml README.md "${folders[@]}" | tar -x -C "$tmp/src"
run python -m pip install --quiet --no-deps --no-build-isolation --no-compile --target "$tmp/site" "$tmp/src" \
  2>&1 | grep -v "^WARNING: Location" >&2 || true
if [ ! -f "$tmp/site/concord/app/cli.py" ]; then
  echo "check: the package did not install into $tmp/site" >&2
  exit 1
fi

# From $tmp, not the checkout: import-linter puts the working folder on sys.path, where the
# checkout's own concord/ would hide the installed one.
cd "$tmp"
check import-linter env PYTHONPATH="$tmp/site" lint-imports --no-cache --no-logo "$repo/pyproject.toml"
cd "$tmp/site"
check mypy mypy --config-file "$repo/pyproject.toml" --cache-dir "$repo/.mypy_cache" -p concord

cd "$repo"
check "ruff check" ruff check .
check "ruff format" ruff format --check .

if [ ${#failed[@]} -gt 0 ]; then
  echo "check: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "check: import contracts, types, lint and format all pass" >&2
