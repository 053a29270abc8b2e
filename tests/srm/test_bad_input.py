"""Bad input gets a clear error, never a traceback: the table behind docs/reliability.md.

Every case is one row of a table below: the command (or config) tried and a fragment of the
message it must get. ``python -m tests.srm.test_bad_input`` runs the CLI cases and prints the
markdown table of docs/reliability.md with the messages they get now.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import shlex
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from srm.cli import main
from srm.config import ConfigError, ModelConfig, TrainConfig
from srm.data import PreferencePair, load_pairs
from srm.store import StoreError, count_pairs, import_pairs, make_sessionmaker, open_store

REPO_ROOT = Path(__file__).resolve().parents[2]
RELIABILITY_DOC = REPO_ROOT / "docs" / "reliability.md"
PAIR = '{"prompt": "Q?", "chosen": "Good.", "rejected": "Bad."}\n'


@dataclass
class Files:
    """What the commands of the cases point at, made afresh in ``root`` for each case.

    A command names them as placeholders: ``{pairs}`` (a file of one good pair), ``{model}``
    (a tiny checkpoint), ``{root}`` (a directory), ``{a_file}`` (a plain file), ``{bad}``,
    ``{empty}``, ``{not_db}``, ``{latin1}``, ``{binary}`` (a PNG's first bytes),
    ``{nul_text}`` (UTF-8 holding NUL characters), ``{big}`` (5 KB of text, a TOML comment)
    (files that are not what an option needs), ``{fifo}``, ``{fifo_link}`` (a link to it),
    ``{null_link}`` (a link to /dev/null), ``{broken_link}`` (a link to nothing),
    ``{nan_model}`` (a checkpoint with a NaN weight), ``{unwritable}`` (a directory even root
    cannot write to) and ``{db}`` (a SQLite store).
    """

    root: Path
    model: Path

    def __post_init__(self) -> None:
        self.root.mkdir(exist_ok=True)
        self.pairs.write_text(PAIR, encoding="utf-8")
        self.a_file.write_text("not a directory\n", encoding="utf-8")
        self.not_db.write_text("hello, not SQLite\n" * 20, encoding="utf-8")
        self.bad.write_text("{not json\n", encoding="utf-8")
        self.empty.write_text("", encoding="utf-8")
        self.latin1.write_bytes("Caf\xe9 au lait.".encode("latin-1"))
        self.binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
        self.nul_text.write_text("# Rules\n\x00\x00", encoding="utf-8")
        self.big.write_text("# " + "x" * 5000 + "\n", encoding="utf-8")
        os.mkfifo(self.fifo)
        self.fifo_link.symlink_to(self.fifo)
        self.null_link.symlink_to("/dev/null")  # a character device, never written: refused
        self.broken_link.symlink_to(self.root / "nowhere")

    pairs = property(lambda self: self.root / "pair.jsonl")
    a_file = property(lambda self: self.root / "a-file")
    not_db = property(lambda self: self.root / "not-a-database.db")
    bad = property(lambda self: self.root / "bad.jsonl")
    empty = property(lambda self: self.root / "empty.jsonl")
    latin1 = property(lambda self: self.root / "latin1.txt")
    binary = property(lambda self: self.root / "binary.md")
    nul_text = property(lambda self: self.root / "nul.md")
    big = property(lambda self: self.root / "big.txt")
    fifo = property(lambda self: self.root / "fifo")
    fifo_link = property(lambda self: self.root / "fifo-link")
    null_link = property(lambda self: self.root / "null-link")
    broken_link = property(lambda self: self.root / "broken-link")
    db = property(lambda self: f"sqlite:///{self.root / 'store.db'}")

    @property
    def nan_model(self) -> Path:
        """A copy of the tiny checkpoint with one weight NaN, as a diverged run would save."""
        path = self.root / "nan-model"
        if not path.exists():
            spoil_checkpoint(self.model, path)
        return path

    def argv(self, command: str) -> list[str]:
        """``command`` with its placeholders filled in, split as a shell would."""
        names = re.findall(r"{(\w+)}", command)
        values = {n: unwritable_dir() if n == "unwritable" else getattr(self, n) for n in names}
        return shlex.split(command.format(**values))


def spoil_checkpoint(source: Path, path: Path | None = None) -> Path:
    """Give the checkpoint ``source`` (copied to ``path`` if given) a NaN in one weight."""
    import shutil

    from safetensors.torch import load_file, save_file

    from srm.checkpoint import model_dir

    if path is not None:
        shutil.copytree(model_dir(source), path)
        source = path
    weights = model_dir(source) / "model.safetensors"
    tensors = load_file(weights)
    name = next(k for k in sorted(tensors) if not k.startswith(("extra.", "backbone.")))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = math.nan
    save_file(tensors, weights, metadata={"format": "pt"})
    return source


@contextlib.contextmanager
def feeding(fifo: Path) -> Iterator[None]:
    """Whatever opens ``fifo`` to read it gets a line and the end of the file: a command that
    reads a FIFO (as srm did) then fails its test instead of blocking it forever. Nothing is
    written while nobody reads."""
    stop = threading.Event()

    def feed() -> None:
        while not stop.wait(0.05):
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while no reader
            except OSError:
                continue
            with contextlib.suppress(OSError):
                os.write(fd, b"not what the command wants\n")
            os.close(fd)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def unwritable_dir() -> Path:
    """A directory nobody may write to, root included (sysfs), or a skip."""
    sysfs = Path("/sys")
    try:
        with tempfile.TemporaryFile(dir=sysfs):
            pass
    except OSError:
        return sysfs
    pytest.skip("needs a directory that refuses writes even to root (/sys on Linux)")


@dataclass(frozen=True)
class Case:
    command: str
    """The command line after ``srm``, with placeholders (see :class:`Files`)."""
    message: str
    """A regular expression the output must match."""
    id: str = ""
    """The case's name in the tests and the docs (default: the command)."""
    env: tuple[tuple[str, str], ...] = ()
    """Environment variables set for the command."""

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", self.command)


# A port nothing listens on: connecting is refused at once.
DOWN_PG = "postgresql+psycopg://srm@127.0.0.1:1/srm"
SCORE = "score --model {model} --data {pairs}"
TRAIN = "train --backbone tiny --max-steps 1 --data {pairs}"

CLI_CASES = [
    # --out / --json that cannot be written: refused before any work
    Case(f"{SCORE} --out {{root}}", r"--out: .* is a directory; give the path of a file"),
    Case(f"{SCORE} --out {{a_file}}/s.jsonl", r"--out: .*a-file is a file, so .* cannot be"),
    Case(f"{SCORE} --out {{unwritable}}/s.jsonl", r"--out: cannot write to /sys \("),
    Case("export --db {db} --dataset d --out {root}", r"--out: .* is a directory"),
    Case("export --db {db} --dataset d --out {a_file}/e.jsonl", r"--out: .*a-file is a file"),
    Case(
        "export --db {db} --dataset d --format hf --out {unwritable}/d",
        r"--out: cannot write to /sys",
    ),
    Case("eval --scores {empty} --json {root}", r"--json: .* is a directory"),
    Case("eval --scores {empty} --json {a_file}/r.json", r"--json: .*a-file is a file"),
    Case(f"{TRAIN} --out {{a_file}}/run", r"--out: .*a-file is a file"),
    Case(f"{TRAIN} --out {{unwritable}}/run", r"--out: cannot write to /sys"),
    Case("init --backbone tiny --out {a_file}", r"--out: .*a-file is a file; give a directory"),
    Case("init --backbone tiny --out {unwritable}/m", r"--out: cannot write to /sys"),
    # --out / --json that is not a regular file or a new path: refused, never replaced
    Case(
        f"{SCORE} --out {{fifo}}",
        r"--out: .*/fifo: not a regular file or a new path \(it is a FIFO\); give a new path, "
        "or a regular file to replace",
    ),
    Case(
        f"{SCORE} --out {{fifo_link}}",
        r"--out: .*/fifo-link: not a regular file or a new path \(it is a link to .*/fifo, a "
        r"FIFO\)",
    ),
    Case(
        f"{SCORE} --out {{null_link}}",
        r"--out: .*/null-link: not a regular file or a new path \(it is a link to /dev/null, a "
        r"character device\)",
    ),
    Case(
        f"{SCORE} --out {{broken_link}}",
        r"--out: .*/broken-link: not a regular file or a new path \(it is a link to "
        r".*/nowhere, which does not exist\)",
    ),
    Case("export --db {db} --dataset d --out {fifo}", r"--out: .*/fifo: .*\(it is a FIFO\)"),
    Case(
        "export --db {db} --dataset d --format prm --out {null_link}",
        r"--out: .*\(it is a link to /dev/null, a character device\)",
    ),
    Case("eval --scores {empty} --json {fifo_link}", r"--json: .*\(it is a link to .*, a FIFO\)"),
    Case("rank {pairs} --model {model} --out {fifo}", r"--out: .*/fifo: .*\(it is a FIFO\)"),
    Case(
        f"{TRAIN} --out {{fifo}}",
        r"--out: .*/fifo: not a directory or a new path \(it is a FIFO\); give a directory",
    ),
    Case(
        "init --backbone tiny --out {null_link}",
        r"--out: .*\(it is a link to /dev/null, a character device\); give a directory",
    ),
    # stores that cannot be opened
    Case(
        "import {pairs} --db nonsense://x",
        r"cannot open the store nonsense://x \(Can't load plugin: sqlalchemy.dialects:nonsense\)"
        r"; check --db or \$SRM_DB_URL",
    ),
    Case(
        f"import {{pairs}} --db {DOWN_PG}",
        r"cannot open the store postgresql\+psycopg://srm@127.0.0.1:1/srm \(connection failed: "
        r".*Connection refused",
    ),
    Case(
        "import {pairs} --db sqlite:///{not_db}",
        r"cannot open the store sqlite:///.*not-a-database.db \(file is not a database\)",
    ),
    Case("datasets --db nonsense", r"cannot open the store 'nonsense' \(Could not parse"),
    Case(f"datasets --db {DOWN_PG}", r"cannot open the store .*Connection refused"),
    Case("datasets --db sqlite:///{not_db}", r"\(file is not a database\)"),
    Case(
        "datasets --db postgresql+psycopg://srm:hunter2@127.0.0.1:1/srm",
        r"cannot open the store postgresql\+psycopg://srm:\*\*\*@127.0.0.1:1/srm",
        id="datasets --db URL with a password (not shown)",
    ),
    # files that are not what the option needs
    Case(
        "eval --scores {bad}",
        r"bad.jsonl:line 1: not JSON \(Expecting property name.*\); give a file written by "
        r"srm score",
    ),
    Case("eval --scores {empty}", r"empty.jsonl: holds no score records; give a file written by"),
    Case("eval --scores {pairs}", r"pair.jsonl:line 1: not a score record \('chosen' is not an"),
    Case(
        "segment --file {latin1}",
        r"--file: .*latin1.txt: not UTF-8 text \(byte 4 is 0xe9\); save it as UTF-8",
    ),
    Case(
        "guidelines --db {db} --set {binary}",
        r"--set: .*binary.md: not UTF-8 text \(byte 1 is 0x89\); save it as UTF-8",
    ),
    Case(
        "guidelines --db {db} --set {nul_text}",
        r"--set: .*nul.md: contains a NUL character \(\\u0000\) at character 9; .*guidelines "
        "are markdown text",
    ),
    Case(
        "score --model {nan_model} --data {pairs} --out {root}/s.jsonl",
        r"nan-model/model.safetensors: tensor .* holds NaN or infinite values, so the model "
        "cannot score",
    ),
    # files read whole: FIFOs and devices refused before they are opened, the size bounded
    Case(
        f"{TRAIN} --config {{fifo}} --out {{root}}/r",
        r"/fifo: not a regular file \(it is a FIFO\); give a TOML file",
    ),
    Case(
        f"{TRAIN} --config {{null_link}} --out {{root}}/r",
        r"/null-link: not a regular file \(it is a character device\); give a TOML file",
    ),
    Case(
        f"{TRAIN} --config {{big}} --out {{root}}/r",
        r"big.txt: is 5 KB, over the 1 KB limit for input files; split it, or raise the limit "
        "with SRM_MAX_INPUT_MB=MEGABYTES",
        id=f"{TRAIN} --config {{big}} --out {{root}}/r with SRM_MAX_INPUT_MB=0.001",
        env=(("SRM_MAX_INPUT_MB", "0.001"),),
    ),
    Case(
        "guidelines --db {db} --set {fifo}",
        r"--set: .*/fifo: not a regular file \(it is a FIFO\); give a markdown file",
    ),
    Case(
        "guidelines --db {db} --set {null_link}",
        r"--set: .*/null-link: not a regular file \(it is a character device\)",
    ),
    Case(
        "guidelines --db {db} --set {big}",
        r"--set: .*big.txt: is 5 KB, over the 1 KB limit for input files",
        id="guidelines --db {db} --set {big} with SRM_MAX_INPUT_MB=0.001",
        env=(("SRM_MAX_INPUT_MB", "0.001"),),
    ),
    Case("segment --file {fifo}", r"--file: .*/fifo: not a regular file \(it is a FIFO\)"),
    Case(
        "segment --file {null_link}",
        r"--file: .*/null-link: not a regular file \(it is a character device\)",
    ),
    Case(
        "segment --file {big}",
        r"--file: .*big.txt: is 5 KB, over the 1 KB limit for input files",
        id="segment --file {big} with SRM_MAX_INPUT_MB=0.001",
        env=(("SRM_MAX_INPUT_MB", "0.001"),),
    ),
    # devices
    Case(
        f"{SCORE} --out {{root}}/s.jsonl --device cuda",
        r"--device: 'cuda' is not available here \(.*\); use auto or cpu",
        id="score --device cuda (no CUDA here)",
    ),
    Case(
        f"{SCORE} --out {{root}}/s.jsonl --device tpu",
        r"--device: 'tpu' is not a device; use auto, cpu, cuda or cuda:N",
    ),
    Case("eval --model {model} --data {pairs} --device tpu", r"--device: 'tpu' is not a device"),
    Case(
        "eval --model {model} --data {pairs} --device cuda:7",
        r"--device: 'cuda:7' is not available here",
    ),
    # training settings
    Case(f"{TRAIN} --epochs inf --out {{root}}/r", r"epochs: got inf; give a finite number"),
    Case(f"{TRAIN} --lr inf --out {{root}}/r", r"lr: got inf; give a finite number"),
    Case(f"{TRAIN} --weight-decay nan --out {{root}}/r", r"weight_decay: got nan; give a finite"),
    Case(f"{TRAIN} --max-grad-norm nan --out {{root}}/r", r"max_grad_norm: got nan; give a finite"),
    Case(f"{TRAIN} --seed -1 --out {{root}}/r", r"seed: got -1; use a whole number from 0 to 4294"),
    Case(
        f"{TRAIN} --seed {2**40} --out {{root}}/r", r"seed: got 1099511627776; use a whole number"
    ),
    Case(
        "init --backbone tiny --seed -1 --out {root}/m", r"-1 is not in the range 0<=x<=4294967295"
    ),
    Case(
        "train --backbone /nonexistent --max-steps 1 --data {pairs} --out {root}/r",
        r"Cannot load backbone '/nonexistent': that path does not exist\. Give a directory "
        r"holding config\.json",
    ),
    Case(
        f"{TRAIN} --resume-from {{root}} --out {{root}}/r",
        r"not an SRM checkpoint \(needs config.json and model.safetensors\)",
    ),
]


def write(name: str, content: bytes) -> Callable[[Files], Path]:
    def make(files: Files) -> Path:
        path = files.root / name
        path.write_bytes(content)
        return path

    return make


def fifo(files: Files) -> Path:
    path = files.root / "fifo.jsonl"
    os.mkfifo(path)
    return path


def dev_zero(files: Files) -> Path:
    if not Path("/dev/zero").exists():
        pytest.skip("needs /dev/zero")
    path = files.root / "zero.jsonl"
    path.symlink_to("/dev/zero")
    return path


def record(**fields: str) -> bytes:
    """One JSON Lines record, with ``fields`` written verbatim as JSON values."""
    body = {"prompt": '"Q?"', "chosen": '"Good."', "rejected": '"Bad."', **fields}
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in body.items()) + "}\n").encode()


