"""`concord codebook ...`: the codebooks of a study and theme development."""

from __future__ import annotations

import click

from concord.app.cli_common import as_option, opened, study_argument
from concord.app.output import emit_rows, format_option, to_json
from concord.services import codebooks as service


@click.group()
def codebook():
    """Codebooks: list, show, add, export, import; theme development for supervisors."""


@codebook.command("list")
@study_argument
@format_option()
def list_(study, output_format):
    """The bundled codebooks and those in the study."""
    with opened(study) as workspace:
        rows = service.list_codebooks(workspace)
    emit_rows(rows, output_format, ["key", "title", "version", "in_study", "bundled", "codes", "versions"])


def _print_tree(codes, indent=0, show_definitions=True):
    for code in codes:
        pole = f" [{code.pole}{' +' if code.high_pole else ''}]" if code.pole else ""
        key = f" ({code.hotkey})" if code.hotkey else ""
        click.echo(f"{'  ' * indent}- {code.name}{key}{pole}")
        if show_definitions:
            for label, text in (
                ("definition", code.definition),
                ("include", code.inclusion),
                ("exclude", code.exclusion),
                ("example", code.example),
            ):
                if text:
                    click.echo(f"{'  ' * (indent + 1)}  {label}: {' '.join(text.split())}")
        _print_tree(code.children, indent + 1, show_definitions)


@codebook.command()
@study_argument
@click.argument("codebook_id")
@click.option("--brief", is_flag=True, help="Names only, without definitions.")
@as_option
@format_option(choices=("table", "json"))
def show(study, codebook_id, brief, actor, output_format):
    """The tree of CODEBOOK_ID with definitions (a study codebook, else the bundled one)."""
    from concord.codebooks.loader import bundled_ids, load_bundled
    from concord.storage.errors import NotFound

    with opened(study, actor) as workspace:
        try:
            spec = service.codebook_spec(workspace, codebook_id)
        except NotFound:
            if codebook_id not in bundled_ids():
                raise
            spec = load_bundled(codebook_id)
    if output_format == "json":
        click.echo(to_json(spec))
        return
    click.echo(f"{spec.title} ({spec.id}, version {spec.version})")
    if spec.source:
        click.echo(f"Source: {spec.source}")
    _print_tree(spec.codes, show_definitions=not brief)


@codebook.command()
@study_argument
@click.argument("id_or_file")
@as_option
def add(study, id_or_file, actor):
    """Add a bundled codebook by id, or a codebook file (.yaml or .qdc)."""
    with opened(study, actor) as workspace:
        info = service.add_codebook(workspace, id_or_file)
    click.echo(f"Added codebook {info.key} ({info.codes} codes).")


@codebook.command("import")
@study_argument
@click.argument("file", type=click.Path(dir_okay=False))
@as_option
def import_(study, file, actor):
    """Import a codebook file: our YAML, or REFI-QDA .qdc from NVivo, ATLAS.ti, MAXQDA, QualCoder."""
    spec, warnings = service.read_codebook_file(file)
    with opened(study, actor) as workspace:
        info = service.add_codebook_spec(workspace, spec, origin="import")
    for warning in warnings:
        click.echo(f"note: {warning}", err=True)
    click.echo(f"Imported codebook {info.key} ({info.codes} codes).")


@codebook.command()
@study_argument
@click.argument("codebook_id")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="FILE.yaml or FILE.qdc")
@as_option
def export(study, codebook_id, out, actor):
    """Export a study codebook to YAML or REFI-QDA .qdc."""
    with opened(study, actor) as workspace:
        path = service.export_codebook(workspace, codebook_id, out)
    click.echo(f"Wrote {path}.")


@codebook.command()
@study_argument
@click.argument("code")
@click.option("--name", help="A new name.")
@click.option("--label", help="A new short label.")
@click.option("--definition")
@click.option("--inclusion")
@click.option("--exclusion")
@click.option("--example")
@click.option("--hotkey")
@click.option("--colour")
@as_option
def edit(study, code, actor, **fields):
    """Rename or redefine CODE (a name, BOOK/NAME or id); supervisors only; kept in its history."""
    changes = {k: v for k, v in fields.items() if v is not None}
    if not changes:
        raise click.UsageError("say what to change, e.g. --name or --definition")
    with opened(study, actor) as workspace:
        info = service.edit_code(workspace, code, **changes)
    click.echo(f"Changed {info.name}: {', '.join(changes)}.")


