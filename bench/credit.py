"""Credit localization with a known answer: plant one foreign sentence, see which model finds it.

Pairwise accuracy cannot tell a model that puts credit on the right sentence from one that does
not. This benchmark builds pairs where the right sentence is known: a held-out HH-RLHF response
of at least 3 sentences is the chosen side, and the rejected side is the same response with ONE
sentence (position drawn uniformly, seeded) replaced by a sentence of similar length from an
unrelated conversation (``--plant wrong``: by an obviously false sentence instead). Each head is
trained briefly with one recipe on such planted pairs mixed with real HH training pairs, then
asked, on the corrupted response, which sentence is the worst:

    .venv/bin/python bench/credit.py --json runs/credit.json              # minilm, ~15-20 min
    .venv/bin/python bench/credit.py --backbone tiny --steps 3 --pairs 16  # smoke run, seconds

Rows: the sentence head's rewards r_j and its weighted rewards a_j*r_j, the token head's mean
token reward per sentence, and the response head's r_j = v_j - v_(j-1). With a causal backbone
the response head's value at marker j is what it gives the response cut after sentence j, so
those differences ARE prefix re-scoring of a response-level model (in one pass). Beside them:
random, first, last and shortest sentence. Pointing accuracy and AUROC come from
:func:`srm.evaluate.credit_report` (planted sentence = bad, every other one = good); the mean
rank of the planted sentence (1 = lowest reward) is computed here.

Training pairs come from ``data/train_hh_rlhf.jsonl`` only and evaluation pairs from
``data/heldout_hh_rlhf.jsonl`` only; within each file the host responses, the donor sentences
and (for training) the real pairs come from disjoint sets of pairs.
"""

from __future__ import annotations

import argparse
import bisect
import json
import logging
import math
import platform
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from srm.checkpoint import load
from srm.collate import encode_pairs
from srm.config import HEADS, TrainConfig
from srm.data import PreferencePair, load_pairs
from srm.evaluate import credit_report, pointing_credit, summarize
from srm.model import SentenceRewardModel
from srm.records import PairScores, ResponseScores
from srm.score import score_pairs
from srm.segment import Span, segment
from srm.train import train

log = logging.getLogger("bench.credit")

REPO = Path(__file__).resolve().parents[1]
TRAIN_DATA = REPO / "data" / "train_hh_rlhf.jsonl"
EVAL_DATA = REPO / "data" / "heldout_hh_rlhf.jsonl"
MIN_SENTENCES = 3
DONOR_CHOICES = 16
"""A planted sentence is drawn from the DONOR_CHOICES unused donor sentences nearest in length
to the sentence it replaces, so sentence length alone does not give it away."""
DONOR_MIN_CHARS, DONOR_MAX_CHARS = 20, 300
SCORE_BATCH = 16

# Obviously false sentences for --plant wrong: a model that reads the words should find these.
WRONG_SENTENCES = (
    "The Eiffel Tower is made entirely of chocolate and melts every summer.",
    "Two plus two equals seven, as every calculator confirms.",
    "The Pacific Ocean is a small lake in the middle of Switzerland.",
    "Water freezes at three hundred degrees Celsius at sea level.",
    "Abraham Lincoln was the first person to walk on Mars.",
    "Cats are a kind of fish that nest in the tops of trees.",
    "The sun rises in the west and sets in the north.",
    "Bananas are the main ingredient of concrete.",
    "Paris is the capital city of Japan.",
    "A week has eleven days, and it starts on a Thursday.",
    "The human heart is located in the left foot.",
    "Penguins fly over the Sahara every winter in huge flocks.",
    "Shakespeare wrote all of his plays on a smartphone in 1602.",
    "The moon is about three meters away from the Earth.",
    "Ice cream is always served boiling hot.",
    "Mount Everest is the lowest point on Earth.",
    "Spiders have exactly two legs and a beak.",
    "Gold is lighter than air, so gold rings float away.",
    "Most dogs speak fluent French by the age of two.",
    "Rain falls upward on Tuesdays.",
)

_SENTENCE_END = re.compile(r"[.!?][\"'”’)]*$")
_LIST_OR_HEADING = re.compile(r"^(?:[-*+•#]|\d+[.)])\s")


