"""``srm serve``: the reward server for RL trainers (:mod:`srm.serve`) on uvicorn."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from srm.cli.options import (
    checked_device,
    clean_errors,
    config_options,
    device_option,
    listen_options,
    model_option,
    model_path,
)
from srm.config import ServeConfig

TOKEN_ENV = "SRM_SERVE_TOKEN"


@click.command("serve")
@model_option
@listen_options(5000, "Address to listen on; beyond loopback (0.0.0.0) the server needs --token.")
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    default=None,
    help=f"Require Authorization: Bearer TOKEN on /get_reward and /score (also ${TOKEN_ENV}).",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Serve beyond loopback without --token: only on a network you trust.",
)
@config_options(ServeConfig, [f.name for f in fields(ServeConfig)])
@device_option
def serve_cmd(
    model_dir: Path | None,
    host: str,
    port: int,
    token: str | None,
    insecure: bool,
    device: str,
    **given: Any,
) -> None:
    """Serve a model's rewards over HTTP for RL: OpenRLHF's POST /get_reward (with the
    sentence rewards and their spans), POST /score (the records srm score writes), GET /health
    and the OpenAPI schema at /docs."""
    from srm import access

    if not access.is_loopback(host) and not token and not insecure:
        raise click.UsageError(
            f"--host {host} is beyond loopback: give a token with --token or ${TOKEN_ENV} "
            "(clients send Authorization: Bearer TOKEN), or --insecure on a network you trust."
        )
    with clean_errors(ValueError):
        config = ServeConfig(**{k: v for k, v in given.items() if v is not None})
    device = checked_device(device)

    import uvicorn

    from srm.checkpoint import CheckpointError, load
    from srm.serve import create_app

    path = model_path(model_dir)
    with clean_errors(CheckpointError):
        model = load(path, device=device)
    with clean_errors(ValueError):  # a --dense-tokenizer that cannot be loaded
        app = create_app(model, config, token=token or None, name=path.name)
    click.echo(
        f"Serving {path} ({model.config.head} head, {model.score_length} tokens) at "
        f"http://{host}:{port}: POST /get_reward, POST /score, GET /health, schema at /docs."
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
