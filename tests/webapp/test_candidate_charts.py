"""The Best-of-N heatmap: candidates best first, a cell per sentence, one shared scale."""

from __future__ import annotations

import pytest

from srm.bestofn import Ranking
from srm.records import ResponseScores, SentenceScore
from webapp.charts import candidates_heatmap


def response(score: float, rewards: list[float | None]) -> ResponseScores:
    sentences, start = [], 0
    for j, reward in enumerate(rewards):
        text = f"S{j}. "
        weight = None if reward is None else 0.2
        end = start + len(text)
        sentence = SentenceScore(text=text, start=start, end=end, reward=reward, weight=weight)
        sentences.append(sentence)
        start += len(text)
    return ResponseScores(
        score=score,
        prompt_reward=0.5,
        prompt_weight=0.2,
        truncated=None in rewards,
        n_sentences=len(rewards),
        n_scored=sum(r is not None for r in rewards),
        sentences=tuple(sentences),
    )


def test_rows_are_the_candidates_best_first() -> None:
    ranking = Ranking(
        id="q",
        prompt="p",
        responses=(response(0.1, [1.0]), response(0.9, [-2.0, 0.5, None]), response(0.5, [])),
    )
    fig = candidates_heatmap(ranking)
    heatmap = fig.data[0]
    assert list(heatmap.y) == ["#1 · candidate 2", "#2 · candidate 3", "#3 · candidate 1"]
    assert list(heatmap.x) == ["prompt", "1", "2", "3"]
    assert [list(row) for row in heatmap.z] == [
        [0.5, -2.0, 0.5, None],  # the truncated sentence is an empty cell
        [0.5, None, None, None],
        [0.5, 1.0, None, None],
    ]
    assert heatmap.zmin == -2.0 and heatmap.zmax == 2.0  # the sentences set the scale
    weights = candidates_heatmap(ranking, "weight").data[0]
    assert list(weights.z[0]) == [0.2, 0.2, 0.2, None]
    with pytest.raises(ValueError, match="value must be one of"):
        candidates_heatmap(ranking, "score")
