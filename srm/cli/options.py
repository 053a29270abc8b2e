"""Options several commands share, as decorators (Datasette's ``sqlite_extensions`` style), and
the one rule behind each: which store (``--db``), which model (``--model``), which device
(``--device``), whether an output can be written (``--out``), and the flags of a
config model's fields (:func:`config_options`, as TRL's ``HfArgumentParser`` builds them).
"""

from __future__ import annotations

import contextlib
import tempfile
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import MISSING
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

import click

from srm.config import field_docs

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

F = TypeVar("F", bound=Callable[..., Any])

DB_OPTION_HELP = (
    "Store URL (SQLAlchemy). Default: $SRM_DB_URL, else ~/.local/share/srm-studio/srm.db."
)


def db_option(func: F | None = None, *, when: str | None = None) -> Any:
    """``--db URL`` (as ``db_url``): the store. ``when`` says which uses need it ("With
    --dataset or --job"). Use as ``@db_option`` or ``@db_option(when=...)``."""
    option = click.option(
        "--db", "db_url", default=None, help=(f"{when}: " if when else "") + DB_OPTION_HELP
    )
    return option if func is None else option(func)


def path_option(
    flag: str, name: str, help: str, *, required: bool = False, exists: bool = False
) -> Callable[[F], F]:
    """An option naming a file or directory, as a ``Path`` (``--data``, ``--out``, ...)."""
    kind = click.Path(exists=exists, path_type=Path)
    return click.option(flag, name, type=kind, required=required, help=help)


def job_option(kind: str) -> Callable[[F], F]:
    """``--job N`` (as ``job_id``): run a job of ``kind`` from the store, and nothing else (the
    older spelling of ``srm jobs run N``)."""
    return click.option(
        "--job",
        "job_id",
        type=int,
        default=None,
        help=f"Run {kind} job N from the store, and nothing else (same as srm jobs run N).",
    )


def model_option(func: F) -> F:
    """``--model DIR`` (as ``model_dir``): a checkpoint; :func:`model_path` picks the default."""
    return click.option(
        "--model",
        "model_dir",
        type=click.Path(path_type=Path),
        help="Checkpoint directory (from srm init or srm train). "
        "Default: $SRM_MODEL, else the bundled data/models/default.",
    )(func)


def listen_options(port: int, host_help: str) -> Callable[[F], F]:
    """``--host`` (127.0.0.1 unless told otherwise) and ``--port`` for a command that serves."""

    def decorate(func: F) -> F:
        func = click.option(
            "--port", type=click.IntRange(1, 65535), default=port, show_default=True, help="Port."
        )(func)
        return click.option("--host", default="127.0.0.1", show_default=True, help=host_help)(func)

    return decorate


def device_option(func: F) -> F:
    """``--device NAME``, as given: :func:`checked_device` checks it when the command needs a model
    (so ``srm eval --scores`` never imports torch)."""
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        help="auto (CUDA when available), cpu, cuda, cuda:1, ...",
    )(func)


def batch_size_option(func: F) -> F:
    """``--batch-size N`` for the commands that score."""
    return click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=16,
        show_default=True,
        help="Pairs per forward pass (with eval --steps: responses).",
    )(func)


def score_length_option(func: F) -> F:
    """``--max-length N`` for the commands that score: tokens per sequence (default: the
    model's scoring length, enough for whole responses where the backbone allows)."""
    return click.option(
        "--max-length",
        "max_length",
        type=click.IntRange(min=8),
        default=None,
        help="Tokens per sequence when scoring. Default: the model's scoring length (its "
        "score_max_length, else the backbone's positions up to 1024), not its training length.",
    )(func)


# ------------------------------------------------------------------------- config flags
class CommaList(click.ParamType):
    """``a,b`` as ``["a", "b"]``: a ``list[str]`` field's flag."""

    name = "A,B,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, list):
            return value
        return [item.strip() for item in str(value).split(",") if item.strip()]


def config_options(cls: type, names: Iterable[str]) -> Callable[[F], F]:
    """A flag for each field ``names`` of config model ``cls``, in that order: field
    ``max_length`` is ``--max-length``, its type comes from the annotation (a ``Literal`` is a
    choice, ``list[str]`` a comma-separated list, a bool a flag that sets True, or that sets
    False as ``--no-NAME`` when the field defaults to True) and its help
    from the field's docstring, with the config's default.

    Every flag defaults to None, meaning "not given": the command passes them all as
    overrides (:func:`srm.config.merge_train_config`), and a --config recipe's value stands
    where no flag is given. Values are checked by the config, whose messages name the field.
    """
    hints = {name: info.annotation for name, info in cls.model_fields.items()}
    docs = field_docs(cls)
    defaults = {name: info.get_default() for name, info in cls.model_fields.items()}

    def decorate(func: F) -> F:
        for name in reversed(list(names)):  # click lists options in decorator order
            func = _field_option(name, hints[name], docs.get(name, ""), defaults[name])(func)
        return func

    return decorate


