"""Value objects that go into the archive and come back out of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from connectors.base import Mention
from models.base import Classification


@dataclass(frozen=True, slots=True)
class StoredMention:
    """A mention ready to archive: the brands it matched and what the classifier said."""

    mention: Mention
    brands: tuple[str, ...]
    classification: Classification | None = None
    model_name: str | None = None
    model_version: str | None = None


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What one :meth:`Archive.store` call did.

    ``inserted`` are the mentions that were new (in batch order); ``updated`` counts the ones
    already archived, whose engagement counts were refreshed.
    """

    inserted: list[StoredMention]
    updated: int


@dataclass(frozen=True, slots=True)
class ArchivedMention:
    """A mention read back from the archive, with its row id and when it was fetched."""

    id: int
    mention: Mention
    brands: tuple[str, ...]
    classification: Classification | None
    model_name: str | None
    model_version: str | None
    fetched_at: datetime
