#!/usr/bin/env bash
# The coding flow in a real terminal at 80x24: build a small blind study with two
# codebooks (both numbering their codes from 1), start `concord code STUDY --as ann`
# inside tmux, drive it with keys (code, undo, switch codebooks, leave and come back,
# write a memo after pressing tab), check what the screen shows after each step and
# what the study holds at the end.
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
    if "$candidate" -c "import textual, concord.app.tui.app" >/dev/null 2>&1; then
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
from concord.storage.models import Code
from tests.factories import make_study
from tests.test_workbench_tui import add_mi_codebook

workspace = make_study(sys.argv[1], blind=True)
add_mi_codebook(workspace)
with workspace.store.session() as session:
    session.execute(update(Code).where(Code.name == "Stagnation").values(
        definition="Hard circumstances, resignation, 'it never ends'.",
        inclusion="Frustration, hopelessness.", exclusion="Sadness without resignation."))
workspace.close()
PY

launch=("$py" -m concord.app.cli code)

tmux -L "$socket" -f /dev/null new-session -d -s "$session" -x 80 -y 24 \
  "cd '$repo' && env XDG_CONFIG_HOME='$work/config' CONCORD_STATE_DIR='$work/state' CONCORD_KEYMAP= TERM=xterm-256color \
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
expect "turn 1/4 therapist" "the transcript opens, speakers by role"
expect "1,2 cbt-test" "the key line starts with the hotkeys that fire"
keys j v w w w 1
expect "Coded “Moving forward” on turn 2, words 1–3 ✓" "select three words and code them with hotkey 1"
keys j c
type_text "stagn"
expect "Hard circumstances" "the picker shows the highlighted code's definition"
keys Enter
expect "Coded “Stagnation” on turn 3 ✓" "code turn 3 through the picker"
keys u
expect "Undone: “Stagnation” on turn 3" "undo says what it undid"
keys C-r
expect "Redone: “Stagnation” on turn 3" "redo says what it redid"
keys C-b
expect "keys: mi-talk" "ctrl+b: the title names the new codebook"
expect "1–3 mi-talk" "ctrl+b: the key line shows the new codebook's keys"
expect "1 desire" "ctrl+b: the panel shows the new codebook's hotkeys"
screen | grep -qF "1 Moving forward" && { screen >&2; fail "the panel still shows cbt-test's hotkeys"; }
echo "ok: the panel no longer shows the other codebook's hotkeys"
keys j 1
expect "Coded “desire” on turn 4 ✓" "the digit applies what the panel shows"
screen | grep -qE "^M +4 client" || { screen >&2; fail "the margin should mark turn 4 with mi-talk's letter M"; }
echo "ok: the margin marks the coding with its codebook's letter"
echo "----- transcript screen after ctrl+b (80x24) -----"
screen
keys q
expect "1 of 1 transcripts" "q goes back to the overview"
keys Enter
expect "keys: mi-talk" "the transcript reopens with the codebook last used in it"
keys m
expect "ctrl+s saves" "the memo editor opens"
keys Tab
sleep 0.3
type_text "written after tab"
expect "written after tab" "typing after tab still writes the memo"
echo "----- memo editor after tab (80x24) -----"
screen
keys C-s
expect "Memo saved on “desire” (turn 4) ✓" "ctrl+s says where the memo went"
keys u
expect "u again removes memo on “desire”" "a u on a memo first says what it would remove"
keys "?"
expect "Remap:" "help lists the keys"
expect "Code" "help is grouped by task"
keys Escape
gone "Remap:" "escape closes the help"
keys q
expect "1 of 1 transcripts" "back to the overview"
screen | grep -qE "S-A +session +4 +4/4 +3( |$)" || { screen >&2; fail "the overview row should read: 4/4 turns reviewed, 3 codings"; }
echo "ok: the overview shows 4/4 turns reviewed and 3 codings"
keys j k G g
sleep 0.3
screen | grep -qF "Agreement" && fail "g must move in the list, not open agreement"
keys C-q
expect "EXITED-0" "ctrl+q quits cleanly"

PYTHONPATH="$repo" "$py" - "$study" <<'PY'
import sys
from concord.services import codes, coding
from concord.services.workspace import Workspace

with Workspace.open(sys.argv[1], "ann") as ann:
    names = {c.id: c.name for c in codes.visible_codes(ann)}
    codings = coding.list_codings(ann, 1)
    coded = sorted(names[c.code_id] for c in codings)
    memos = [c.memo for c in codings if c.memo]
    assert coded == ["Moving forward", "Stagnation", "desire"], f"unexpected codings: {coded}"
    assert memos == ["written after tab"], f"expected the memo typed after tab, found {memos}"
print(f"ok: the study holds ann's {len(codings)} codings and the memo typed after tab")
PY
echo "tmux_flow: all steps passed"