def _field_option(name: str, hint: Any, doc: str, default: Any) -> Callable[[F], F]:
    flag = "--" + name.replace("_", "-")
    shown = "" if default in (None, MISSING) else f" [default: {default}]"
    if hint is bool and default is True:  # on by default: the flag turns it off
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=doc + shown)
    if hint is bool:
        return click.option(flag, name, is_flag=True, default=None, help=doc)
    return click.option(flag, name, type=_param_type(hint), default=None, help=doc + shown)


def _param_type(hint: Any) -> click.ParamType:
    """The click type of a field's annotation; ``X | None`` is X (None is "not given")."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return click.Choice([str(arg) for arg in args])
    if origin is list:
        return CommaList()
    if args and type(None) in args:
        return _param_type(next(arg for arg in args if arg is not type(None)))
    return {int: click.INT, float: click.FLOAT, str: click.STRING}[hint]


def one_pairs_source(
    data_path: Path | None, dataset: str | None, what: str, also: str = ""
) -> None:
    """Refuse both or neither of --data PATH and --dataset NAME, the two places pairs come
    from (``also`` names a third way, such as --job N)."""
    if (data_path is None) == (dataset is None):
        raise click.UsageError(
            f"Give {what} with --data PATH or --dataset NAME (from the store), not both{also}."
        )


# ------------------------------------------------------------------------- what they name
class Store(NamedTuple):
    url: str
    sessions: sessionmaker[Session]


def open_store(db_url: str | None, *, read_only: bool = False) -> Store:
    """The migrated store ``--db`` names (default: $SRM_DB_URL, else the per-user file), or a
    clean one-line error when it cannot be opened: a URL SQLAlchemy cannot parse, a driver
    that is not installed, a server that does not answer, a file that is not a database, a
    directory that cannot be created. Every command that takes --db opens it here."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from srm import store

    url = db_url or store.default_url()
    try:
        engine = store.open_store(url)
    except (ArgumentError, DBAPIError, ImportError, OSError) as err:
        reason = err.orig if isinstance(err, DBAPIError) else err
        reason = " ".join(str(reason).split()) or type(err).__name__
        try:
            shown = make_url(url).render_as_string(hide_password=True)
        except ArgumentError:
            shown = repr(url)
        raise click.ClickException(
            f"cannot open the store {shown} ({reason}); check --db or $SRM_DB_URL: a SQLAlchemy "
            "URL such as sqlite:///path/to/srm.db or postgresql+psycopg://USER@HOST/DB"
        ) from err
    return Store(url, store.make_sessionmaker(engine, read_only=read_only))


def model_path(model_dir: Path | None) -> Path:
    """``--model``, else the default model ($SRM_MODEL, else the bundled one)."""
    if model_dir is not None:
        return model_dir
    from srm.checkpoint import default_model_dir

    path = default_model_dir()
    if path is None:
        raise click.UsageError("No --model given and no default model is installed.")
    return path


def checked_device(name: str) -> str:
    """``--device`` as a device this machine has (:func:`srm.devices.resolve_device`), or a
    clean error naming the option."""
    from srm.devices import DeviceError, resolve_device

    try:
        return resolve_device(name)
    except DeviceError as err:
        raise click.BadParameter(str(err), param_hint="--device") from err


@contextlib.contextmanager
def clean_errors(*errors: type[Exception]) -> Iterator[None]:
    """Show the library's errors of these types (their messages say what to do) as one-line
    CLI errors instead of tracebacks."""
    try:
        yield
    except errors as err:
        raise click.ClickException(str(err)) from err


def check_output(path: Path, option: str, *, directory: bool = False) -> None:
    """Refuse an output path that cannot be written, before any work is done: learning it
    after an hour of scoring loses the hour. The path must be new, or a regular file (with
    ``directory``, a directory), links followed (:func:`srm.files.output_target`, the rule the
    writes themselves apply again). Writes (and removes) a temporary file in the nearest
    directory that exists; creates nothing else."""
    from srm.files import FileError, output_target

    if directory and path.is_file():
        raise click.BadParameter(
            f"{path} is a file; give a directory (created if missing)", param_hint=option
        )
    if not directory and path.is_dir():
        raise click.BadParameter(
            f"{path} is a directory; give the path of a file to write",
            param_hint=option,
        )
    try:
        target = output_target(path, directory=directory).absolute()
    except FileError as err:
        raise click.BadParameter(str(err), param_hint=option) from None
    existing = next(p for p in (target, *target.parents) if p.exists())
    if existing != target and not existing.is_dir():
        raise click.BadParameter(
            f"{existing} is a file, so {path} cannot be created; choose another path",
            param_hint=option,
        )
    probe = existing if existing.is_dir() else existing.parent
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise click.BadParameter(
            f"cannot write to {probe} ({err.strerror or err}); choose a directory you can write to",
            param_hint=option,
        ) from err