# --- planted pairs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlantedPair:
    """A pair whose rejected side differs from the chosen side in one known sentence."""

    pair: PreferencePair
    """chosen = the original response, rejected = the same with one sentence replaced."""
    index: int
    """0-based index of the planted sentence in ``segment(pair.rejected)``."""
    n_sentences: int
    """Sentences of both sides (the same number, checked)."""
    replaced: str
    """The original sentence, stripped."""
    planted: str
    """The planted sentence, stripped."""
    donor: str | None
    """Id of the pair the planted sentence came from (None for --plant wrong)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.pair.id,
            "index": self.index,
            "n_sentences": self.n_sentences,
            "replaced": self.replaced,
            "planted": self.planted,
            "donor": self.donor,
        }


@dataclass(frozen=True)
class Donor:
    text: str
    conversation: str
    pair_id: str


class DonorPool:
    """Sentences of other conversations, drawn without replacement, matched on length."""

    def __init__(self, pairs: Sequence[PreferencePair], max_chars: int) -> None:
        seen: set[str] = set()
        donors: list[Donor] = []
        for pair in pairs:
            key = conversation(pair.prompt)
            for response in (pair.chosen, pair.rejected):
                for span in segment(response, max_chars=max_chars):
                    text = span.text.strip()
                    if text not in seen and _plantable(text, max_chars):
                        seen.add(text)
                        donors.append(Donor(text, key, pair.id))
        donors.sort(key=lambda d: (len(d.text), d.text))
        self.donors = donors
        self.lengths = [len(d.text) for d in donors]
        self.used: set[int] = set()

    def __len__(self) -> int:
        return len(self.donors)

    def draw(self, length: int, exclude: str, rng: random.Random) -> Donor | None:
        """One unused sentence among the DONOR_CHOICES nearest to ``length`` characters,
        from a conversation other than ``exclude``; None when the pool is spent."""
        hi = bisect.bisect_left(self.lengths, length)
        lo = hi - 1
        choices: list[int] = []
        while len(choices) < DONOR_CHOICES and (lo >= 0 or hi < len(self.donors)):
            # Step towards whichever neighbour is closer in length (a coin decides a draw, so
            # planted sentences are as often longer as shorter than the ones they replace).
            if lo < 0 or hi >= len(self.donors):
                take_hi = lo < 0
            else:
                up, down = self.lengths[hi] - length, length - self.lengths[lo]
                take_hi = up < down or (up == down and rng.random() < 0.5)
            i = hi if take_hi else lo
            if take_hi:
                hi += 1
            else:
                lo -= 1
            if i not in self.used and self.donors[i].conversation != exclude:
                choices.append(i)
        if not choices:
            return None
        i = rng.choice(choices)
        self.used.add(i)
        return self.donors[i]


def conversation(prompt: str) -> str:
    """The conversation a pair belongs to: its first human turn (as the data split uses)."""
    return prompt.split("\n\nAssistant:", 1)[0].strip()


def _plantable(text: str, max_chars: int) -> bool:
    """A plain one-line sentence: starts upper-case, ends with . ! or ?, is one segment."""
    return (
        DONOR_MIN_CHARS <= len(text) <= min(DONOR_MAX_CHARS, max_chars)
        and "\n" not in text
        and text[0].isupper()
        and _SENTENCE_END.search(text) is not None
        and not _LIST_OR_HEADING.match(text)
        and len(text.split()) >= 4
        and len(segment(text, max_chars=max_chars)) == 1
    )


def replace_sentence(text: str, span: Span, sentence: str) -> str:
    """``text`` with the words of ``span`` replaced by ``sentence``; the span's leading and
    trailing whitespace stay, so the boundaries around it are what they were."""
    lead = len(span.text) - len(span.text.lstrip())
    trail = len(span.text.rstrip())
    return text[: span.start] + span.text[:lead] + sentence + span.text[trail:] + text[span.end :]


def plant_pair(
    host: PreferencePair,
    spans: list[Span],
    index: int,
    sentence: str,
    donor: str | None,
    max_chars: int,
) -> PlantedPair | None:
    """The planted pair, or None when segmenting the corrupted response does not give back the
    same sentences with ``sentence`` at ``index`` (then the answer would not be known)."""
    rejected = replace_sentence(host.chosen, spans[index], sentence)
    got = segment(rejected, max_chars=max_chars)
    same = len(got) == len(spans) and all(
        (g.text.strip() == sentence) if j == index else (g.text == s.text)
        for j, (g, s) in enumerate(zip(got, spans, strict=True))
    )
    if not same:
        return None
    pair = PreferencePair(
        id=f"planted-{host.id}",
        prompt=host.prompt,
        chosen=host.chosen,
        rejected=rejected,
        source="planted",
    )
    return PlantedPair(pair, index, len(spans), spans[index].text.strip(), sentence, donor)


@dataclass
class Split:
    """What one data file gives: planted pairs, real pairs, and how they were made."""

    planted: list[PlantedPair]
    real: list[PreferencePair]
    counts: dict[str, int]


def build_split(
    pairs: Sequence[PreferencePair],
    n_planted: int,
    n_real: int,
    *,
    seed: str,
    plant: str,
    max_chars: int,
) -> Split:
    """Shuffle ``pairs`` (seeded), take host pairs (chosen side of >= 3 sentences) for the
    planted pairs, then ``n_real`` real pairs from the others, and use every pair left as the
    donor pool: hosts, real pairs and donors never share a pair."""
    rng = random.Random(seed)
    order = list(pairs)
    rng.shuffle(order)
    spans = {p.id: segment(p.chosen, max_chars=max_chars) for p in order}
    candidates = [p for p in order if len(spans[p.id]) >= MIN_SENTENCES]
    # Some plants fail the segmentation check: take a few spare hosts, discard what is unused.
    hosts = candidates[: n_planted + n_planted // 10 + 8] if n_planted else []
    host_ids = {p.id for p in hosts}
    others = [p for p in order if p.id not in host_ids]
    real, donors = others[:n_real], others[n_real:]
    pool = DonorPool(donors, max_chars) if plant == "unrelated" else None
    counts: Counter[str] = Counter(
        pairs=len(pairs), hosts_available=len(candidates), host_pairs=len(hosts)
    )
    if pool is not None:
        counts["donor_pairs"] = len(donors)
        counts["donor_sentences"] = len(pool)
    planted: list[PlantedPair] = []
    for host in hosts:
        if len(planted) == n_planted:
            break
        host_spans = spans[host.id]
        index = rng.randrange(len(host_spans))  # uniform over positions
        original = host_spans[index].text.strip()
        if pool is None:
            sentence, donor = rng.choice(WRONG_SENTENCES), None
        else:
            drawn = pool.draw(len(original), conversation(host.prompt), rng)
            if drawn is None:
                counts["dropped_no_donor"] += 1
                continue
            sentence, donor = drawn.text, drawn.pair_id
        made = plant_pair(host, host_spans, index, sentence, donor, max_chars)
        if made is None:
            counts["dropped_segmentation"] += 1
            continue
        planted.append(made)
    counts["planted"] = len(planted)
    counts["real"] = len(real)
    if len(planted) < n_planted:
        log.warning(
            "only %d of the %d planted pairs asked for could be made", len(planted), n_planted
        )
    return Split(planted, real, dict(counts))


# --- metrics ----------------------------------------------------------------------------------


def method_scores(side: ResponseScores) -> dict[str, list[float | None]]:
    """Per sentence, what each row of :func:`srm.evaluate.credit_report` ranks by (higher =
    better; None where truncation left the sentence out)."""
    sentences = side.sentences
    k = len(sentences)
    scored = [s.scored for s in sentences]
    return {
        "reward": [s.reward for s in sentences],
        "weighted": [
            s.weight * s.reward if s.scored else None  # type: ignore[operator]
            for s in sentences
        ],
        "first": [j if ok else None for j, ok in enumerate(scored)],
        "last": [k - 1 - j if ok else None for j, ok in enumerate(scored)],
        "length": [len(s.text.strip()) if s.scored else None for s in sentences],
    }


def planted_rank(scores: Sequence[float], index: int) -> float:
    """Rank of ``scores[index]`` from the lowest (1), ties sharing the mean of their ranks."""
    below = sum(s < scores[index] for s in scores)
    tied = sum(s == scores[index] for s in scores)
    return 1 + below + (tied - 1) / 2


def rank_report(records: Sequence[PairScores], planted: Sequence[PlantedPair]) -> dict:
    """Mean rank of the planted sentence per method (and the pointing credit recomputed from
    the same scores, to check that they agree with credit_report's), over the corrupted
    responses whose planted sentence was scored along with at least one other."""
    ranks: dict[str, list[float]] = {}
    pointing: dict[str, list[float]] = {}
    sizes: list[int] = []
    for record, item in zip(records, planted, strict=True):
        per_method = method_scores(record.rejected)
        keep = [j for j, v in enumerate(per_method["reward"]) if v is not None]
        if item.index not in keep or len(keep) < 2:
            continue
        at = keep.index(item.index)
        sizes.append(len(keep))
        good = [j != item.index for j in keep]
        for method, values in per_method.items():
            scores = [values[j] for j in keep]
            ranks.setdefault(method, []).append(planted_rank(scores, at))
            pointing.setdefault(method, []).append(pointing_credit(scores, good))
        ranks.setdefault("random", []).append((len(keep) + 1) / 2)
    return {
        "responses": len(sizes),
        "mean_sentences": _mean(sizes),
        "mean_rank": {m: _mean(v) for m, v in ranks.items()},
        "pointing": {m: _mean(v) for m, v in pointing.items()},
    }


def pairwise(records: Sequence[PairScores]) -> dict[str, float]:
    overall = summarize(records)["overall"]
    return {
        "n": overall["n"],
        "accuracy": overall["accuracy"],
        "length_baseline": overall["length_baseline"],
    }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def check_records(records: Sequence[PairScores], planted: Sequence[PlantedPair]) -> None:
    """The model's own segmentation must put the planted sentence where it was recorded."""
    for record, item in zip(records, planted, strict=True):
        sentences = record.rejected.sentences
        if len(sentences) != item.n_sentences or (
            sentences[item.index].text.strip() != item.planted
        ):
            raise RuntimeError(
                f"{item.pair.id}: the model segmented the corrupted response differently from "
                "segment(); check the model's max_sentence_chars"
            )


def window_visibility(model: SentenceRewardModel, planted: Sequence[PlantedPair]) -> dict:
    """How many training plants the training window (max_length) shows, wholly or in part."""
    if not planted:
        return {"pairs": 0, "whole": 0, "in_part": 0}
    # At the training length.
    encoded = encode_pairs(model.tokenizer, model.config, [p.pair for p in planted])
    n = len(planted)
    whole = in_part = 0
    for item, enc in zip(planted, encoded[n:], strict=True):  # the rejected sides
        if item.index < enc.n_sentences - 1 or (
            item.index == enc.n_sentences - 1 and not enc.last_cut_short
        ):
            whole += 1
        elif item.index == enc.n_sentences - 1:
            in_part += 1
    return {"pairs": n, "whole": whole, "in_part": in_part}


# --- the run ----------------------------------------------------------------------------------


def evaluate_head(
    model: SentenceRewardModel,
    planted: Sequence[PlantedPair],
    real: Sequence[PreferencePair],
) -> dict[str, Any]:
    records = score_pairs(
        model, [p.pair for p in planted], batch_size=SCORE_BATCH, show_progress=True
    )
    check_records(records, planted)
    items = [
        {
            "source": "planted",
            "labels": [j != item.index for j in range(item.n_sentences)],
            "record": record.rejected,
        }
        for record, item in zip(records, planted, strict=True)
    ]
    report = credit_report(
        items, head=model.config.head, prefix_rewards=bool(records[0].prefix_rewards)
    )
    ranks = rank_report(records, planted)
    for method, value in ranks["pointing"].items():
        expected = report["overall"]["metrics"][method]["pointing"]
        if value is None or expected is None or not math.isclose(value, expected, abs_tol=1e-9):
            raise RuntimeError(f"pointing of {method}: {value} here, {expected} in credit_report")
    real_records = score_pairs(model, real, batch_size=SCORE_BATCH, show_progress=True)
    return {
        "credit": report,
        "ranks": ranks,
        "score_max_length": records[0].max_length,
        "pairwise_planted": pairwise(records),
        "pairwise_real": pairwise(real_records),
    }


ROWS = (
    # (table label, head, credit_report method)
    ("sentence head: reward r_j", "sentence", "reward"),
    ("sentence head: weight x reward a_j*r_j", "sentence", "weighted"),
    ("token head: mean token reward", "token", "reward"),
    ("response head: prefix re-scoring v_j - v_(j-1)", "response", "reward"),
    ("baseline: random sentence (expected)", None, "random"),
    ("baseline: first sentence", None, "first"),
    ("baseline: last sentence", None, "last"),
    ("baseline: shortest sentence", None, "length"),
)


def credit_table(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's rows: each method's pointing, mean rank, AUROC and ratio to random."""
    first = next(iter(results.values()))  # baselines only depend on the sentences scored
    random_pointing = first["credit"]["overall"]["metrics"]["random"]["pointing"]
    rows = []
    for label, head, method in ROWS:
        source = first if head is None else results.get(head)
        if source is None:
            continue
        metrics = source["credit"]["overall"]["metrics"][method]
        pointing = metrics["pointing"]
        rows.append(
            {
                "method": label,
                "head": head,
                "row": method,
                "pointing": pointing,
                "mean_rank": source["ranks"]["mean_rank"].get(method),
                "auroc": metrics["auroc"],
                "vs_random": pointing / random_pointing
                if pointing is not None and random_pointing
                else None,
            }
        )
    return rows


def _cell(value: float | None, fmt: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, fmt) + suffix


def print_tables(setup: dict[str, Any], results: dict[str, dict[str, Any]], rows: list) -> None:
    first = next(iter(results.values()))
    overall = first["credit"]["overall"]
    print()
    print(
        f"Planted held-out pairs: {setup['eval']['planted']} ({overall['eligible']} with the "
        f"planted sentence scored; {first['ranks']['mean_sentences']:.2f} scored sentences per "
        f"corrupted response on average), scored at {first['score_max_length']} tokens."
    )
    print()
    print("| method | pointing accuracy | mean rank (1 = lowest) | AUROC | ratio to random |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['method']} | {_cell(row['pointing'], '.1%')} | "
            f"{_cell(row['mean_rank'], '.2f')} | {_cell(row['auroc'], '.3f')} | "
            f"{_cell(row['vs_random'], '.2f', 'x')} |"
        )
    print()
    print("| head | planted held-out pairs | real held-out HH pairs | train time | final loss |")
    print("|---|---|---|---|---|")
    for head, r in results.items():
        loss = r["train"]["metrics"].get("loss")
        print(
            f"| {head} | {r['pairwise_planted']['accuracy']:.1%} | "
            f"{r['pairwise_real']['accuracy']:.1%} | {r['train']['seconds'] / 60:.1f} min | "
            f"{_cell(loss, '.4f')} |"
        )
    print(
        f"| length-only baseline | {first['pairwise_planted']['length_baseline']:.1%} | "
        f"{first['pairwise_real']['length_baseline']:.1%} | | |"
    )
    print(
        f"(planted n={first['pairwise_planted']['n']}, real n={first['pairwise_real']['n']}; "
        "a tie counts as wrong)"
    )


class Stopped(Exception):
    """The run was asked to stop (Ctrl-C or SIGTERM)."""


def run(args: argparse.Namespace, work_dir: Path, started: float) -> dict[str, Any]:
    recipe = TrainConfig.from_toml(args.config)
    recipe = recipe.replace(
        model=recipe.model.replace(
            backbone=args.backbone,
            max_length=args.max_length,
            prompt_term=not args.no_prompt_term,
        ),
        max_steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    max_chars = recipe.model.max_sentence_chars
    n_planted = round(args.train_pairs * args.planted_share)

    log.info("building planted pairs (%s sentences)", args.plant)
    train_split = build_split(
        load_pairs(TRAIN_DATA),
        n_planted,
        args.train_pairs - n_planted,
        seed=f"{args.seed}-train",
        plant=args.plant,
        max_chars=max_chars,
    )
    heldout = load_pairs(EVAL_DATA)
    eval_split = build_split(
        heldout, args.eval_pairs, 0, seed=f"{args.seed}-eval", plant=args.plant, max_chars=max_chars
    )
    real_eval = random.Random(f"{args.seed}-real").sample(
        heldout, min(args.real_pairs, len(heldout))
    )
    if not eval_split.planted:
        raise SystemExit("no held-out planted pairs could be made; raise --eval-pairs")
    training = [p.pair for p in train_split.planted] + train_split.real
    setup = {
        "backbone": args.backbone,
        "heads": args.heads,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "seed": args.seed,
        "plant": args.plant,
        "planted_share": args.planted_share,
        "recipe": recipe.to_dict(),
        "train": train_split.counts,
        "eval": eval_split.counts | {"real": len(real_eval)},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    finetune = f"lora (r={recipe.lora_r})" if recipe.finetune == "lora" else recipe.finetune
    print(
        f"credit localization: backbone {args.backbone}, {finetune}, "
        f"max_length {args.max_length}, {args.steps} steps x {args.batch_size} pairs, "
        f"lr {recipe.lr}/{recipe.head_lr}, seed {args.seed}; training on "
        f"{len(train_split.planted)} planted + {len(train_split.real)} real HH pairs "
        f"({args.plant} sentences planted); evaluation on {len(eval_split.planted)} planted "
        f"held-out pairs and {len(real_eval)} real held-out pairs; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    for name, split in (("training", train_split), ("held-out", eval_split)):
        c = split.counts
        print(
            f"{name} plants: {c['planted']} made from {c['host_pairs']} host pairs "
            f"({c['hosts_available']} of {c['pairs']} have >= {MIN_SENTENCES} sentences); "
            f"dropped: {c.get('dropped_segmentation', 0)} by the segmentation check, "
            f"{c.get('dropped_no_donor', 0)} for want of a donor sentence"
            + (f"; donor pool {c['donor_sentences']} sentences" if "donor_sentences" in c else ""),
            flush=True,
        )

    results: dict[str, dict[str, Any]] = {}
    visibility = None
    for head in args.heads:
        cfg = recipe.replace(model=recipe.model.replace(head=head), output_dir=str(work_dir / head))
        log.info("training the %s head (%d steps)", head, args.steps)
        start = time.perf_counter()
        trained = train(cfg, training)
        if trained.interrupted:
            raise Stopped
        train_seconds = time.perf_counter() - start
        model = load(work_dir / head)
        if visibility is None:
            visibility = window_visibility(model, train_split.planted)
        log.info("scoring with the %s head", head)
        start = time.perf_counter()
        row = evaluate_head(model, eval_split.planted, real_eval)
        row["train"] = {
            "seconds": train_seconds,
            "pairs_per_second": trained.pairs_per_second,
            "metrics": trained.train_metrics,
        }
        row["score_seconds"] = time.perf_counter() - start
        results[head] = row
        del model
    rows = credit_table(results)
    setup["train_window"] = visibility
    setup["wall_seconds"] = time.perf_counter() - started
    print_tables(setup, results, rows)
    v = visibility or {"pairs": 0, "whole": 0, "in_part": 0}
    print(
        f"\nTraining window ({args.max_length} tokens): {v['whole']} of {v['pairs']} training "
        f"plants wholly inside, {v['in_part']} in part. Wall time "
        f"{setup['wall_seconds'] / 60:.1f} min.",
        flush=True,
    )
    return {
        "setup": setup,
        "table": rows,
        "results": results,
        "eval_pairs": [p.to_json() for p in eval_split.planted],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config",
        type=Path,
        default=REPO / "recipes" / "default.toml",
        help="the training recipe (LoRA, learning rates, schedule)",
    )
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per head")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    parser.add_argument("--max-length", type=int, default=128, help="training tokens per sequence")
    parser.add_argument(
        "--train-pairs",
        type=int,
        default=None,
        help="planted + real training pairs (default: steps x batch size)",
    )
    parser.add_argument("--eval-pairs", type=int, default=256, help="planted held-out pairs")
    parser.add_argument("--real-pairs", type=int, default=200, help="real held-out HH pairs")
    parser.add_argument(
        "--pairs",
        type=int,
        default=None,
        help="shorthand: the same number for --train/--eval/--real-pairs",
    )
    parser.add_argument(
        "--planted-share",
        type=float,
        default=0.5,
        help="share of planted pairs among the training pairs",
    )
    parser.add_argument(
        "--plant",
        choices=("unrelated", "wrong"),
        default="unrelated",
        help="a sentence of an unrelated conversation, or an obviously false one",
    )
    parser.add_argument("--heads", default="sentence,token,response")
    parser.add_argument(
        "--no-prompt-term",
        action="store_true",
        help="sentence head: attend over the sentences only (ModelConfig.prompt_term = False)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write everything here")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep the trained models here (default: a temporary directory)",
    )
    args = parser.parse_args(argv)
    if args.pairs is not None:
        args.train_pairs = args.eval_pairs = args.real_pairs = args.pairs
    if args.train_pairs is None:
        args.train_pairs = args.steps * args.batch_size
    args.heads = [h.strip() for h in args.heads.split(",") if h.strip()]
    unknown = [h for h in args.heads if h not in HEADS]
    if unknown or not args.heads:
        parser.error(f"--heads: got {unknown or 'none'}; choose from {', '.join(HEADS)}")
    if not 0.0 <= args.planted_share <= 1.0:
        parser.error("--planted-share: use a value between 0 and 1")
    for name in ("steps", "batch_size", "train_pairs", "eval_pairs", "real_pairs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: use at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    received: list[int] = []

    def stop(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt  # train() turns this into a clean stop at the current step

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="srm-credit-") as tmp:
            work_dir = args.work_dir or Path(tmp)
            report = run(args, work_dir, started)
    except (KeyboardInterrupt, Stopped):
        name = signal.Signals(received[-1]).name if received else "SIGINT"
        log.warning(
            "stopped by %s after %.0f s; no results written", name, time.perf_counter() - started
        )
        return 128 + (received[-1] if received else signal.SIGINT)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        log.info("wrote %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
