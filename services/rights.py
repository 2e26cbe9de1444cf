"""Who may do what in a study: every "may this person do this" rule, in one place.

Each ``require_*`` function returns quietly (or with the acting person) when the actor may go on and raises
``PermissionDenied`` with a sentence the person can act on when not. The services call them before they read
or write; the CLI and the TUI call the same functions to ask before they open a screen, so a refusal is one
message whichever way a person comes in. Nothing here is decided by the UI.

Two ideas carry every rule:

* The lead: supervisors and admins (``Actor.supervises``). They set up the study once it has one of them,
  reconcile (consensus), develop the themes, select sessions and unblind.
* The blind (``Workspace.blind_for_actor``): while a blind study is not unblinded, a coder, or a caller who
  gave no name, sees only their own work: no groups, scores, other coders' codings, agreement or results.

What a person may *see* inside a list (their own inductive codes, their own memos) is filtered where the
list is read; this module holds the refusals.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from concord.services.dto import Actor
from concord.services.workspace import Workspace
from concord.storage.errors import PermissionDenied
from concord.storage.models import Coder

CONSENSUS_LAYER = "consensus"
# The words a layer argument takes besides a coder's name (services.coding.list_codings, --layer): no coder
# may be called one of them, or their codings could not be asked for by name.
LAYER_WORDS = ("own", "others", CONSENSUS_LAYER)


def allows(rule: Callable[[Workspace], object], workspace: Workspace) -> bool:
    """Whether ``rule`` lets the actor through: for a UI that shows only what a person may open."""
    try:
        rule(workspace)
    except PermissionDenied:
        return False
    return True


# ------------------------------------------------------------------------------------ the lead


def require_lead(workspace: Workspace) -> Actor:
    """A named supervisor or admin."""
    actor = workspace.require_actor()
    if not actor.supervises:
        raise PermissionDenied(f"{actor.name} is a {actor.role}; this needs a supervisor or admin")
    return actor


def require_setup_rights(workspace: Workspace) -> None:
    """Setting up people, settings, codebooks and imports is open until the study has a supervisor or admin;
    from then on it takes one of them (--as)."""
    with workspace.store.reader() as session:
        has_lead = session.scalar(
            select(func.count()).select_from(Coder).where(Coder.role.in_(("supervisor", "admin")))
        )
    if has_lead:
        if workspace.actor is None:
            raise PermissionDenied("this study has a supervisor: setting it up takes --as SUPERVISOR")
        require_lead(workspace)


def require_backup_rights(workspace: Workspace) -> None:
    """A backup is a copy of everything, blinded attributes and every coder's work included: it is
    housekeeping, under the setup rule (open until the study has a supervisor or admin, then one of them)."""
    require_setup_rights(workspace)


def require_workfile_rights(workspace: Workspace) -> Actor:
    """Handing out, refreshing and collecting a coder's work file reads and writes that coder's whole layer,
    and the main study it comes from holds everyone's: supervisors and admins."""
    return require_lead(workspace)


def require_consensus_rights(workspace: Workspace) -> Actor:
    """The disagreement queue and its decisions name every coder's work: supervisors and admins."""
    return require_lead(workspace)


def require_theme_rights(workspace: Workspace) -> Actor:
    """Renaming, redefining, moving, merging and splitting codes, and merge suggestions across coders."""
    return require_lead(workspace)


def require_unblinding_rights(workspace: Workspace) -> Actor:
    return require_lead(workspace)


def require_assistant_rights(workspace: Workspace) -> Actor:
    """Switching the coding assistant on or off for the study, and saying what it may learn from."""
    return require_lead(workspace)


# ------------------------------------------------------------------------------------ the blind


def require_agreement_rights(workspace: Workspace) -> None:
    if workspace.blind_for_actor():
        raise PermissionDenied(
            "agreement compares the coders' work: while the study is blind it is for supervisors and admins"
            " (--as SUPERVISOR)"
        )


def require_results_rights(workspace: Workspace, *, blind: bool | None = None) -> None:
    """Results compare groups: hidden from coders while the study is blind. ``blind``: the blind as already
    read with the data (a study can be made blind again between the check and the read)."""
    if workspace.blind_for_actor() if blind is None else blind:
        raise PermissionDenied(
            f"the study is blind: results by group are for supervisors and admins until it is"
            f" unblinded ({_who(workspace)} may not see them)"
        )


def require_project_export_rights(workspace: Workspace) -> None:
    """A REFI-QDA project holds everyone's codings and the blinded attributes."""
    if workspace.blind_for_actor():
        raise PermissionDenied(
            "the study is blind: a project export holds everyone's codings and blinded "
            "attributes, so it takes a supervisor or admin (--as), or an unblinded study"
        )


def require_selection_rights(workspace: Workspace, *, apply: bool = False) -> None:
    """Session selection reads the questionnaire scores; storing its high/low groups is the lead's."""
    if workspace.blind_for_actor():
        raise PermissionDenied(
            "the study is blind: questionnaire scores are hidden from coders, so session "
            "selection takes a supervisor or admin (--as), or an unblinded study"
        )
    if apply:
        require_lead(workspace)


def require_scores_rights(workspace: Workspace) -> None:
    """The questionnaire scores themselves (concord scores): hidden from coders while the study is blind."""
    if workspace.blind_for_actor():
        raise PermissionDenied(
            "the study is blind: questionnaire scores are for supervisors and admins (--as) until it is"
            f" unblinded ({_who(workspace)} may not see them)"
        )


def require_codebook_history_rights(workspace: Workspace) -> None:
    """Codebook snapshots and version histories name every coder's inductive codes."""
    if workspace.blind_for_actor():
        require_lead(workspace)


def require_coding_layer_rights(workspace: Workspace, layer: str, *, blind: bool) -> Actor | None:
    """Reading the codings of one layer in the workbench: ``own`` needs a name; while the study is blind
    for the actor, only their own layer. Returns the actor (None for a caller without a name)."""
    if layer == "own":
        return workspace.require_actor()
    actor = workspace.actor
    if blind and not (actor and layer == actor.name):
        raise PermissionDenied("the study is blind: you can see only your own codings")
    return actor


def require_export_layer_rights(workspace: Workspace, layer: str, *, blind: bool) -> str:
    """The layer a table or report may be made from (the consensus layer when none is named); while the study
    is blind for the actor only their own."""
    layer = (layer or CONSENSUS_LAYER).strip()
    actor = workspace.actor
    if blind and not (actor is not None and layer == actor.name):
        what = "the consensus layer" if layer == CONSENSUS_LAYER else f"{layer!r}'s codings"
        raise PermissionDenied(
            f"the study is blind: {_who(workspace)} may not export {what} (a supervisor can, or anyone after"
            " unblinding)"
        )
    return layer


# ------------------------------------------------------------------------------------ ownership


def require_own_coding(actor: Actor, *, coder_id: int, phase: str) -> None:
    """A coder changes only their own independent codings (the consensus layer is changed in consensus)."""
    if coder_id != actor.id or phase != "independent":
        raise PermissionDenied("you can change only your own codings")


def require_own_memo(actor: Actor, *, coder_id: int | None) -> None:
    if coder_id != actor.id:
        raise PermissionDenied("you can change only your own memos")


def _who(workspace: Workspace) -> str:
    actor = workspace.actor
    return actor.name if actor else "a caller without --as"
