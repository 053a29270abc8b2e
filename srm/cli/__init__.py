"""The ``srm`` command line: thin wrappers over library functions.

Heavy imports (torch, datasets) happen inside the commands that need them, so ``srm --help``
and ``srm segment`` start fast. A module per group of commands: :mod:`~srm.cli.data` (import,
datasets, export, segment), :mod:`~srm.cli.models` (init, backbones, models, compare),
:mod:`~srm.cli.scoring` (score, eval), :mod:`~srm.cli.training` (train),
:mod:`~srm.cli.auditing` (audit), :mod:`~srm.cli.annotating` (guidelines),
:mod:`~srm.cli.jobs` (jobs, ``jobs run N``, ``jobs cancel N``), :mod:`~srm.cli.worker`,
:mod:`~srm.cli.app`, :mod:`~srm.cli.serve` and :mod:`~srm.cli.rank`;
:mod:`~srm.cli.options` holds the options they share and the rules behind them.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

import click

from srm import __version__
from srm.cli.annotating import guidelines_cmd
from srm.cli.app import app_cmd
from srm.cli.auditing import audit_cmd
from srm.cli.data import datasets_cmd, export_cmd, import_cmd, segment_cmd
from srm.cli.jobs import jobs_cmd
from srm.cli.models import backbones_cmd, compare_cmd, init_cmd, models_cmd
from srm.cli.rank import rank_cmd
from srm.cli.scoring import eval_cmd, score_cmd
from srm.cli.serve import serve_cmd
from srm.cli.team import agreement_cmd, assign_cmd, users_cmd
from srm.cli.training import train_cmd
from srm.cli.worker import worker_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="srm")
@click.option("-v", "--verbose", is_flag=True, help="Log progress and debug messages to stderr.")
def main(verbose: bool) -> None:
    """SRM Studio: sentence-level reward models for preference data.

    Import preference pairs, split responses into sentences, train, score and evaluate
    sentence-level reward models, run the app's jobs, and serve the app.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # transformers draws a progress bar for every weight file it loads; ours say enough.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        # peft calls a transformers method that transformers 5 renamed: harmless until v6, and
        # nothing a user of this command can act on.
        warnings.filterwarnings(
            "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )


for command in (
    import_cmd,
    datasets_cmd,
    export_cmd,
    segment_cmd,
    init_cmd,
    backbones_cmd,
    models_cmd,
    compare_cmd,
    score_cmd,
    train_cmd,
    audit_cmd,
    jobs_cmd,
    worker_cmd,
    app_cmd,
    eval_cmd,
    serve_cmd,
    rank_cmd,
    guidelines_cmd,
    users_cmd,
    assign_cmd,
    agreement_cmd,
):
    main.add_command(command)