@dataclass(frozen=True)
class ImportCase:
    """``srm import FILE --db STORE [args]`` of the file ``make`` writes."""

    id: str
    make: Callable[[Files], Path]
    message: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()


CHAT_WITH_SURROGATE = (
    b'{"prompt": [{"role": "user", "content": "Q\\udfff"}], '
    b'"chosen": [{"role": "assistant", "content": "A."}], '
    b'"rejected": [{"role": "assistant", "content": "B."}]}\n'
)
IMPORT_CASES = [
    ImportCase(
        "margin: a 400-digit integer",
        write("m.jsonl", record(margin="9" * 400)),
        r"m.jsonl:line 1: field 'margin': expected a finite number, got an integer of 400 digits",
    ),
    ImportCase(
        "margin: 1e300 (beyond float32)",
        write("m.jsonl", record(margin="1e300")),
        r"field 'margin': got 1e\+300, beyond ±3.4e\+38, the largest number training computes",
    ),
    ImportCase(
        "id: an integer of 4,301 digits",
        write("i.jsonl", record(id="7" * 4301)),
        r"i.jsonl:line 1: holds an integer too long for Python to read \(over 4300 digits\); "
        "write such an id as a string",
    ),
    ImportCase(
        "JSON Lines nested 100,000 deep",
        write("n.jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n"),
        r"n.jsonl:line 1: arrays or objects nested too deeply to read",
    ),
    ImportCase(
        "JSON nested 100,000 deep",
        write("n.json", b"[" * 100_000 + b"]" * 100_000),
        r"n.json: arrays or objects nested too deeply to read",
    ),
    ImportCase(
        "a lone surrogate",
        write("s.jsonl", record(chosen='"Good \\ud800."')),
        r"s.jsonl:line 1: field 'chosen': contains a lone surrogate \(\\ud800\) at character 6, "
        "which is not valid Unicode",
    ),
    ImportCase(
        "a lone surrogate in a chat message",
        write("c.jsonl", CHAT_WITH_SURROGATE),
        r"field 'prompt\[0\].content': contains a lone surrogate \(\\udfff\) at character 2",
    ),
    ImportCase(
        "a NUL character",
        write("z.jsonl", record(rejected='"Bad\\u0000."')),
        r"z.jsonl:line 1: field 'rejected': contains a NUL character \(\\u0000\) at character 4; "
        "remove it",
    ),
    ImportCase(
        "a NUL character in an id",
        write("z.jsonl", record(id='"a\\u0000"')),
        r"field 'id': contains a NUL character",
    ),
    ImportCase(
        "CSV with a duplicated column",
        write("d.csv", b"prompt,chosen,rejected,chosen\nQ?,Good.,Bad.,Other.\n"),
        r"d.csv:line 1: the header names 'chosen' more than once; rename or remove the extra "
        "column",
    ),
    ImportCase(
        "JSON with a duplicated key",
        write("k.jsonl", record(chosen='"Good.", "chosen": "Other."')),
        r"k.jsonl:line 1: field 'chosen' appears twice in one object; keep one of them",
    ),
    ImportCase("a FIFO", fifo, r"fifo.jsonl: not a regular file \(it is a FIFO\)"),
    ImportCase(
        "/dev/zero behind a symlink",
        dev_zero,
        r"zero.jsonl: not a regular file \(it is a character device\)",
    ),
    ImportCase(
        "a 5 KB file with SRM_MAX_INPUT_MB=0.001",
        write("big.jsonl", PAIR.encode() * 100),
        r"big.jsonl: is 5 KB, over the 1 KB limit for input files; split it, or raise the "
        r"limit with SRM_MAX_INPUT_MB=MEGABYTES",
        env=(("SRM_MAX_INPUT_MB", "0.001"),),
    ),
    ImportCase(
        "SRM_MAX_INPUT_MB=lots",
        lambda files: files.pairs,
        r"SRM_MAX_INPUT_MB: got 'lots'; give a positive number of megabytes",
        env=(("SRM_MAX_INPUT_MB", "lots"),),
    ),
    ImportCase(
        "id of 301 characters",
        write("l.jsonl", record(id='"' + "x" * 301 + '"')),
        r"pair 'x{60}'...: field 'id' is 301 characters long, over the 300 the store holds; "
        "shorten it",
    ),
    ImportCase(
        "source of 201 characters",
        write("l.jsonl", record(id='"p1"', source='"' + "s" * 201 + '"')),
        r"pair 'p1': field 'source' is 201 characters long, over the 200 the store holds",
    ),
    ImportCase(
        "subset of 201 characters",
        write("l.jsonl", record(subset='"' + "t" * 201 + '"')),
        r"field 'subset' is 201 characters long, over the 200 the store holds",
    ),
    ImportCase(
        "--dataset of 201 characters",
        lambda files: files.pairs,
        r"dataset name 'd{60}'... is 201 characters long, over the 200 the store holds; give a "
        r"shorter name \(--dataset NAME\)",
        args=("--dataset", "d" * 201),
    ),
    ImportCase(
        "--dataset '   '",
        lambda files: files.pairs,
        r"dataset name '   ' is blank; give a name with visible characters \(--dataset NAME\)",
        args=("--dataset", "   "),
    ),
]

