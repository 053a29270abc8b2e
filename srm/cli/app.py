"""``srm app``: serve the Streamlit app of this source tree, refusing to expose it without a
password."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from srm.cli.options import db_option, listen_options, path_option


@click.command("app")
@click.option("--demo", is_flag=True, help="Start the app in demo mode (sets SRM_DEMO=1).")
@listen_options(8501, "Address to listen on; 0.0.0.0 exposes the app to the network.")
@db_option
@click.option(
    "--insecure",
    is_flag=True,
    help="Serve beyond loopback without a password (SRM_APP_PASSWORD / SRM_ADMIN_PASSWORD): "
    "only on a network you trust.",
)
@path_option(
    "--models-dir",
    "models_dir",
    "Directory where jobs write their runs and models (sets SRM_MODELS_DIR): one every "
    "machine that runs jobs (srm worker, a cluster) mounts at the same path.",
)
@click.option(
    "--submit-command",
    "submit_command",
    default=None,
    help="Command that hands a job to a scheduler (sets SRM_SUBMIT_COMMAND), e.g. "
    "'sbatch --job-name srm-{job_id} run.sbatch'; placeholders {job_id}, {db_url}, {kind}.",
    callback=lambda ctx, param, value: _checked_submit_command(value),
)
def app_cmd(
    demo: bool,
    host: str,
    port: int,
    db_url: str | None,
    insecure: bool,
    models_dir: Path | None,
    submit_command: str | None,
) -> None:
    """Serve the Streamlit app (the webapp package installed beside srm) at http://HOST:PORT.

    Bound beyond loopback, the app needs accounts in the store (`srm users add`) or a shared
    password (see srm.access); it refuses to start without either unless --insecure. Jobs
    started from the Train page run on this machine, on any `srm worker`, or through
    --submit-command (see docs/scaling.md).
    """
    import srm
    from srm import access
    from srm.jobs import SUBMIT_COMMAND_ENV

    root = Path(srm.__file__).resolve().parents[1]
    entry = root / "webapp" / "streamlit_app.py"
    if not entry.is_file():
        raise click.ClickException(
            f"{entry} not found: the app (the webapp package) is missing beside srm; "
            "reinstall srm-studio (pip install srm-studio, or pip install -e . in a clone)"
        )
    # The secrets files Streamlit reads, named explicitly so that this check and the app agree
    # from any working directory: the user's, then the project's (which wins).
    secrets_files = [
        Path.home() / ".streamlit" / "secrets.toml",
        root / ".streamlit" / "secrets.toml",
    ]
    try:
        configured = access.passwords(os.environ, access.read_secrets(secrets_files))
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    refusal = access.exposure_error(
        host, configured, insecure, accounts=not access.is_loopback(host) and _has_accounts(db_url)
    )
    if refusal is not None:
        raise click.UsageError(refusal)
    command = [
        sys.executable,
        str(entry.with_name("launch.py")),  # streamlit run, with uploads guarded from the start
        "run",
        str(entry),
        *_streamlit_flags(root / ".streamlit" / "config.toml"),
        *[flag for file in secrets_files for flag in ("--secrets.files", str(file))],
        "--server.address",
        host,
        "--server.port",
        str(port),
    ]
    env = dict(os.environ)
    if demo:
        env["SRM_DEMO"] = "1"
    if insecure:
        env[access.INSECURE] = "1"
    if db_url is not None:
        env["SRM_DB_URL"] = db_url
    if models_dir is not None:
        models_dir.mkdir(parents=True, exist_ok=True)
        env["SRM_MODELS_DIR"] = str(models_dir.resolve())
    if submit_command is not None:
        env[SUBMIT_COMMAND_ENV] = submit_command
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(command[0], command, env)  # Streamlit's exit code is the command's


def _checked_submit_command(template: str | None) -> str | None:
    """Refuse a submit command with an unknown placeholder now, not at the first job."""
    from srm.config import ConfigError
    from srm.jobs import submit_args

    if template is not None:
        try:
            submit_args(template, job_id=0, db_url="", kind="train")
        except ConfigError as err:
            raise click.BadParameter(str(err)) from None
    return template


def _streamlit_flags(config_file: Path) -> list[str]:
    """The project's .streamlit/config.toml as command-line flags: Streamlit reads that file
    only from the working directory, and without it (fileWatcherType = "none") importing
    torch crashes the file watcher."""
    if not config_file.is_file():
        return []
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    flags = []
    for section, options in tomllib.loads(config_file.read_text(encoding="utf-8")).items():
        for key, value in options.items():
            if f"{section}.{key}" in ("server.address", "server.port"):
                continue  # --host and --port
            text = str(value).lower() if isinstance(value, bool) else str(value)
            flags += [f"--{section}.{key}", text]
    return flags


def _has_accounts(db_url: str | None) -> bool:
    """Whether the store the app will use has accounts (then everyone signs in by name)."""
    from srm.cli.options import open_store
    from srm.store import accounts_exist

    _, sessions = open_store(db_url, read_only=True)
    with sessions() as session:
        return accounts_exist(session)
