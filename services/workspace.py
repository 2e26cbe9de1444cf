"""An open study and the person acting in it: the seam every service goes through."""

from __future__ import annotations

import os

from sqlalchemy.orm import Session

from concord.services import identity
from concord.services.dto import Actor, StudySettings
from concord.storage.db import StudyStore, open_study
from concord.storage.errors import PermissionDenied
from concord.storage.models import Study


def settings_of(row: Study) -> StudySettings:
    return StudySettings(
        title=row.title,
        language=row.language,
        blind=row.blind,
        unblinded_at=row.unblinded_at,
        anonymous_consensus=row.anonymous_consensus,
        pseudonym_register=row.pseudonym_register,
        nlp_pipeline=row.nlp_pipeline,
    )


class Workspace:
    """A study opened for one person (or for nobody in particular, for setup commands).

    The actor is looked up once, by the study's identity rule (services/identity.py): a name
    given with --as is a claim, checked against the login running the command unless the
    study is "trusted". Services ask the workspace whether the actor may see other coders'
    work, blinded attributes and scores.
    """

    def __init__(self, store: StudyStore, actor_name: str | None = None):
        self.store = store
        self.actor_name = actor_name or None
        self._actor: Actor | None = None
        self._resolved = False

    @classmethod
    def open(cls, target: str, actor_name: str | None = None) -> Workspace:
        workspace = cls(open_study(target), actor_name if actor_name is not None else os.environ.get("CONCORD_CODER"))
        try:
            # Checked now, not when first needed: a refused --as must stop every command, even
            # one that would never ask who is acting. (A trusted study keeps the lazy lookup.)
            if workspace.identity_mode != identity.TRUSTED:
                _ = workspace.actor
        except BaseException:
            workspace.close()
            raise
        return workspace

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- who is acting -------------------------------------------------------------

    @property
    def actor(self) -> Actor | None:
        if not self._resolved:
            with self.store.reader() as session:
                self._actor = self.actor_in(session)
            self._resolved = True
        return self._actor

    def actor_in(self, session: Session) -> Actor | None:
        row = identity.resolve_actor(session, self.actor_name)
        return None if row is None else Actor(id=row.id, name=row.name, role=row.role)

    @property
    def identity_mode(self) -> str:
        with self.store.reader() as session:
            return identity.study_mode(session)

    def require_actor(self) -> Actor:
        actor = self.actor
        if actor is None:
            if self.identity_mode == identity.TRUSTED:
                raise PermissionDenied("say who you are: --as NAME (or set CONCORD_CODER)")
            raise PermissionDenied(
                "this needs a person, and the login running it is bound to no coder in this study"
                " (an admin binds it: concord coder add STUDY NAME --login LOGIN)"
            )
        return actor

    @property
    def actor_label(self) -> str:
        return self.actor.name if self.actor else "(unnamed)"

    # -- the blind -------------------------------------------------------------------

    def settings(self) -> StudySettings:
        with self.store.reader() as session:
            return settings_of(session.get(Study, 1))

    def blind_for_actor(self, settings: StudySettings | None = None) -> bool:
        """Whether the actor must not see groups, scores or other coders' work.

        Supervisors and admins reconcile and unblind, so the blind never applies to
        them. Nobody-in-particular (setup commands without --as) is treated as a
        coder: nothing hidden is shown without a named person.
        """
        settings = settings or self.settings()
        if not settings.blind_now:
            return False
        actor = self.actor
        return actor is None or not actor.supervises
