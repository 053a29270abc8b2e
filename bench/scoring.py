"""Scoring speed on CPU: the SRM vs a response-level head vs prefix re-scoring.

Three ways to get per-sentence rewards for the same 2N responses (the first N held-out pairs),
on the same backbone and ``max_length``:

* **SRM** (``head="sentence"``): one forward pass per response over
  ``prompt <END> s1 <END> ... sK <END>``; the value at every marker comes out of that pass.
* **Response head** (``head="response"``): the same inputs and batches, value at the last
  marker only. What the SRM costs over a standard reward model (goal: ratio <= 1.10).
* **Prefix re-scoring**: a plain reward model (value head at the last token, no markers) run
  once per sentence prefix, ``prompt + s1..sj`` for j = 1..K; per-sentence rewards are the
  differences of consecutive prefix scores. This is how per-sentence reward plots are usually
  made from a response-level model (goal: the SRM is >= 3x faster).

The baseline gets its best batching: all prefixes of all responses are sorted by length and
cut into batches of ``2 * --batch-size`` sequences, the number of sequences the SRM puts in
one forward pass (``--batch-size`` counts *pairs*, as in :func:`srm.score.score_pairs`).
Prefix token ids are cut from the SRM's own encoding (markers removed), so both see the same
sentences (from :func:`srm.segment.segment`), the same tokens and the same truncation.

Two more rows, for reading the result: a plain reward model run once per response without
markers (what the markers cost), and the SRM with its sequences grouped by length on their own
instead of by pair (what the project's batching costs in padding).

"Forward" rows time the model only, over pre-encoded, pre-collated batches. "End-to-end" rows
add the text work: :func:`srm.score.score_pairs` for the two heads (encode, collate, forward,
per-sentence records); segmentation, per-prefix tokenisation, padding, forward and score
differences for prefix re-scoring.

Every timing is the median of ``--repeats`` runs, on CPU, under ``torch.inference_mode()``,
with torch's default thread count, after one warm-up of each method (its widest batch, or the
first ``--batch-size`` pairs end-to-end). Methods are interleaved within each repeat so that a
slow spell of the machine does not land on one method only; ``cpu/wall`` (this process's CPU
time over wall time) shows whether the run had the CPUs to itself.

    .venv/bin/python bench/scoring.py                    # defaults: 64 pairs, 3 repeats
    .venv/bin/python bench/scoring.py --pairs 32 --json bench-scoring.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn

from srm.collate import MARKER, Batch, Encoded, collate, length_grouped_batches, prefix_ids
from srm.config import ModelConfig
from srm.data import PreferencePair, load_pairs
from srm.model import SentenceRewardModel
from srm.score import encode_pairs, score_pairs
from srm.segment import segment

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "data" / "heldout_hh_rlhf.jsonl"
RATIO_GOAL = 1.10  # SRM forward time / response-head forward time, at most
SPEEDUP_GOAL = 3.0  # prefix re-scoring time / SRM time, at least


class LastTokenRewardModel(nn.Module):
    """A plain response-level reward model: the value head reads the last real token.

    No markers: the input is ``[CLS] prompt response`` as the backbone's tokenizer gives it.
    """

    def __init__(self, backbone: nn.Module, hidden_size: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.value_head = nn.Linear(hidden_size, 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        last = attention_mask.sum(-1) - 1  # (N,) right padding: the last real token
        rows = torch.arange(h.shape[0], device=h.device)
        return self.value_head(h[rows, last]).squeeze(-1).float()  # (N,)


@dataclass
class PlainBatch:
    input_ids: torch.Tensor  # (N, T)
    attention_mask: torch.Tensor  # (N, T)


@dataclass
class Method:
    """One timed way of scoring: ``run(False)`` does the whole job once; ``run(True)`` is the
    warm-up, a slice of it (the widest batch, or the first ``--batch-size`` pairs)."""

    name: str
    kind: str  # "forward" or "end-to-end"
    run: Callable[[bool], None]
    sequences: int  # sequences through the backbone per run
    batches: int
    tokens: int  # real (non-padding) tokens per run
    padded_tokens: int  # batch size x width, summed over batches
    times: list[float] = field(default_factory=list)
    cpu_times: list[float] = field(default_factory=list)  # this process, all threads

    @property
    def cpu_per_wall(self) -> float:
        """Busy threads on average: near the thread count when this run had the CPUs."""
        return sum(self.cpu_times) / sum(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def pad(seqs: Sequence[Sequence[int]], pad_id: int) -> PlainBatch:
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        input_ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        attention_mask[i, : len(s)] = 1
    return PlainBatch(input_ids, attention_mask)


def prefixes_of(e: Encoded) -> list[list[int]]:
    """``[CLS] prompt s1..sj`` token ids for j = 1..K, cut from the SRM encoding (no markers)."""
    out = []
    for j in range(1, e.n_sentences + 1):
        end = e.marker_positions[j]  # marker j itself is excluded
        ids = e.input_ids[:end]
        kinds = e.token_sentence[:end]
        out.append([t for t, s in zip(ids, kinds, strict=True) if s != MARKER])
    return out


def fit(
    prefix: list[int],
    prompt: list[int],
    response: list[int],
    *,
    max_length: int,
    prompt_fraction: float,
) -> tuple[list[int], bool]:
    """Truncate like the SRM's encoder (prompt tail, response head); True if the response was
    cut. No markers, so a plain model keeps slightly more text than the SRM in a full window."""
    budget = max_length - len(prefix)
    reserve = int(budget * prompt_fraction)
    response_keep = min(len(response), budget - min(len(prompt), reserve))
    prompt_keep = min(len(prompt), budget - response_keep)
    ids = [*prefix, *prompt[len(prompt) - prompt_keep :], *response[:response_keep]]
    return ids, response_keep < len(response)


def prefix_end_to_end(
    plain: LastTokenRewardModel,
    tokenizer: Any,
    pairs: Sequence[PreferencePair],
    config: ModelConfig,
    batch_size: int,
) -> tuple[list[list[float]], int, int, int, int]:
    """Prefix re-scoring from text: segment, tokenise every prefix, pad, forward, differences.

    Prefixes whose response part no longer fits are identical to the last one that was cut, so
    they are skipped (a sensible implementation would not re-score them). Returns per-response
    sentence rewards and (sequences, batches, real tokens, padded tokens).
    """
    prompts = [p.prompt for p in pairs] * 2
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    owner, texts = [], []
    for i, response in enumerate(responses):
        for span in segment(response, max_chars=config.max_sentence_chars):
            owner.append(i)
            texts.append(response[: span.end])
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    prefix_ids_ = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    start = prefix_ids(tokenizer)
    seqs: list[list[int]] = []
    seq_owner: list[int] = []
    cut_already: set[int] = set()
    for i, ids in zip(owner, prefix_ids_, strict=True):
        if i in cut_already:
            continue
        seq, cut = fit(
            start,
            prompt_ids[i],
            ids,
            max_length=config.max_length,
            prompt_fraction=config.prompt_fraction,
        )
        seqs.append(seq)
        seq_owner.append(i)
        if cut:
            cut_already.add(i)
    pad_id = tokenizer.pad_token_id or 0
    scores = [0.0] * len(seqs)
    tokens = padded = n_batches = 0
    for idx in length_grouped_batches([len(s) for s in seqs], batch_size):
        batch = pad([seqs[k] for k in idx], pad_id)
        values = plain(batch.input_ids, batch.attention_mask).tolist()
        for k, v in zip(idx, values, strict=True):
            scores[k] = v
        tokens += int(batch.attention_mask.sum())
        padded += batch.input_ids.numel()
        n_batches += 1
    per_response: list[list[float]] = [[] for _ in responses]
    for i, v in zip(seq_owner, scores, strict=True):
        per_response[i].append(v)
    rewards = [[b - a for a, b in zip([0.0, *v[:-1]], v, strict=True)] for v in per_response]
    return rewards, len(seqs), n_batches, tokens, padded


def machine_note() -> dict[str, Any]:
    cpu_model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "cpu_busy_before": cpu_busy(),
    }


def cpu_busy(seconds: float = 1.0) -> float | None:
    """Share of all CPUs busy over ``seconds`` (from /proc/stat; None elsewhere).

    Sampled while this script is idle, so it measures other processes: they skew timings.
    """

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:9]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return round(1.0 - (idle1 - idle0) / max(total1 - total0, 1), 3)


def _percent(share: float | None) -> str:
    return "unknown" if share is None else f"{100 * share:.0f}%"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time SRM scoring against a response-level head and prefix re-scoring."
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="pairs file (first N used)")
    parser.add_argument("--pairs", type=int, default=64, help="N: held-out pairs to score")
    parser.add_argument(
        "--batch-size", type=int, default=16, help="pairs per forward pass (2x sequences)"
    )
    parser.add_argument(
        "--prefix-batch-size",
        type=int,
        default=None,
        help="sequences per forward pass for prefix re-scoring (default: 2 x --batch-size)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median counts")
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="OUT", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.batch_size < 1 or args.repeats < 1:
        parser.error("--pairs, --batch-size and --repeats must be at least 1")
    if args.prefix_batch_size is None:
        args.prefix_batch_size = 2 * args.batch_size
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    machine = machine_note()
    print(
        f"machine: torch {machine['torch']}, {machine['torch_threads']} torch threads, "
        f"{machine['cpu_count']} CPUs ({machine['cpu_model']}), python {machine['python']}, "
        f"CPUs busy before the start {_percent(machine['cpu_busy_before'])}",
        flush=True,
    )
    busy = machine["cpu_busy_before"]
    if busy is not None and busy > 0.1:
        print(
            f"warning: other processes keep {_percent(busy)} of the CPUs busy; "
            "they will slow and scatter these timings (see cpu/wall below)",
            flush=True,
        )
    pairs = load_pairs(args.data)[: args.pairs]
    n = len(pairs)
    srm = SentenceRewardModel.create(
        ModelConfig(backbone=args.backbone, head="sentence", max_length=args.max_length),
        seed=args.seed,
    ).eval()
    response = SentenceRewardModel.create(
        ModelConfig(backbone=args.backbone, head="response", max_length=args.max_length),
        seed=args.seed,
    ).eval()
    cfg = srm.config
    tokenizer = srm.tokenizer
    pad_id = tokenizer.pad_token_id or 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        plain = LastTokenRewardModel(response.backbone, response.backbone.config.hidden_size)
    plain.eval()

    # Inputs, built once, outside the timings of the "forward" rows.
    encoded = encode_pairs(srm.tokenizer, srm.config, pairs)
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    for e, text in zip(encoded, responses, strict=True):  # both see the same sentences
        assert e.spans == segment(text, max_chars=cfg.max_sentence_chars)
    lengths = [max(len(encoded[i]), len(encoded[i + n])) for i in range(n)]
    srm_batches: list[Batch] = []
    for idx in length_grouped_batches(lengths, args.batch_size):  # exactly as score_pairs
        items = [encoded[i] for i in idx] + [encoded[i + n] for i in idx]
        srm_batches.append(collate(items, pad_id))
    # Not the project's batching: every sequence on its own, sorted by length (like the
    # prefixes get), to show how much of the SRM's time is padding from batching by pair.
    sorted_batches = [
        collate([encoded[i] for i in idx], pad_id)
        for idx in length_grouped_batches([len(e) for e in encoded], 2 * args.batch_size)
    ]
    prefixes = [p for e in encoded for p in prefixes_of(e)]
    prefix_batches = [
        pad([prefixes[k] for k in idx], pad_id)
        for idx in length_grouped_batches([len(p) for p in prefixes], args.prefix_batch_size)
    ]
    full = [prefixes_of(e)[-1] for e in encoded if e.n_sentences]  # plain RM, whole response
    full_batches = [
        pad([full[k] for k in idx], pad_id)
        for idx in length_grouped_batches([len(p) for p in full], 2 * args.batch_size)
    ]
    n_sentences = sum(e.n_sentences for e in encoded)
    n_segments = sum(len(e.spans) for e in encoded)
    srm_tokens = sum(int(b.attention_mask.sum()) for b in srm_batches)
    srm_padded = sum(b.input_ids.numel() for b in srm_batches)

    # Batches are sorted longest first, so the warm-up sees the widest shapes.
    def run_model(
        model: SentenceRewardModel, batches: list[Batch] = srm_batches
    ) -> Callable[[bool], None]:
        def run(warmup: bool) -> None:
            for batch in batches[:1] if warmup else batches:
                model(batch)

        return run

    def run_plain(batches: list[PlainBatch]) -> Callable[[bool], None]:
        def run(warmup: bool) -> None:
            for batch in batches[:1] if warmup else batches:
                plain(batch.input_ids, batch.attention_mask)

        return run

    def run_score_pairs(model: SentenceRewardModel) -> Callable[[bool], None]:
        def run(warmup: bool) -> None:
            subset = pairs[: args.batch_size] if warmup else pairs
            score_pairs(model, subset, batch_size=args.batch_size, max_length=args.max_length)

        return run

    e2e_stats: dict[str, int] = {}

    def run_prefix_e2e(warmup: bool) -> None:
        subset = pairs[: args.batch_size] if warmup else pairs
        _, seqs, batches, tokens, padded = prefix_end_to_end(
            plain, tokenizer, subset, cfg, args.prefix_batch_size
        )
        e2e_stats.update(sequences=seqs, batches=batches, tokens=tokens, padded=padded)

    def plain_method(name: str, batches: list[PlainBatch]) -> Method:
        return Method(
            name,
            "forward",
            run_plain(batches),
            sequences=sum(len(b.input_ids) for b in batches),
            batches=len(batches),
            tokens=sum(int(b.attention_mask.sum()) for b in batches),
            padded_tokens=sum(b.input_ids.numel() for b in batches),
        )

    srm_shape = {
        "sequences": 2 * n,
        "batches": len(srm_batches),
        "tokens": srm_tokens,
        "padded_tokens": srm_padded,
    }
    methods = [
        Method("SRM (sentence head)", "forward", run_model(srm), **srm_shape),
        Method("response head", "forward", run_model(response), **srm_shape),
        plain_method("prefix re-scoring", prefix_batches),
        plain_method("plain RM, 1 pass, no markers", full_batches),
        Method(
            "SRM, sequences length-grouped",
            "forward",
            run_model(srm, sorted_batches),
            sequences=2 * n,
            batches=len(sorted_batches),
            tokens=sum(int(b.attention_mask.sum()) for b in sorted_batches),
            padded_tokens=sum(b.input_ids.numel() for b in sorted_batches),
        ),
        Method("SRM (sentence head)", "end-to-end", run_score_pairs(srm), **srm_shape),
        Method("response head", "end-to-end", run_score_pairs(response), **srm_shape),
        Method("prefix re-scoring", "end-to-end", run_prefix_e2e, 0, 0, 0, 0),
    ]

    print(
        f"{n} pairs = {2 * n} responses, {n_sentences} sentences scored "
        f"({n_segments} segmented; {sum(e.truncated for e in encoded)} responses truncated "
        f"at max_length={cfg.max_length}), {len(prefixes)} prefixes; "
        f"warm-up + {args.repeats} repeats of {len(methods)} methods...",
        flush=True,
    )
    with torch.inference_mode():
        for m in methods:
            m.run(True)
        for r in range(args.repeats):
            for m in methods:
                c0, t0 = time.process_time(), time.perf_counter()
                m.run(False)
                m.times.append(time.perf_counter() - t0)
                m.cpu_times.append(time.process_time() - c0)
            print(f"  repeat {r + 1}/{args.repeats} done", flush=True)
    machine["cpu_busy_after"] = cpu_busy()
    e2e = methods[-1]
    e2e.sequences, e2e.batches = e2e_stats["sequences"], e2e_stats["batches"]
    e2e.tokens, e2e.padded_tokens = e2e_stats["tokens"], e2e_stats["padded"]

    by_key = {(m.kind, m.name): m for m in methods}

    def ratio(slow: tuple[str, str], fast: tuple[str, str]) -> tuple[float, float]:
        """Time of ``slow`` over time of ``fast``: from the medians, and from the fastest runs."""
        a, b = by_key[slow], by_key[fast]
        return a.median / b.median, min(a.times) / min(b.times)

    srm_fwd, srm_e2e = ("forward", "SRM (sentence head)"), ("end-to-end", "SRM (sentence head)")
    fwd_ratio, fwd_ratio_min = ratio(srm_fwd, ("forward", "response head"))
    fwd_speedup, fwd_speedup_min = ratio(("forward", "prefix re-scoring"), srm_fwd)
    sorted_speedup, sorted_speedup_min = ratio(
        ("forward", "prefix re-scoring"), ("forward", "SRM, sequences length-grouped")
    )
    e2e_ratio, e2e_ratio_min = ratio(srm_e2e, ("end-to-end", "response head"))
    e2e_speedup, e2e_speedup_min = ratio(("end-to-end", "prefix re-scoring"), srm_e2e)

    header = (
        f"| {'method':<29} | {'timing':<10} | {'seqs':>5} | {'batches':>7} | {'tokens':>6} "
        f"| {'padded':>6} | {'median s':>8} | {'runs s':<20} | {'resp/s':>6} | {'seq/s':>6} "
        f"| {'tok/s':>6} | {'cpu/wall':>8} |"
    )
    rule = "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"
    lines = [header, rule]
    for m in methods:
        t = m.median
        runs = ", ".join(f"{x:.2f}" for x in m.times)
        lines.append(
            f"| {m.name:<29} | {m.kind:<10} | {m.sequences:>5} | {m.batches:>7} | {m.tokens:>6} "
            f"| {m.padded_tokens:>6} | {t:>8.2f} | {runs:<20} | {2 * n / t:>6.1f} "
            f"| {m.sequences / t:>6.1f} | {m.tokens / t:>6.0f} | {m.cpu_per_wall:>8.2f} |"
        )
    ok = {True: "met", False: "NOT met"}
    lines += [
        "",
        "ratios of median times (in brackets: of the fastest runs)",
        f"SRM / response head, forward:     {fwd_ratio:.3f} ({fwd_ratio_min:.3f})  "
        f"goal <= {RATIO_GOAL:.2f}: {ok[fwd_ratio <= RATIO_GOAL]}",
        f"prefix re-scoring / SRM, forward: {fwd_speedup:.2f}x ({fwd_speedup_min:.2f}x)  "
        f"goal >= {SPEEDUP_GOAL:.0f}x: {ok[fwd_speedup >= SPEEDUP_GOAL]}",
        f"prefix re-scoring / SRM with sequences length-grouped, forward: "
        f"{sorted_speedup:.2f}x ({sorted_speedup_min:.2f}x)",
        f"SRM / response head, end-to-end:     {e2e_ratio:.3f} ({e2e_ratio_min:.3f})",
        f"prefix re-scoring / SRM, end-to-end: {e2e_speedup:.2f}x ({e2e_speedup_min:.2f}x)",
        "",
        f"{2 * n} responses, {n_sentences} sentences scored, "
        f"{n_sentences + 2 * n} markers in the SRM inputs; resp/s = responses per second, "
        "seq/s = sequences through the backbone per second, tok/s = real tokens per second; "
        f"cpu/wall = this process's CPU time over wall time (at most {torch.get_num_threads()}: "
        "lower means waiting, e.g. for CPUs other processes hold).",
    ]
    lines.append(
        f"CPUs busy with other work (1 s sample): {_percent(machine['cpu_busy_before'])} "
        f"before the run, {_percent(machine['cpu_busy_after'])} after it"
    )
    print("\n" + "\n".join(lines))

    results: dict[str, Any] = {
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "args": vars(args),
        "machine": machine,
        "pairs": n,
        "responses": 2 * n,
        "sentences_scored": n_sentences,
        "sentences_segmented": n_segments,
        "markers": n_sentences + 2 * n,
        "truncated_responses": sum(e.truncated for e in encoded),
        "methods": [
            {
                "name": m.name,
                "timing": m.kind,
                "sequences": m.sequences,
                "batches": m.batches,
                "tokens": m.tokens,
                "padded_tokens": m.padded_tokens,
                "times_s": m.times,
                "median_s": m.median,
                "responses_per_s": 2 * n / m.median,
                "sequences_per_s": m.sequences / m.median,
                "tokens_per_s": m.tokens / m.median,
                "cpu_times_s": m.cpu_times,
                "cpu_per_wall": m.cpu_per_wall,
            }
            for m in methods
        ],
        "ratios": {
            "srm_over_response_forward": fwd_ratio,
            "srm_over_response_forward_goal_max": RATIO_GOAL,
            "prefix_over_srm_forward": fwd_speedup,
            "prefix_over_srm_forward_goal_min": SPEEDUP_GOAL,
            "prefix_over_srm_length_grouped_forward": sorted_speedup,
            "srm_over_response_end_to_end": e2e_ratio,
            "prefix_over_srm_end_to_end": e2e_speedup,
            "from_fastest_runs": {
                "srm_over_response_forward": fwd_ratio_min,
                "prefix_over_srm_forward": fwd_speedup_min,
                "prefix_over_srm_length_grouped_forward": sorted_speedup_min,
                "srm_over_response_end_to_end": e2e_ratio_min,
                "prefix_over_srm_end_to_end": e2e_speedup_min,
            },
        },
    }
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return results


if __name__ == "__main__":
    main()