CONFIG_CASES = [
    ("lr", math.inf, "lr: got inf; give a finite number"),
    ("head_lr", math.nan, "head_lr: got nan; give a finite number"),
    ("epochs", math.inf, "epochs: got inf; give a finite number"),
    ("weight_decay", math.nan, "weight_decay: got nan; give a finite number"),
    ("weight_decay", -0.1, "weight_decay: got -0.1; use 0 or more"),
    ("max_grad_norm", math.nan, "max_grad_norm: got nan; give a finite number"),
    ("max_grad_norm", math.inf, "max_grad_norm: got inf; give a finite number"),
    ("warmup_ratio", math.nan, "warmup_ratio: got nan; give a finite number"),
    ("center_rewards_coefficient", math.inf, "center_rewards_coefficient: got inf"),
    ("lora_alpha", math.inf, "lora_alpha: got inf \\(float\\); expected int"),
    ("lora_dropout", math.nan, "lora_dropout: got nan; give a finite number"),
    ("lr", "1e-4", "lr: got '1e-4' \\(str\\); expected float"),
    ("batch_size", 2.5, "batch_size: got 2.5 \\(float\\); expected int"),
    ("seed", -1, "seed: got -1; use a whole number from 0 to 4294967295"),
    ("seed", 2**40, "seed: got 1099511627776; use a whole number from 0 to 4294967295"),
    ("save_every", True, "save_every: got True \\(bool\\); expected int"),
    ("model.rope_base", math.inf, "rope_base: got inf; give a finite number"),
    ("model.prompt_fraction", math.nan, "prompt_fraction: got nan; give a finite number"),
    ("model.d", 16.0, "d: got 16.0 \\(float\\); expected int"),
]


