"""Lago's credit note metadata ({key: value or null}): replace, merge, delete all, delete a key.
Metadata is the only part of an issued credit note that changes; its amounts never do."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from billing_project.metadata import metadata_set, metadata_without

from . import locks
from .errors import NotFoundError
from .models import CreditNote


@transaction.atomic
def credit_note_metadata_set(*, credit_note: CreditNote, metadata: Any, merge: bool) -> CreditNote:
    """POST replaces the metadata with `metadata`; PATCH (`merge`) adds and overwrites keys."""
    note = locks.lock_credit_note(credit_note)
    # Lago's checks (app/models/metadata/item_metadata.rb): billing_project.metadata.
    note.metadata = metadata_set(note.metadata, metadata, merge=merge)
    note.save(update_fields=["metadata", "updated_at"])
    return note


@transaction.atomic
def credit_note_metadata_delete(*, credit_note: CreditNote, key: str | None = None) -> CreditNote:
    """Without `key`, all the metadata goes; with it, that key (404 `metadata_not_found` when the
    note has no metadata at all, as Lago; an absent key changes nothing)."""
    note = locks.lock_credit_note(credit_note)
    if key is not None and not note.metadata:
        raise NotFoundError("metadata")
    note.metadata = metadata_without(note.metadata, key) if key is not None else {}
    note.save(update_fields=["metadata", "updated_at"])
    return note
