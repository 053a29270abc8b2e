"""What a training run (:mod:`srm.train`) reads: preference pairs and step-labelled responses,
tokenised once and mixed in the same micro-batches (:class:`MicroBatches`), each labelled
response's labels by sentence (:func:`label_row`), and, at the end, how well the sentence
rewards find the bad sentences of held-out labelled responses (:func:`credit_on_steps`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from srm.collate import Batch, Encoded, collate, encode_many, encode_pairs
from srm.config import TrainConfig
from srm.data import PreferencePair, SentenceLabels
from srm.model import SentenceRewardModel
from srm.parallel import GlobalBatches

#: A micro-batch: 2B + S sequences (the B pairs' chosen responses, then their rejected ones,
#: then S labelled responses), the pairs' (B,) margins, the (S, M) labels (-1: none).
MicroBatch = tuple[Batch, torch.Tensor, torch.Tensor]


class MicroBatches:
    """A run's pairs and labelled responses, tokenised once; each epoch reorders indices into
    length-grouped global batches, and the prepared loader gives this process its slice of
    each (see :mod:`srm.parallel`). Indices below ``len(pairs)`` are pairs (two sequences
    each), the rest step-labelled responses (one each)."""

    def __init__(
        self,
        accelerator: Accelerator,
        model: SentenceRewardModel,
        cfg: TrainConfig,
        pairs: Sequence[PreferencePair],
        steps: Sequence[SentenceLabels],
    ) -> None:
        self.accelerator = accelerator
        self.encoded = encode_pairs(model.tokenizer, model.config, pairs) if pairs else []
        self.n = n = len(pairs)
        self.steps_encoded = encode_steps(model, steps)
        self.step_labels = [label_row(s, e) for s, e in zip(steps, self.steps_encoded, strict=True)]
        lengths = [max(len(self.encoded[i]), len(self.encoded[i + n])) for i in range(n)]
        lengths += [len(e) for e in self.steps_encoded]
        self.margins = torch.tensor([p.margin or 0.0 for p in pairs])
        #: Whether the loss reads the margins: asked for, and some pair has one.
        self.has_margin = cfg.use_margin and any(p.margin is not None for p in pairs)
        self.pad_id = model.tokenizer.pad_token_id or 0
        self.sampler = GlobalBatches(
            lengths, cfg.batch_size * accelerator.num_processes, seed=cfg.seed
        )
        # A generator of its own: making an iterator would otherwise draw from torch's global
        # RNG, which resumable checkpoints save.
        self.loader = accelerator.prepare(
            DataLoader(
                range(len(lengths)),
                batch_sampler=self.sampler,
                collate_fn=self.collate,
                generator=torch.Generator(),
            )
        )
        self.per_epoch = len(self.loader)  # global batches: the same on every process

    def collate(self, ids: list[int]) -> MicroBatch:
        n = self.n
        pair_ids = [i for i in ids if i < n]
        step_ids = [i - n for i in ids if i >= n]
        items = [self.encoded[i] for i in pair_ids] + [self.encoded[i + n] for i in pair_ids]
        items += [self.steps_encoded[i] for i in step_ids]
        batch = collate(items, self.pad_id)
        labels = torch.full((len(step_ids), batch.marker_mask.shape[1]), -1.0)  # (S, M)
        for row, i in enumerate(step_ids):
            labels[row, : len(self.step_labels[i])] = self.step_labels[i]
        return batch, self.margins[pair_ids], labels

    def starting_at(self, start: int) -> Iterator[MicroBatch]:
        """This process's micro-batches from micro-batch ``start`` of the run on, epoch after
        epoch (a resumed run skips the ones its epoch had done); on the device already."""
        epoch, position = divmod(start, self.per_epoch)
        while True:
            self.sampler.epoch = epoch
            if position:
                yield from self.accelerator.skip_first_batches(self.loader, position)
            else:
                yield from self.loader
            epoch, position = epoch + 1, 0


def encode_steps(model: SentenceRewardModel, steps: Sequence[SentenceLabels]) -> list[Encoded]:
    """Each labelled response encoded as one sequence with its own sentence boundaries, at
    the training length (a sentence the length leaves out takes no part in the loss)."""
    if not steps:
        return []
    cfg = model.config
    return encode_many(
        model.tokenizer,
        [model.prompt_text(s.prompt) for s in steps],
        [s.response for s in steps],
        max_length=cfg.max_length,
        prompt_fraction=cfg.prompt_fraction,
        max_sentence_chars=cfg.max_sentence_chars,
        spans=[list(s.spans) for s in steps],
    )


def label_row(steps: SentenceLabels, encoded: Encoded) -> torch.Tensor:
    """The labels of one encoded response by marker index (M,): index 0 (the prompt) and
    unlabelled or unscored sentences -1, a good sentence 1, a bad one 0."""
    row = torch.full((encoded.n_sentences + 1,), -1.0)
    for j, label in enumerate(steps.labels[: encoded.n_sentences], start=1):
        if label is not None:
            row[j] = float(label)
    return row


def credit_on_steps(model: SentenceRewardModel, steps: Sequence[SentenceLabels]) -> dict[str, Any]:
    """AUROC and pointing of the model's sentence rewards on held-out labelled responses
    (the report's ``overall`` metrics and counts, :func:`srm.evaluate.credit_report`)."""
    from srm.evaluate import credit_report
    from srm.score import score_responses

    scored = score_responses(
        model,
        [s.prompt for s in steps],
        [s.response for s in steps],
        spans=[list(s.spans) for s in steps],
    )
    report = credit_report(
        [{"labels": list(s.labels), "record": r} for s, r in zip(steps, scored, strict=True)],
        head=model.config.head,
        prefix_rewards=bool(model.causal),
    )
    overall = report["overall"]
    return {
        "responses": overall["responses"],
        "eligible": overall["eligible"],
        "metrics": overall["metrics"],
    }