def check_clean_failure(result, message: str) -> None:
    """A refusal: exit 1 or 2, the message, and no traceback."""
    assert result.exit_code in (1, 2), (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    assert re.search(message, result.output.replace("\n", " ")), result.output


@pytest.fixture
def files(tmp_path: Path, tiny_model: Path) -> Files:
    return Files(tmp_path, tiny_model)


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_a_bad_command_gets_a_clear_error(case: Case, files: Files, monkeypatch) -> None:
    if "no CUDA here" in case.id:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    with feeding(files.fifo):
        result = CliRunner().invoke(main, files.argv(case.command))
    check_clean_failure(result, case.message)
    # Whatever the command was given is still what it was: nothing replaced, nothing created.
    assert stat.S_ISFIFO(os.lstat(files.fifo).st_mode)
    for link in (files.fifo_link, files.null_link, files.broken_link):
        assert link.is_symlink(), link
    assert not (files.root / "nowhere").exists()


def test_a_link_to_a_regular_file_is_written_through(files: Files) -> None:
    """The one kind of existing output that is not a regular file and is written: a link to
    one. The file it points to gets the output; the link stays a link."""
    real = files.root / "real.jsonl"
    real.write_text("old\n", encoding="utf-8")
    link = files.root / "link.jsonl"
    link.symlink_to(real)
    result = CliRunner().invoke(main, files.argv(f"{SCORE} --out {{root}}/link.jsonl"))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and link.resolve() == real
    assert len(real.read_text(encoding="utf-8").splitlines()) == 1
    assert '"id"' in real.read_text(encoding="utf-8")


def test_score_checks_out_before_scoring(files: Files, monkeypatch) -> None:
    """No scoring (nor model loading) happens when the output cannot be written."""

    def fail(*args, **kwargs):
        raise AssertionError("scored although --out cannot be written")

    monkeypatch.setattr("srm.score.score_pairs", fail)
    monkeypatch.setattr("srm.checkpoint.load", fail)
    result = CliRunner().invoke(main, files.argv("score --data {pairs} --out {a_file}/s.jsonl"))
    check_clean_failure(result, "a-file is a file")


def test_score_creates_the_directory_of_out(files: Files) -> None:
    out = files.root / "new" / "dir" / "s.jsonl"
    result = CliRunner().invoke(main, files.argv(f"{SCORE} --out {{root}}/new/dir/s.jsonl"))
    assert result.exit_code == 0, result.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1


@pytest.mark.parametrize("case", IMPORT_CASES, ids=[c.id for c in IMPORT_CASES])
def test_a_bad_import_gets_a_clear_error_and_imports_nothing(
    case: ImportCase, files: Files, store_url: str, monkeypatch
) -> None:
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    path = case.make(files)
    result = CliRunner().invoke(main, ["import", str(path), "--db", store_url, *case.args])
    check_clean_failure(result, case.message)
    with make_sessionmaker(open_store(store_url))() as session:
        assert count_pairs(session) == 0


def test_a_nul_byte_in_an_import_path_is_a_clear_error(tmp_path: Path) -> None:
    """No command line can hold a NUL, but a path typed in the app or built in Python can:
    os calls raise ValueError('embedded null byte') for it, not an OSError."""
    from srm.data import DataError

    with pytest.raises(DataError, match=r"a\x00b.jsonl: the path contains a NUL character"):
        load_pairs(tmp_path / "a\x00b.jsonl")


@pytest.mark.parametrize(
    "field,text,message",
    [
        ("chosen", "Good\x00.", "field 'chosen' contains a NUL character"),
        ("prompt", "Q\ud800?", "field 'prompt' contains a lone surrogate"),
        ("id", "p\x00", "field 'id' contains a NUL character"),
    ],
)
def test_store_refuses_text_it_cannot_hold_the_same_on_every_backend(
    session_factory, field: str, text: str, message: str
) -> None:
    """Pairs built in Python skip load_pairs: the store refuses them itself, and SQLite (which
    would keep a NUL) and PostgreSQL (which cannot) give the same answer."""
    fields = {"id": "p1", "prompt": "Q?", "chosen": "Good.", "rejected": "Bad.", field: text}
    pairs = [
        PreferencePair(id="ok", prompt="Q?", chosen="A.", rejected="B."),
        PreferencePair(**fields),
    ]
    with pytest.raises(StoreError, match=message), session_factory.begin() as session:
        import_pairs(session, "d", pairs)
    with session_factory() as session:
        assert count_pairs(session) == 0


@pytest.mark.parametrize("name", ["", "   ", "\t\n", "a\x00b"])
def test_store_refuses_a_blank_dataset_name(session_factory, name: str) -> None:
    pairs = [PreferencePair(id="ok", prompt="Q?", chosen="A.", rejected="B.")]
    with pytest.raises(StoreError, match="dataset name"), session_factory.begin() as session:
        import_pairs(session, name, pairs)


def test_nothing_lost_in_text_that_is_fine(tmp_path: Path) -> None:
    """The checks refuse NUL and lone surrogates only: a surrogate *pair* is an emoji, and
    other control characters are text."""
    path = tmp_path / "ok.jsonl"
    path.write_bytes(record(chosen='"Good \\ud83d\\ude00.\\u0001"', margin="3.4e38"))
    [pair] = load_pairs(path)
    assert pair.chosen == "Good \U0001f600.\x01" and pair.margin == 3.4e38


def make_config(field: str, value: object) -> TrainConfig | ModelConfig:
    """A TrainConfig (or, for ``model.NAME``, a ModelConfig) with one field set."""
    if field.startswith("model."):
        return ModelConfig(**{field.removeprefix("model."): value})
    return TrainConfig(**{field: value})


def config_id(field: str, value: object) -> str:
    return f"{field} = {value!r}"


@pytest.mark.parametrize(
    "field,value,message", CONFIG_CASES, ids=[config_id(f, v) for f, v, _ in CONFIG_CASES]
)
def test_train_config_refuses_numbers_it_cannot_train_with(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(field, value)


def test_train_config_refuses_bad_numbers_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("lr = inf\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c.toml: lr: got inf; give a finite number"):
        TrainConfig.from_toml(path)


# ------------------------------------------------------------------------ a diverging run
def diverging_config(tmp_path: Path, **overrides) -> TrainConfig:
    fields = {
        "model": ModelConfig(backbone="tiny", d=16, max_length=64),
        "finetune": "heads",
        "batch_size": 2,
        "max_steps": 5,
        "device": "cpu",
        "output_dir": str(tmp_path / "run"),
        **overrides,
    }
    return TrainConfig(**fields)


def test_a_loss_that_becomes_nan_stops_training_and_keeps_the_good_checkpoints(
    tmp_path: Path, sample_path: Path, monkeypatch
) -> None:
    import torch

    import srm.train
    from srm.checkpoint import read_info
    from srm.train import TrainingError, train

    calls = []
    real = srm.train.bradley_terry

    def nan_at_step_3(*args, **kwargs) -> torch.Tensor:
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * math.nan if len(calls) == 3 else loss

    monkeypatch.setattr(srm.train, "bradley_terry", nan_at_step_3)
    cfg = diverging_config(tmp_path, save_every=1)
    with pytest.raises(TrainingError) as err:
        train(cfg, load_pairs(sample_path), show_progress=False)
    good = tmp_path / "run" / "checkpoints" / "step-000002"
    assert str(err.value).startswith(
        f"training diverged after step 2: the loss is nan. Nothing more was saved; the last "
        f"good checkpoint is {good}."
    )
    assert sorted(p.name for p in good.parent.iterdir()) == ["step-000001", "step-000002"]
    assert read_info(good).training["step"] == 2
    assert not (tmp_path / "run" / "model.safetensors").exists()  # no final model of nan


def test_weights_spoilt_on_the_last_step_are_not_saved(
    tmp_path: Path, sample_path: Path, monkeypatch
) -> None:
    """The loss can stay finite for a step after the weights are spoilt: the weights are
    checked before every save too."""
    import torch

    import srm.train
    from srm.train import TrainingError, train

    built = []
    build_model = srm.train.build_model
    monkeypatch.setattr(
        srm.train, "build_model", lambda cfg: built.append(build_model(cfg)) or built[0]
    )

    def spoil(step: int, total: int, metrics: dict) -> None:
        if step == total:  # as a huge learning rate would, on the last update
            with torch.no_grad():
                next(p for p in built[0].parameters() if p.requires_grad).fill_(math.inf)

    with pytest.raises(
        TrainingError,
        match=r"after step 5: weight .* is not finite\. Nothing more was saved; no checkpoint "
        r"was written before it",
    ):
        train(
            diverging_config(tmp_path), load_pairs(sample_path), progress=spoil, show_progress=False
        )
    assert not (tmp_path / "run" / "model.safetensors").exists()


# ------------------------------------------------------------------------- a full disk
def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# What each writing command runs, and which write runs out of space: fsync, the last step
# of every atomic file write, or datasets' save_to_disk for an hf directory.
FULL_DISK_CASES = {
    "score --out": (f"{SCORE} --out {{root}}/out.jsonl", "os.fsync"),
    "export --out": ("export --db {db} --dataset d --out {root}/out.jsonl", "os.fsync"),
    "export --format prm --out": (
        "export --db {db} --dataset d --format prm --out {root}/out.jsonl",
        "os.fsync",
    ),
    "export --format hf --out": (
        "export --db {db} --dataset d --format hf --out {root}/out",
        "datasets.Dataset.save_to_disk",
    ),
    "eval --json": ("eval --model {model} --data {pairs} --json {root}/out.jsonl", "os.fsync"),
}


@pytest.mark.parametrize("case", FULL_DISK_CASES, ids=list(FULL_DISK_CASES))
def test_a_full_disk_while_writing_output_leaves_nothing_half_written(
    case: str, files: Files, monkeypatch
) -> None:
    command, write = FULL_DISK_CASES[case]
    invoke = CliRunner().invoke
    assert invoke(main, files.argv("import {pairs} --db {db} --dataset d")).exit_code == 0
    out = files.root / ("out" if "hf" in case else "out.jsonl")
    if "hf" not in case:
        out.write_text("the earlier output\n", encoding="utf-8")

    def listing() -> list[str]:
        return sorted(p.name for p in files.root.iterdir() if not p.name.startswith("store.db"))

    before = listing()
    monkeypatch.setattr(write, no_space)
    result = invoke(main, files.argv(command))
    check_clean_failure(
        result,
        rf"{out.name}: no space left on the device.*; the partial file was removed and "
        rf"{'nothing was saved there' if 'hf' in case else 'the file that was there is unchanged'}"
        r"\. Free space on the disk holding .* and run again",
    )
    assert listing() == before  # no partial file left
    if "hf" not in case:
        assert out.read_text(encoding="utf-8") == "the earlier output\n"


@pytest.mark.parametrize("which", ["a checkpoint", "the final model"])
def test_a_full_disk_while_saving_a_model_says_what_was_kept(
    which: str, files: Files, monkeypatch
) -> None:
    """``srm train`` stops with one line that says nothing of the model was kept and the run's
    earlier checkpoints were, and how much to free; no partial checkpoint is left behind."""
    import srm.checkpoint
    from srm.checkpoint import read_info

    real = srm.checkpoint.save_file

    def save_file(tensors, path, *args, **kwargs):
        in_checkpoint = "step-000002" in str(path)
        if in_checkpoint if which == "a checkpoint" else "checkpoints" not in str(path):
            no_space()
        return real(tensors, path, *args, **kwargs)

    monkeypatch.setattr(srm.checkpoint, "save_file", save_file)
    result = CliRunner().invoke(
        main, files.argv(f"{TRAIN} --max-steps 3 --save-every 1 --out {{root}}/run")
    )
    check_clean_failure(
        result,
        r"cannot save the model at .*: no space left on the device \(its weights are .*\); the "
        r"partial files were removed and .* Free more than .* on the disk holding .*A training "
        "run keeps the checkpoints it saved before: resume from the newest",
    )
    run = files.root / "run"
    assert read_info(run / "checkpoints" / "step-000001").training["step"] == 1
    assert not [p for p in run.rglob(".*")], "a partial checkpoint was left behind"
    if which == "a checkpoint":
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000001"]
    else:
        assert not (run / "model").exists()


# ------------------------------------------------------------------------- NaN weights
def test_a_resume_from_a_nan_checkpoint_is_refused_not_called_good(
    tmp_path: Path, sample_path: Path
) -> None:
    """A checkpoint holding NaN weights is refused when it is loaded, so a resume from one
    stops at once, naming the weight, and never calls it "the last good checkpoint"."""
    from srm.train import train

    cfg = diverging_config(tmp_path, max_steps=2, save_every=1)
    train(cfg, load_pairs(sample_path), show_progress=False)
    spoilt = spoil_checkpoint(tmp_path / "run" / "checkpoints" / "step-000001")
    argv = [
        *shlex.split(TRAIN.format(pairs=sample_path)),
        *["--d", "16", "--max-length", "64", "--finetune", "heads", "--batch-size", "2"],
        *["--max-steps", "2", "--save-every", "1", "--resume-from", str(spoilt)],
        *["--out", str(tmp_path / "run")],
    ]
    result = CliRunner().invoke(main, argv)
    check_clean_failure(
        result,
        r"Error: resume_from: .*step-000001.*/model.safetensors: tensor .* holds NaN or infinite "
        "values, so the model cannot score; it is not a good checkpoint",
    )
    assert "last good checkpoint" not in result.output


# ------------------------------------------------------------------------- the docs
def test_every_case_is_in_docs_reliability() -> None:
    doc = RELIABILITY_DOC.read_text(encoding="utf-8")
    ids = [c.id for c in [*CLI_CASES, *IMPORT_CASES]] + [
        config_id(f, v) for f, v, _ in CONFIG_CASES
    ]
    missing = [case for case in ids if f"| `{case}` |" not in doc]
    assert not missing, f"add these cases to the table in {RELIABILITY_DOC}: {missing}"


def markdown_table() -> str:
    """Run every case (imports on SQLite) and render the tables of docs/reliability.md, each
    case's temporary directory shown as $TMP."""
    from unittest import mock

    from srm.checkpoint import save
    from srm.model import SentenceRewardModel

    def message(files: Files, argv: list[str], env: dict[str, str]) -> str:
        with mock.patch.dict(os.environ, env):
            output = CliRunner().invoke(main, argv).output
        # From "Error:" on (a usage error prints the usage first), on one line.
        text = output[output.rfind("Error:") :].strip().replace("\n", " ")
        text = text.replace(str(files.root), "$TMP")
        return text.replace("|", "\\|").replace("*", "\\*")  # as text in a markdown table

    commands = ["| command (`srm ...`) | message |", "|---|---|"]
    imports = ["| `srm import` of | message |", "|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve()
        model = root / "model"
        save(SentenceRewardModel.create(ModelConfig(backbone="tiny", d=16), seed=0), model)
        for i, case in enumerate(CLI_CASES):
            files = Files(root / f"cli{i}", model)
            with feeding(files.fifo):
                text = message(files, files.argv(case.command), dict(case.env))
            commands.append(f"| `{case.id}` | {text} |")
        for i, case in enumerate(IMPORT_CASES):
            files = Files(root / f"import{i}", model)
            argv = ["import", str(case.make(files)), "--db", files.db, *case.args]
            imports.append(f"| `{case.id}` | {message(files, argv, dict(case.env))} |")
    configs = ["| `TrainConfig` field | message |", "|---|---|"]
    for field, value, _ in CONFIG_CASES:
        try:
            make_config(field, value)
        except ConfigError as err:
            configs.append(f"| `{config_id(field, value)}` | {err} |")
    return "\n".join([*commands, "", *imports, "", *configs])


if __name__ == "__main__":  # python -m tests.srm.test_bad_input
    print(markdown_table())
