"""What each sentence reads: the backbone's self-attention, summed into prompt and sentence
blocks (sentence x sentence).

For one response, every layer and head gives a token x token attention matrix (eager
attention, so the weights exist). Blocks partition the tokens: the prompt (with any prefix
token), each sentence, and the boundary markers. The map's cell (sentence i, block b) is the
mean, over sentence i's tokens, of the attention they pay to all tokens of block b; a row sums
to 1 (up to padding), so it says how a sentence's tokens split their attention between the
prompt, earlier sentences, themselves and the markers. On a causal backbone a sentence cannot
attend to later ones.

What it does not mean: attention is not attribution. A block that receives much attention did
not necessarily move the reward (Jain & Wallace 2019, "Attention is not Explanation"); the
reward heatmap (r_j, a_j·r_j) is the model's credit, this map is what its layers looked at.

    >>> maps = pair_attention(model, pair)
    >>> maps["chosen"].matrix(layer=None, head=None)   # all layers, heads averaged
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from srm.collate import MARKER, PROMPT, Encoded, collate, encode_pairs
from srm.data import PreferencePair

#: The key blocks after the sentences: the boundary markers.
MARKERS = "markers"


@dataclass(frozen=True)
class AttentionMap:
    """One response's block attention: ``weights[l, h, i, b]`` is what sentence ``i + 1``'s
    tokens pay block ``blocks[b]`` in layer ``l``, head ``h``."""

    blocks: list[str]
    """Key blocks: ``"prompt"``, ``"1"`` ... ``"K"`` (the sentences), ``"markers"``."""
    weights: torch.Tensor  # (L, H, K, B)

    @property
    def layers(self) -> int:
        return int(self.weights.shape[0])

    @property
    def heads(self) -> int:
        return int(self.weights.shape[1])

    @property
    def sentences(self) -> int:
        return int(self.weights.shape[2])

    def matrix(self, layer: int | None = None, head: int | None = None) -> list[list[float]]:
        """Rows: sentences 1..K; columns: :attr:`blocks`. ``layer``/``head`` pick one (0-based;
        negative counts from the last), ``None`` averages them all."""
        w = self.weights
        for index, size, name in (
            (layer, self.layers, "layer"),
            (head, self.heads, "head"),
        ):
            if index is not None and not -size <= index < size:
                raise ValueError(f"{name}: got {index}; the backbone has {size} (0 to {size - 1})")
        w = w.mean(0) if layer is None else w[layer]
        w = w.mean(0) if head is None else w[head]
        return [[round(float(v), 6) for v in row] for row in w]

    def to_json(self) -> dict[str, Any]:
        """What ``srm score --attention`` writes per response: the blocks, the all-layer
        head-averaged matrix, and one head-averaged matrix per layer."""
        return {
            "blocks": self.blocks,
            "layers": self.layers,
            "heads": self.heads,
            "mean": self.matrix(),
            "by_layer": [self.matrix(layer=layer) for layer in range(self.layers)],
        }


def block_weights(attentions: Sequence[torch.Tensor], encoded: Encoded, row: int) -> AttentionMap:
    """Sum one sequence's token attention (``attentions``: per layer ``(N, H, T, T)``, row
    ``row`` of the batch) into the sentence x block map of :class:`AttentionMap`."""
    token_sentence = torch.tensor(encoded.token_sentence)  # (T,)
    k = encoded.n_sentences
    n = len(encoded)
    # Key blocks: 0 = prompt, 1..K = sentences, K + 1 = markers.
    key_block = torch.where(
        token_sentence == PROMPT,
        torch.zeros_like(token_sentence),
        torch.where(
            token_sentence == MARKER, torch.full_like(token_sentence, k + 1), token_sentence
        ),
    )
    keys = torch.nn.functional.one_hot(key_block.clamp(0, k + 1), k + 2).float()  # (T, B)
    queries = torch.stack([(token_sentence == j).float() for j in range(1, k + 1)])  # (K, T)
    queries = queries / queries.sum(1, keepdim=True).clamp(min=1)  # mean over a sentence's tokens
    stacked = torch.stack([a[row, :, :n, :n].float() for a in attentions])  # (L, H, T, T)
    weights = queries @ stacked @ keys  # (L, H, K, B)
    return AttentionMap(["prompt", *map(str, range(1, k + 1)), MARKERS], weights.cpu())


@torch.no_grad()
def pair_attention(
    model: Any, pair: PreferencePair, *, max_length: int | None = None
) -> dict[str, AttentionMap]:
    """The block attention of both responses of ``pair``, encoded as scoring encodes them
    (same prompt tokens, same sentences, ``max_length`` defaulting to the model's scoring
    length), through the SRM's backbone with its markers in place."""
    if not hasattr(model, "backbone_output"):
        raise ValueError(
            "attention maps read an SRM's backbone with its markers; this model "
            f"({type(model).__name__}) has none"
        )
    encoded = encode_pairs(
        model.tokenizer, model.config, [pair], max_length=max_length or model.score_length
    )
    device = next(model.parameters()).device
    batch = collate(encoded, model.tokenizer.pad_token_id or 0).to(device)
    out = model.backbone_output(batch, output_attentions=True)
    if not out.attentions or out.attentions[0] is None:
        raise ValueError(f"backbone {model.config.backbone!r} returned no attention weights")
    return {
        side: block_weights(out.attentions, encoded[i], i)
        for i, side in enumerate(("chosen", "rejected"))
    }
