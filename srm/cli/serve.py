"""``srm serve``: the reward server for RL trainers (:mod:`srm.serve`) on uvicorn."""

from __future__ import annotations

import os
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
@config_options(ServeConfig, list(ServeConfig.model_fields))
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
    from srm.serve import check_token, connection_cap, descriptor_limit, listen_sockets

    if token is None and TOKEN_ENV in os.environ:  # click reads an empty variable as unset
        token = os.environ[TOKEN_ENV]
    if token is not None:
        try:
            check_token(token)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint=f"--token (or ${TOKEN_ENV})") from None
    if not access.is_loopback(host) and not token and not insecure and not given["allow_clients"]:
        raise click.UsageError(
            f"--host {host} is beyond loopback: give a token with --token or ${TOKEN_ENV} "
            "(clients send Authorization: Bearer TOKEN, or ?token=TOKEN in the URL), the "
            "clients' addresses with --allow-clients, or --insecure on a network you trust."
        )
    with clean_errors(ValueError):
        config = ServeConfig(**{k: v for k, v in given.items() if v is not None})
        max_connections = connection_cap(config.max_connections, descriptor_limit())
    workers = config.workers
    device = checked_device(device)
    try:  # before the model loads: an address that cannot be served is refused at once
        sockets = listen_sockets(host, port, workers)
    except OSError as err:
        raise click.BadParameter(
            f"cannot listen on {host} port {port} ({err.strerror or err}); give another --host "
            "(an address of this machine: 127.0.0.1, ::1, 0.0.0.0) or --port",
            param_hint="--host",
        ) from None
    if config.max_connections is not None and max_connections < config.max_connections:
        click.echo(
            f"--max-connections lowered to {max_connections}: the process may open "
            f"{descriptor_limit()} files (ulimit -n), some kept for other uses.",
            err=True,
        )

    path = model_path(model_dir)
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    endpoints = "POST /get_reward, POST /score, GET /health, schema at /docs"
    if workers > 1:
        from srm.serve import WorkerPlan, serve_workers, threads_per_worker

        plan = WorkerPlan(
            path,
            device,
            config,
            token,
            max_connections,
            threads_per_worker(workers) if device.startswith("cpu") else None,
        )

        def announce(pids: list[int]) -> None:
            click.echo(
                f"Serving {path} at http://{shown}:{port} from {workers} processes (pids "
                f"{', '.join(map(str, pids))}): {endpoints}."
            )

        if serve_workers(plan, sockets, announce) != 0:
            raise click.ClickException("a worker could not start: see its error above")
        return

    from srm.checkpoint import CheckpointError, load
    from srm.serve import create_app, serve

    with clean_errors(CheckpointError):
        model = load(path, device=device)
    with clean_errors(ValueError):  # a --dense-tokenizer that cannot be loaded
        app = create_app(model, config, token=token, name=path.name)
    click.echo(
        f"Serving {path} ({model.config.head} head, {model.score_length} tokens) at "
        f"http://{shown}:{port}: {endpoints}."
    )
    serve(app, sockets[0], config, max_connections)
