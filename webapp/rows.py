"""The plain rows pages get from ``services`` and ``jobs_service``: a pair, a model, a job, as
frozen dataclasses with no store session attached (safe to cache and to keep in session state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PairRow:
    """A pair as pages show it: ``db_id`` is the store's key, ``id`` the imported one."""

    db_id: int
    id: str
    dataset: str
    source: str
    prompt: str
    chosen: str
    rejected: str
    margin: float | None
    label: str | None = None
    event_id: int | None = None
    subset: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    """A model the pages can score with; ``id`` is ``None`` for one not in the store."""

    id: int | None
    name: str
    path: str
    head: str
    backbone: str
    causal: bool
    created: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        prefix = f"#{self.id} " if self.id is not None else ""
        return f"{prefix}{self.name} ({self.head} head on {self.backbone})"


@dataclass(frozen=True)
class JobRow:
    id: int
    kind: str
    status: str
    dataset: str | None
    progress: float
    step: int
    total: int
    message: str
    error: str
    model_id: int | None
    config: dict[str, Any]
    created: str
    finished: bool
    place: str = ""  # the host it runs on, else who it waits for (srm.jobs.job_place)
