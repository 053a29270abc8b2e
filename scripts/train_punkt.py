"""Train the Punkt sentence-boundary parameters that ``srm.segment`` bundles.

Punkt is unsupervised: it learns abbreviations, collocations, frequent sentence
starters and each word's capitalisation contexts from raw text. We train it on the
project's own bundled preference data (HH-RLHF train split and PandaLM eval split,
role labels stripped), add ``srm.punkt.CURATED_ABBREVIATIONS`` and write the
result as a small, deterministic JSON file inside the package::

    python scripts/train_punkt.py                      # rewrites srm/resources/punkt_srm.json
    python scripts/train_punkt.py --punkt-tab out/english   # also NLTK's punkt_tab layout

The same input always gives byte-identical output (sorted keys and lists, no
timestamps), so a rerun that changes the file means the data or NLTK changed.
"""

import argparse
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from nltk.tokenize.punkt import PunktParameters, PunktTrainer

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(ROOT))

from srm.punkt import (  # noqa: E402
    BUNDLED_PARAMS_RESOURCE,
    CURATED_ABBREVIATIONS,
    PARAMS_FORMAT,
    PUNKT_CHAR_MAP,
)
from srm.segment import prose_lines  # noqa: E402

logger = logging.getLogger("train_punkt")

DEFAULT_INPUTS = (ROOT / "data" / "train_hh_rlhf.jsonl", ROOT / "data" / "eval_pandalm.jsonl")
DEFAULT_OUTPUT = ROOT / "srm" / BUNDLED_PARAMS_RESOURCE
MIN_ORTHO_COUNT = 3
"""Keep a word's capitalisation contexts only if it was seen this often (keeps the file small)."""

_ROLE_LABEL = re.compile(r"(?:^|\n\n)(?:Human|Assistant):[ \t]?")


def documents(paths: Iterable[Path]) -> Iterator[str]:
    """Texts to train on: the prompt turns, chosen and rejected responses, each once.

    HH-RLHF prompts are dialogues (``"\\n\\nHuman: ...\\n\\nAssistant: ..."``); the role
    labels are dropped and each turn becomes a document of its own.

    >>> list(documents([]))
    []
    """
    seen: set[str] = set()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line_number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                texts = []
                for field in ("prompt", "chosen", "rejected"):
                    value = record.get(field)
                    if not isinstance(value, str):
                        raise ValueError(f"{path}:{line_number}: field {field!r} is not a string")
                    texts.extend(_ROLE_LABEL.split(value) if field == "prompt" else [value])
                for text in texts:
                    text = text.strip()
                    if text and text not in seen:
                        seen.add(text)
                        yield text


def training_text(paths: Iterable[Path]) -> str:
    """What Punkt sees at run time, from every document: one paragraph per prose line.

    ``srm.segment`` splits at every line and hands Punkt one prose line at a time
    (list markers cut off, quotes normalised), so training does the same: a line's
    first word is a sentence start, and numbered-list markers do not teach Punkt
    false collocations such as ("##number##", "preheat").

    >>> training_text([])
    ''
    """
    return "\n\n".join(
        line.translate(PUNKT_CHAR_MAP) for doc in documents(paths) for line in prose_lines(doc)
    )


def train(text: str, *, min_ortho_count: int = MIN_ORTHO_COUNT) -> PunktParameters:
    """Train Punkt on *text* and add the curated abbreviations.

    >>> "dr" in train("Dr. Who is here. It is late.").abbrev_types
    True
    """
    trainer = PunktTrainer()
    trainer.train(text, finalize=True)
    # After finalising, so pruning the counts cannot change the learned statistics.
    trainer.freq_threshold(ortho_thresh=min_ortho_count)
    params = trainer.get_params()
    # Single-word "abbreviations" learned from ~10 MB of chat are mostly noise
    # ("queensland", "duh", "amen" would stop real sentence breaks); keep only the
    # dotted ones ("a.k.a", "ph.d", initials) and rely on the curated list for the rest.
    params.abbrev_types = {a for a in params.abbrev_types if "." in a} | CURATED_ABBREVIATIONS
    # Number collocations exist for ordinals ("3. Oktober"); English has none, and the
    # learned ones ("... in 2010. Steve ...") would only hide real sentence breaks.
    params.collocations = {c for c in params.collocations if c[0] != "##number##"}
    return params


def params_to_json(params: PunktParameters, *, sources: Sequence[str] = ()) -> str:
    """The bundled JSON form of *params* (read back by ``srm.punkt.params_from_dict``).

    >>> print(params_to_json(PunktParameters(), sources=["a.jsonl"]), end="")
    {
    "abbrev_types": [],
    "collocations": [],
    "format": "srm-punkt/1",
    "ortho_context": {},
    "sent_starters": [],
    "trained_on": [
    "a.jsonl"
    ]
    }
    """
    data = {
        "format": PARAMS_FORMAT,
        "trained_on": list(sources),
        "abbrev_types": sorted(params.abbrev_types),
        "collocations": sorted([a, b] for a, b in params.collocations),
        "sent_starters": sorted(params.sent_starters),
        "ortho_context": {k: v for k, v in sorted(params.ortho_context.items()) if v},
    }
    # One entry a line (indent=0) so that a retrained file diffs readably.
    return (
        json.dumps(data, sort_keys=True, ensure_ascii=False, indent=0, separators=(",", ": "))
        + "\n"
    )


def write_punkt_tab(params: PunktParameters, directory: Path) -> None:
    """Write *params* in NLTK's ``punkt_tab`` layout (as ``nltk.tokenize.punkt`` reads it).

    Put the files in ``<data root>/tokenizers/punkt_tab/english/`` to have
    ``nltk.tokenize.PunktTokenizer("english")`` load them. Rows are sorted.

    >>> write_punkt_tab(PunktParameters(), Path("/tmp/x"))  # doctest: +SKIP
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "abbrev_types.txt": sorted(params.abbrev_types),
        "collocations.tab": sorted(f"{a}\t{b}" for a, b in params.collocations),
        "sent_starters.txt": sorted(params.sent_starters),
        "ortho_context.tab": [f"{k}\t{v}" for k, v in sorted(params.ortho_context.items()) if v],
    }
    for name, rows in files.items():
        (directory / name).write_text("\n".join(rows), encoding="utf-8", newline="")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*", type=Path, default=list(DEFAULT_INPUTS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write")
    parser.add_argument("--punkt-tab", type=Path, help="also write punkt_tab files here")
    parser.add_argument("--min-ortho-count", type=int, default=MIN_ORTHO_COUNT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    text = training_text(args.inputs)
    logger.info("training on %d characters from %d files", len(text), len(args.inputs))
    params = train(text, min_ortho_count=args.min_ortho_count)
    sources = [_display_path(p) for p in args.inputs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(params_to_json(params, sources=sources), encoding="utf-8", newline="")
    logger.info(
        "wrote %s (%d bytes): %d abbreviations, %d collocations, %d sentence starters, "
        "%d ortho contexts",
        args.out,
        args.out.stat().st_size,
        len(params.abbrev_types),
        len(params.collocations),
        len(params.sent_starters),
        sum(1 for v in params.ortho_context.values() if v),
    )
    if args.punkt_tab:
        write_punkt_tab(params, args.punkt_tab)
        logger.info("wrote punkt_tab files to %s", args.punkt_tab)
    return 0


def _display_path(path: Path) -> str:
    """*path* relative to the checkout when inside it, so the output does not name the host."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(ROOT).as_posix()
    except ValueError:
        return path.name


if __name__ == "__main__":
    sys.exit(main())
