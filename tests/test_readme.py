"""README.md's fresh-machine commands and .ci/run stay in step."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _fenced_commands(text: str) -> list[str]:
    blocks, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if inside:
            blocks.append(line)
    return blocks


def test_ci_runs_the_exact_test_command_of_the_readme():
    readme = (ROOT / "README.md").read_text()
    commands = _fenced_commands(readme[: readme.index("## The study")])
    assert len(commands) == 2, "the README starts with exactly two fresh-machine commands"
    install_and_run, install_and_test = commands
    assert "pip install -e ." in install_and_run
    assert "pytest" in install_and_test
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install_and_test in ci_lines
