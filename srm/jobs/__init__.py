"""Long work (training a model, scoring or auditing a dataset) as subprocesses recorded in the
store.

The app never trains inside a Streamlit script run: it creates a job row, launches a process
that runs it, and polls the row. The process writes its own progress (throttled to one short
transaction a second), reads ``cancel_requested`` back with each write, and stops itself when
it is set. A job runs once: ``queued -> running -> succeeded | failed | cancelled``.

Liveness does not depend on who looks: a running job's process writes ``heartbeat_at`` every
:data:`HEARTBEAT_INTERVAL` seconds from a thread of its own, and :func:`reap_dead_jobs` fails a
running job silent for :data:`HEARTBEAT_TIMEOUT` seconds, whichever machine it ran on (and, at
once, a job of this machine whose process is gone). Reaping writes, so it runs where work is
created (:func:`create_job`, which every ``create_NAME_job`` calls), in ``srm jobs``, and, for
readers that poll such as the app's job list, at most every :data:`REAP_INTERVAL` seconds
(:func:`reap_due`): the polls in between only read.

    >>> with Session.begin() as s:
    ...     job = create_train_job(s, dataset="sample", config={"model": {"backbone": "tiny"}})
    >>> pid = launch(url, job.id)            # srm jobs run N --db URL, in its own session
    >>> with Session.begin() as s:
    ...     reap_dead_jobs(s)                # jobs whose process died without a word -> failed
    ...     jobs = list_jobs(s)              # newest first; job.progress, job.message, ...
    >>> with Session.begin() as s:
    ...     request_cancel(s, job.id)        # the job stops at its next progress write

Functions that take a session never commit (the caller owns the unit of work); the ones that
take a store URL (:func:`launch`, :func:`run_job`) open their own short transactions, so no
write transaction is ever held while a model trains.

A train job's run directory is its ``output_dir`` (``runs_dir(url)/job-<id>``): the model,
``metrics.jsonl``, ``checkpoints/`` and ``job.log``. A score job's is ``run_dir`` in its config
and holds only the log.

Audit jobs (:mod:`~srm.jobs.auditing`) run the out-of-fold label audit of a dataset, a fold
per transaction, and resume by a new job on the same audit. A stopped train job resumes the
same way: a new job from its newest checkpoint, in its run directory (:func:`resume_train_job`).

Who starts a job's process is its ``launcher``, chosen when it is created and acted on by
:func:`start`: ``local`` (:func:`launch`, above), ``worker`` (queued until an ``srm worker`` on
any machine that reaches the store claims it: :mod:`~srm.jobs.working`) or ``command`` (a
configured submit command such as ``sbatch``: :func:`submit`). Whichever it is, the job runs
as ``srm jobs run N`` and reports into the store the same way.

The package follows a job's life, a module a stage: :mod:`~srm.jobs.creating`,
:mod:`~srm.jobs.launching`, :mod:`~srm.jobs.working`, :mod:`~srm.jobs.running` and
:mod:`~srm.jobs.watching`. None of them names a kind of job: each reads the registry of
:mod:`~srm.jobs.kinds`, where a kind is one :class:`JobKind` (its name, its runner, a follower
for several processes, the check of a new job's config, its run directory's key) registered
by one :func:`register_job_kind` call in the kind's own module: :mod:`~srm.jobs.training`,
:mod:`~srm.jobs.scoring` (which ``srm score --dataset`` runs too) and :mod:`~srm.jobs.auditing`,
each with its typed ``create_NAME_job`` over :func:`create_job`. A new kind is such a module,
imported here (which registers it), or, from another package, an entry point of the group
``srm.job_kinds`` naming its :class:`JobKind` (loaded here: :func:`load_plugin_kinds`). What
a runner sees (:class:`~srm.jobs.run.JobRun`) and the writers of a running job's row are in
:mod:`~srm.jobs.run`. Import from ``srm.jobs``; the
intervals are read where they are used (``srm.jobs.run.PROGRESS_INTERVAL``), so set them there.

    >>> register_job_kind(JobKind("echo", run_echo))     # run_echo(run: JobRun) -> (status, msg)
    >>> create_job(s, "echo", dataset="sample", config={"text": "hi"}).id
"""

from srm.jobs.auditing import audit_recipe, check_audit_job, create_audit_job
from srm.jobs.creating import check_launcher, create_job, runs_dir
from srm.jobs.kinds import (
    PLUGIN_GROUP,
    JobKind,
    job_kind,
    job_kinds,
    load_plugin_kinds,
    register_job_kind,
    unregister_job_kind,
)
from srm.jobs.launching import (
    LOG_FILE,
    SUBMIT_COMMAND_ENV,
    launch,
    start,
    submit,
    submit_args,
    submit_command,
)
from srm.jobs.run import HEARTBEAT_INTERVAL, PROGRESS_INTERVAL, JobRun
from srm.jobs.running import run_job
from srm.jobs.scoring import (
    MAX_LOCAL_SCORE_JOBS,
    SCORE_BATCH_SIZE,
    SCORE_CHUNK,
    CheckpointScores,
    JobLimitError,
    check_local_score_jobs,
    check_score_job,
    create_score_job,
    max_local_score_jobs,
    score_checkpoint,
    score_dataset,
)
from srm.jobs.training import (
    JOB_KEYS,
    RESUMABLE_STATUSES,
    TRAIN_SHARE,
    check_train_job,
    create_train_job,
    resume_point,
    resume_train_job,
)
from srm.jobs.watching import (
    HEARTBEAT_TIMEOUT,
    REAP_INTERVAL,
    JobStateError,
    job_metrics,
    job_place,
    list_jobs,
    log_tail,
    reap_dead_jobs,
    reap_due,
    request_cancel,
)
from srm.jobs.working import Worker, WorkerOptions

load_plugin_kinds()  # after the shipped kinds, whose names a plugin cannot take

__all__ = [
    "PLUGIN_GROUP",
    "load_plugin_kinds",
    "HEARTBEAT_INTERVAL",
    "HEARTBEAT_TIMEOUT",
    "JOB_KEYS",
    "LOG_FILE",
    "MAX_LOCAL_SCORE_JOBS",
    "PROGRESS_INTERVAL",
    "REAP_INTERVAL",
    "RESUMABLE_STATUSES",
    "SCORE_BATCH_SIZE",
    "SCORE_CHUNK",
    "SUBMIT_COMMAND_ENV",
    "TRAIN_SHARE",
    "CheckpointScores",
    "JobKind",
    "JobLimitError",
    "JobRun",
    "JobStateError",
    "Worker",
    "WorkerOptions",
    "audit_recipe",
    "check_audit_job",
    "check_launcher",
    "check_local_score_jobs",
    "check_score_job",
    "check_train_job",
    "create_audit_job",
    "create_job",
    "create_score_job",
    "create_train_job",
    "job_kind",
    "job_kinds",
    "job_metrics",
    "job_place",
    "launch",
    "list_jobs",
    "log_tail",
    "max_local_score_jobs",
    "reap_dead_jobs",
    "reap_due",
    "register_job_kind",
    "request_cancel",
    "resume_point",
    "resume_train_job",
    "run_job",
    "runs_dir",
    "score_checkpoint",
    "score_dataset",
    "start",
    "submit",
    "submit_args",
    "submit_command",
    "unregister_job_kind",
]