@codebook.command()
@study_argument
@click.argument("code")
@click.option("--under", "parent", help="The new parent (a theme or category); omit for the top level.")
@as_option
def move(study, code, parent, actor):
    """Move CODE under a category or theme; supervisors only."""
    with opened(study, actor) as workspace:
        info = service.move_code(workspace, code, parent)
    click.echo(f"Moved {info.name} to {' > '.join(info.path[:-1]) or 'the top level'}.")


@codebook.command()
@study_argument
@click.argument("codebook_id")
@click.argument("name")
@click.option("--under", "parent", help="The parent theme, if any.")
@click.option("--definition")
@as_option
def category(study, codebook_id, name, parent, definition, actor):
    """Create a category or theme NAME in CODEBOOK_ID to gather codes under; supervisors only."""
    with opened(study, actor) as workspace:
        info = service.create_category(workspace, codebook_id, name, parent, definition)
    click.echo(f"Created {' > '.join(info.path)}.")


@codebook.command()
@study_argument
@click.argument("source")
@click.argument("target")
@as_option
def merge(study, source, target, actor):
    """Merge SOURCE into TARGET: codings and children follow; recorded in the audit log."""
    with opened(study, actor) as workspace:
        info = service.merge_codes(workspace, source, target)
    click.echo(f"Merged {source} into {info.name}.")


@codebook.command()
@study_argument
@click.argument("code")
@click.argument("into", nargs=-1, required=True)
@as_option
def split(study, code, into, actor):
    """Split CODE into new sibling codes INTO...; its codings stay until recoded."""
    with opened(study, actor) as workspace:
        made = service.split_code(workspace, code, list(into))
    click.echo(f"Split {code} into {', '.join(m.name for m in made)}.")


@codebook.command("suggest-merges")
@study_argument
@click.option("--threshold", type=float, help="Similarity needed, 0-1 (default 0.6).")
@click.option("--review", is_flag=True, help="Accept or reject each suggestion in turn.")
@as_option
@format_option()
def suggest_merges(study, threshold, review, actor, output_format):
    """Near-identical inductive code names across coders, to merge one group at a time."""
    with opened(study, actor) as workspace:
        groups = service.merge_suggestions(workspace, threshold)
        if not review:
            emit_rows(
                [
                    {
                        "group": i,
                        "score": round(g.score, 3),
                        "codes": " | ".join(f"{n} ({c})" for n, c in zip(g.names, g.creators)),
                        "ids": list(g.code_ids),
                    }
                    for i, g in enumerate(groups, 1)
                ],
                output_format,
                ["group", "score", "codes", "ids"],
            )
            return
        for number, group in enumerate(groups, 1):
            click.echo(f"\n{number}. score {group.score:.2f}")
            for code_id, name, creator in zip(group.code_ids, group.names, group.creators):
                click.echo(f"   [{code_id}] {name}  ({creator})")
            if not click.confirm(f"Merge into [{group.code_ids[0]}] {group.names[0]!r}?", default=False):
                continue
            for code_id in group.code_ids[1:]:
                service.merge_codes(workspace, code_id, group.code_ids[0])
            click.echo("   merged.")


@codebook.command()
@study_argument
@click.argument("code")
@as_option
@format_option()
def history(study, code, actor, output_format):
    """Every change to CODE: renames, definitions, moves, merges, splits."""
    with opened(study, actor) as workspace:
        rows = service.code_history(workspace, code)
    emit_rows(rows, output_format, ["changed_at", "changed_by", "field", "old_value", "new_value"])


@codebook.command()
@study_argument
@click.argument("codebook_id")
@click.option("--show", "number", type=int, help="Print version N as YAML.")
@as_option
@format_option()
def versions(study, codebook_id, number, actor, output_format):
    """The kept versions of a codebook (a snapshot at each change)."""
    with opened(study, actor) as workspace:
        if number is not None:
            click.echo(service.codebook_version_text(workspace, codebook_id, number))
            return
        rows = service.codebook_versions(workspace, codebook_id)
    emit_rows([{"version": n, "at": at, "by": by, "reason": why} for n, at, by, why in rows], output_format)
