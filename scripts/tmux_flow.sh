#!/usr/bin/env bash
# The coding flow in a real terminal: build a small blind study, start
# `concord code STUDY --as ann` inside tmux, drive it with keys, check what the
# screen shows after each step and what the study holds at the end.
#
#   bash scripts/tmux_flow.sh        (exit 0: every step seen; non-zero: the failing step)
#
# Python: $PYTHON, else the active virtualenv, .venv, the venv of `concord` on PATH,
# or a venv beside the checkout; it must have the project installed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

fail() { echo "tmux_flow: FAIL: $*" >&2; exit 1; }

if ! command -v tmux >/dev/null 2>&1; then
  echo "tmux_flow: installing tmux" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq tmux >/dev/null || fail "tmux is missing and could not be installed"
fi

pick_python() {
  local concord_bin candidate
  concord_bin=$(command -v concord || true)
  for candidate in "${PYTHON:-}" "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}" "$repo/.venv/bin/python" \
                   "${concord_bin:+$(dirname "$concord_bin")/python}" "$repo/../venv/bin/python" python3; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c "import textual, app.tui.app" >/dev/null 2>&1; then
      echo "$candidate"
      return
    fi
  done
  fail "no Python with Concord installed (set PYTHON=/path/to/venv/bin/python)"
}
py=$(pick_python)

work=$(mktemp -d)
socket="concord-flow-$$"
session="flow"
cleanup() {
  tmux -L "$socket" kill-server >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

study="$work/flow.concord"
PYTHONPATH="$repo" "$py" - "$study" <<'PY'
import sys
from sqlalchemy import update
from storage.models import Code
from tests.factories import make_study

workspace = make_study(sys.argv[1], blind=True)
with workspace.store.session() as session:
    session.execute(update(Code).where(Code.name == "Stagnation").values(
        definition="Hard circumstances, resignation, 'it never ends'.",
        inclusion="Frustration, hopelessness.", exclusion="Sadness without resignation."))
workspace.close()
PY

# Run through the click group once `code` is registered there, else the command's own module.
if "$py" -m app.cli code --help >/dev/null 2>&1; then
  launch=("$py" -m app.cli code)
else
  launch=("$py" -m app.commands.code)
fi

tmux -L "$socket" -f /dev/null new-session -d -s "$session" -x 100 -y 30 \
  "cd '$repo' && env XDG_CONFIG_HOME='$work/config' CONCORD_KEYMAP= TERM=xterm-256color \
   ${launch[*]} '$study' --as ann; echo EXITED-\$?; sleep 30"
tmux -L "$socket" set -s escape-time 0 >/dev/null

screen() { tmux -L "$socket" capture-pane -p -t "$session"; }
keys() { tmux -L "$socket" send-keys -t "$session" "$@"; }
type_text() { tmux -L "$socket" send-keys -t "$session" -l "$1"; }

# Wait until the pane shows TEXT (a fixed string); print the screen and fail after 20 s.
expect() {
  local text=$1 step=$2
  for _ in $(seq 1 100); do
    if screen | grep -qF -- "$text"; then
      echo "ok: $step"
      return
    fi
    sleep 0.2
  done
  echo "----- screen at failure -----" >&2
  screen >&2
  fail "$step: never saw '$text'"
}

# Wait until TEXT has left the pane (a closed dialog). A key sent right after Escape
# would reach the app as alt+key, so steps after Escape wait for this first.
gone() {
  local text=$1 step=$2
  for _ in $(seq 1 100); do
    if ! screen | grep -qF -- "$text"; then
      echo "ok: $step"
      return
    fi
    sleep 0.2
  done
  screen >&2
  fail "$step: '$text' stayed on screen"
}

expect "S-A" "the overview lists the transcript"
expect "ann (coder)" "the overview names the coder"
screen | grep -qF "high" && fail "the blind overview shows the group"
keys Enter
expect "turn 1/4 T" "the transcript opens"
keys j v w w w 1
expect "Coded 15 selected chars as “Moving forward” ✓" "select three words and code them with hotkey 1"
keys j c
type_text "stagn"
expect "Hard circumstances" "the picker shows the highlighted code's definition"
keys Enter
expect "Coded turn 3 as “Stagnation” ✓" "code turn 3 through the picker"
keys u
expect "Undone ✓ (1 coding of yours)" "undo"
keys C-r
expect "Redone ✓ (2 codings of yours)" "redo"
keys m
expect "ctrl+s save" "the memo editor opens"
type_text "first look"
keys C-s
expect "Memo saved on coding ✓" "a memo on the coding"
echo "----- transcript screen (100x30) -----"
screen
keys "?"
expect "Remap a key by its id" "help lists the keys"
keys Escape
gone "Remap a key by its id" "escape closes the help"
keys q
expect "1 of 1 transcripts" "q goes back to the overview"
screen | grep -qE "S-A +session +4 +3/4 +2( |$)" || { screen >&2; fail "the overview row should read: 3/4 turns reviewed, 2 codings"; }
echo "ok: the overview shows 3/4 turns reviewed and 2 codings"
echo "----- overview screen (100x30) -----"
screen
keys C-q
expect "EXITED-0" "ctrl+q quits cleanly"

PYTHONPATH="$repo" "$py" - "$study" <<'PY'
import sys
from services import coding
from services.workspace import Workspace

with Workspace.open(sys.argv[1], "ann") as ann:
    codings = coding.list_codings(ann, 1)
    names = sorted(c.code_id for c in codings)
    memos = [c.memo for c in codings if c.memo]
    assert len(codings) == 2, f"expected 2 codings in the study, found {len(codings)}"
    assert memos == ["first look"], f"expected the memo 'first look', found {memos}"
print(f"ok: the study holds {len(codings)} codings of ann's and the memo")
PY
echo "tmux_flow: all steps passed"
