"""How the Train page presents jobs: which job's details it shows, and what a finished job
left behind, in words. Pure functions over :class:`rows.JobRow`, tested without Streamlit."""

from __future__ import annotations

from collections.abc import Sequence

from webapp.rows import JobRow


def job_to_show(ids: Sequence[int], current: int | None, newest_before: int | None) -> int:
    """Which job the Train page's details show, ``ids`` newest first: the one picked
    (``current``), unless nothing valid is picked or the pick was the newest job and a newer
    one has appeared since (``newest_before``), when it is the newest.

    >>> job_to_show([3, 2, 1], None, None), job_to_show([3, 2, 1], 2, 2)
    (3, 3)
    >>> job_to_show([3, 2, 1], 1, 2)  # an older job picked: it stays
    1
    """
    if current not in ids or (current == newest_before and ids[0] != newest_before):
        return ids[0]
    return current


def job_outcome(job: JobRow) -> str | None:
    """What a succeeded job left behind, in words true for its kind (numbers, no data text);
    ``None`` for any other job."""
    if job.status != "succeeded":
        return None
    if job.kind == "train" and job.model_id is not None:
        parent = job.config.get("parent_model_id")
        against = f"its parent, model #{parent}," if parent is not None else "another model"
        return f"Registered model #{job.model_id}: compare it with {against} on the Models page."
    if job.kind == "score" and job.model_id is not None:
        return (
            f"Model #{job.model_id} has scored the dataset: the Inspect and Models pages and the "
            "Annotate queue now read these scores."
        )
    if job.kind == "audit":
        return (
            "The audit is complete: the Annotate queue now orders this dataset by its "
            "out-of-fold disagreement."
        )
    return None
