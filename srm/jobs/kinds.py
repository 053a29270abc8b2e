"""Job kinds: what one kind of job is (:class:`JobKind`) and the registry every generic part of
:mod:`srm.jobs` reads: creating a job (:func:`srm.jobs.create_job`), running one (``srm jobs run
N``), workers choosing what they take (``srm worker --kinds``), ``srm jobs``.

A kind is one registration, in the module that holds its runner::

    register_job_kind(JobKind("score", run_score, check=check_score_job))

:mod:`srm.jobs` imports the modules of the kinds it ships (:mod:`~srm.jobs.training`,
:mod:`~srm.jobs.scoring`, :mod:`~srm.jobs.auditing`), so they are registered wherever a job is
created or run. Another package ships kinds as entry points of the group :data:`PLUGIN_GROUP`
(in its ``pyproject.toml``: ``[project.entry-points."srm.job_kinds"]``, ``echo =
"my_pkg.jobs:ECHO"``, naming a :class:`JobKind`); :mod:`srm.jobs` registers every installed one
(:func:`load_plugin_kinds`), so ``srm jobs run N`` and workers know them in any process.

The store holds a kind as a plain string and does not list the kinds: a job's kind is checked
here when it is created (:func:`job_kind`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from srm.config import ConfigError
from srm.jobs.run import JobRun
from srm.jobs.watching import RUN_DIR_KEYS
from srm.store import TrainingJob

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from srm.sigterm import StopRequest

log = logging.getLogger(__name__)

#: The entry-point group of job kinds installed by other packages: each entry point names a
#: :class:`JobKind` (``module:NAME``).
PLUGIN_GROUP = "srm.job_kinds"
#: A kind's name: lower-case letters, digits, ``_`` and ``-``, at most 16 characters (the
#: store's ``kind`` column), no comma (``srm worker --kinds`` takes a comma-separated list).
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,15}")


@dataclass(frozen=True)
class JobKind:
    """One kind of job: what :func:`srm.jobs.create_job` checks before it queues one, where
    its run directory goes, and how ``srm jobs run N`` runs it."""

    #: What the job's row holds as ``kind`` (:data:`NAME_PATTERN`).
    name: str
    #: The work, in the job's main process: ``run(JobRun) -> (status, message)``, status
    #: ``succeeded`` or ``cancelled`` (an exception fails the job). It reports progress with
    #: ``run.report(step, total, share, message)`` and stops when ``run.stop()`` says so.
    run: Callable[[JobRun], tuple[str, str]]
    #: For a kind that may run as several processes (``accelerate launch``, ``torchrun``):
    #: what the other processes run. It gets the SIGTERM flag, writes nothing, and returns
    #: ``succeeded`` or ``cancelled``. A kind without it runs in one process only.
    follow: Callable[[StopRequest | None], str] | None = None
    #: Checks a new job before it is written, ``check(session, job)``: ``job`` is the row as it
    #: will be queued (kind, dataset id, config as given, model id, launcher, worker tag). It
    #: raises :class:`~srm.config.ConfigError` naming the bad field (or a
    #: :class:`~srm.store.StoreError`), and replaces ``job.config`` with the full config to
    #: store. ``None``: the config is stored as given.
    check: Callable[[Session, TrainingJob], None] | None = None
    #: The config key a new job's run directory (``runs_dir(url)/job-<id>``) is written under,
    #: one of :data:`~srm.jobs.watching.RUN_DIR_KEYS`; ``None`` when ``check`` sets
    #: ``run_dir`` itself (an audit job runs in its audit's directory).
    run_dir_key: str | None = "run_dir"

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(
                f"job kind name: got {self.name!r}; use up to 16 lower-case letters, digits, "
                "'_' or '-', starting with a letter"
            )
        if self.run_dir_key is not None and self.run_dir_key not in RUN_DIR_KEYS:
            raise ValueError(
                f"run_dir_key: got {self.run_dir_key!r}; use one of {', '.join(RUN_DIR_KEYS)} "
                "(or None: check sets run_dir)"
            )


_registry: dict[str, JobKind] = {}


def register_job_kind(kind: JobKind) -> JobKind:
    """Make ``kind`` a kind of job: creatable, runnable by ``srm jobs run N``, taken by workers
    (their default takes every kind). A name registered already is refused (:class:`ValueError`):
    :func:`unregister_job_kind` it first."""
    if kind.name in _registry:
        raise ValueError(f"job kind {kind.name!r} is registered already")
    _registry[kind.name] = kind
    return kind


def unregister_job_kind(name: str) -> JobKind:
    """Undo :func:`register_job_kind` (a test's kind, afterwards); return what was registered.
    Jobs of the kind stay in the store, and nothing runs them until it is registered again."""
    kind = job_kind(name)
    del _registry[name]
    return kind


def job_kind(name: str) -> JobKind:
    """The registered kind ``name``; a :class:`~srm.config.ConfigError` naming the registered
    kinds if there is none."""
    kind = _registry.get(name)
    if kind is None:
        raise ConfigError(f"kind: got {name!r}; use one of {', '.join(job_kinds())}")
    return kind


def job_kinds() -> tuple[str, ...]:
    """The registered kinds' names, sorted."""
    return tuple(sorted(_registry))


def load_plugin_kinds() -> list[str]:
    """Register the job kinds installed packages declare (entry points of :data:`PLUGIN_GROUP`)
    and return their names. One that cannot be loaded, is not a :class:`JobKind` or takes a
    registered name is skipped with a warning naming its entry point: a broken plugin never
    stops the kinds that work."""
    loaded = []
    for point in entry_points(group=PLUGIN_GROUP):
        where = f"entry point {point.name} = {point.value} ({PLUGIN_GROUP})"
        try:
            kind = point.load()
            if not isinstance(kind, JobKind):
                raise TypeError(f"it names a {type(kind).__name__}, not a srm.jobs.JobKind")
            register_job_kind(kind)
        except Exception as err:  # a plugin's own import error, of any type
            log.warning("job kind not loaded: %s: %s", where, err)
            continue
        loaded.append(kind.name)
    return loaded
