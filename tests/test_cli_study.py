"""The study commands as a user types them: init, coder, status, backup, audit."""

from __future__ import annotations

import json

from click.testing import CliRunner

from concord.app.cli import main


def run(*args, env=None):
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    return result


def test_setup_flow_on_every_backend(study_target, tmp_path):
    # A trusted study: --as is believed (tests/test_identity.py covers the checked modes).
    assert run("init", study_target, "--title", "Pilot", "--blind", "--identity", "trusted").exit_code == 0
    assert run("coder", "add", study_target, "ann").exit_code == 0
    assert run("coder", "add", study_target, "sue", "--role", "supervisor").exit_code == 0
    refused = run("coder", "add", study_target, "bob")
    assert refused.exit_code == 2 and "--as SUPERVISOR" in refused.stderr
    assert run("coder", "add", study_target, "bob", "--as", "sue").exit_code == 0
    assert run("coder", "add", study_target, "cai", env={"CONCORD_CODER": "sue"}).exit_code == 0

    listed = json.loads(run("coder", "list", study_target, "--format", "json").stdout)
    assert [(c["name"], c["role"]) for c in listed] == [
        ("ann", "coder"),
        ("sue", "supervisor"),
        ("bob", "coder"),
        ("cai", "coder"),
    ]

    status = json.loads(run("status", study_target, "--format", "json", "--as", "sue").stdout)
    assert status["transcripts"] == 0 and status["turns"] == 0
    assert status["codings"] == {"ann": 0, "bob": 0, "cai": 0, "sue": 0}
    # Without a name, nobody's progress shows while the study is blind.
    nobody = json.loads(run("status", study_target, "--format", "json").stdout)
    assert nobody["codings"] == {} and nobody["consensus_codings"] is None
    assert status["blind"] is True and status["phase"] == "independent coding"

    dest = tmp_path / "backup.concord"
    assert run("backup", study_target, dest).exit_code == 2  # a backup holds everything: the lead's
    assert run("backup", study_target, dest, "--as", "sue").exit_code == 0
    copied = json.loads(run("coder", "list", str(dest), "--format", "json").stdout)
    assert [c["name"] for c in copied] == ["ann", "sue", "bob", "cai"]

    audit = json.loads(run("audit", study_target, "--format", "json").stdout)
    assert [e["action"] for e in audit][:5] == ["study.init", "coder.add", "coder.add", "coder.add", "coder.add"]
    assert audit[3]["actor"] == "sue"


def test_csv_and_table_output(tmp_path):
    study = tmp_path / "s.concord"
    run("init", study, "--identity", "trusted")
    run("coder", "add", study, "ann")
    assert run("coder", "list", study, "--format", "csv").stdout.splitlines() == ["name,role,active", "ann,coder,True"]
    table = run("coder", "list", study).stdout.splitlines()
    assert table[0].split() == ["name", "role", "active"] and table[2].split() == ["ann", "coder", "True"]


def test_errors_are_one_line_on_stderr_with_exit_2(tmp_path):
    missing = run("status", tmp_path / "none.concord")
    assert missing.exit_code == 2 and missing.stdout == ""
    assert missing.stderr.strip().count("\n") == 0 and "no study here" in missing.stderr
    junk = tmp_path / "junk.concord"
    junk.write_text("plain text")
    assert "not a Concord study" in run("status", junk).stderr
    assert run("status", "postgresql+psycopg://u@127.0.0.1:1/x").exit_code == 2
    assert run("init", tmp_path / "no-such-dir" / "s.concord").exit_code == 2
    assert run("coder", "add", tmp_path / "none.concord", "x", "--role", "boss").exit_code == 2


def test_every_command_has_help():
    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, path + [name])

    for path, _command in walk(main, []):
        result = run(*path, "--help")
        assert result.exit_code == 0, path
        assert "Usage:" in result.stdout
