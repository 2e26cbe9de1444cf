#!/usr/bin/env bash
# The installed layout, checked as a new user gets it: build Concord's wheel, install it into a fresh virtual
# environment NEXT TO look-alike packages named `exporters` and `storage` (both are real project names on PyPI),
# check that exactly one top-level package, `concord`, was installed, and run the demo and `concord status` from it.
# With --suite it then runs the test suite against that install, from a copy of the repository without its source
# folders (so nothing can be imported from the checkout by accident).
# With --deps-from VENV the fresh environment borrows the third-party libraries already installed in VENV (a path
# entry, so VENV's editable hook for the checkout is not loaded) instead of downloading them again: CI uses this.
set -euo pipefail
suite=no deps_from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) suite=yes ;;
    --deps-from) deps_from=$(cd "$2" && pwd); shift ;;
    *) echo "usage: $0 [--suite] [--deps-from VENV]" >&2; exit 2 ;;
  esac
  shift
done
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/concord-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT
log() { echo "[wheel] $*" >&2; }

log "building the wheel"
python3 -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" . >/dev/null
wheel=$(ls "$work"/dist/concord-*.whl)
top_level=$(python3 - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
print(" ".join(sorted({n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))})))
PY
)
if [ "$top_level" != "concord" ]; then
  log "the wheel installs these top-level names: $top_level (expected only: concord)"
  exit 1
fi
log "the wheel installs one top-level package: concord"

# Two look-alikes: one ships exporters/writers/ (which once broke `concord export`), one ships storage/__init__.py.
for name in exporters storage; do
  mkdir -p "$work/lookalike-$name/$name/writers"
  echo "raise ImportError('the look-alike $name package was imported instead of Concord')" \
    > "$work/lookalike-$name/$name/__init__.py"
  touch "$work/lookalike-$name/$name/writers/__init__.py"
  cat > "$work/lookalike-$name/pyproject.toml" <<TOML
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"
[project]
name = "$name"
version = "9.9.9"
[tool.setuptools]
packages = ["$name", "$name.writers"]
TOML
done

log "installing the wheel and the look-alikes into a fresh virtual environment"
python3 -m venv "$work/venv"
if [ -n "$deps_from" ]; then
  site=$("$work/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  "$deps_from/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > "$site/borrowed-deps.pth"
  pip_args=(--no-deps)
  extra=""
else
  pip_args=()
  extra=$([ "$suite" = yes ] && echo "[test]" || true)
fi
"$work/venv/bin/pip" install --quiet "${pip_args[@]}" "$wheel$extra" "$work/lookalike-exporters" \
  "$work/lookalike-storage" 2>&1 | grep -v "^WARNING: Location" || true

cd "$work" # not the checkout: its concord/ folder would shadow the install
"$work/venv/bin/python" -c "import concord.app.cli" # fails loudly if the install is broken
export CONCORD_CODER=
"$work/venv/bin/concord" --version
"$work/venv/bin/python" -m concord --version
"$work/venv/bin/concord" demo --dir "$work/demo" --no-tui
"$work/venv/bin/concord" status "$work/demo/demo.concord" --as sam
"$work/venv/bin/concord" export frequencies "$work/demo/demo.concord" --as sam --layer alex --by group \
  --out "$work/frequencies.xlsx"
"$work/venv/bin/concord" export qdpx "$work/demo/demo.concord" --as sam --out "$work/demo.qdpx"
log "demo, status and exports ran from the wheel beside packages named exporters and storage"

if [ "$suite" = yes ]; then
  # The repository without its source folders: tests, docs and scripts read files from here,
  # and every `import concord...` must come from the installed wheel.
  mkdir -p "$work/checkout"
  (cd "$repo" && git ls-files -z | grep -zvE '^(app|codebooks|storage|importers|exporters|services|analysis|concord)/' \
    | xargs -0 cp --parents -t "$work/checkout")
  cd "$work/checkout"
  log "running the test suite against the installed wheel"
  "$work/venv/bin/python" -m pytest -n auto -q -p no:cacheprovider
fi
