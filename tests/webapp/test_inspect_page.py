"""The Inspect page: verdict, coloured sentences, heatmap, sentence picking, boundary edits."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from srm.checkpoint import save
from srm.config import ModelConfig
from srm.data import PreferencePair, load_pairs
from srm.model import SentenceRewardModel
from srm.records import PairScores, sig3
from srm.segment import segment, split_points
from srm.store import Score, get_active_model, make_sessionmaker, open_store, save_scores
from tests.webapp.conftest import fill, rerun


def responses_html(at) -> list[str]:
    """The tinted responses on the page, chosen first (not the prompt-term chips)."""
    return [h.value for h in at.html if h.value.startswith('<div class="srm-response"')]


def open_pair(run_page, dataset: str, pair_id: str):
    at = run_page("inspect")
    at.selectbox(key="inspect.dataset").set_value(dataset)
    at.selectbox(key="inspect.pair_id").set_value(pair_id)
    return rerun(at)


def picker(at, label: str):
    """The selectbox labelled ``label`` (the sentence pickers' keys name the pair)."""
    [box] = [b for b in at.selectbox if b.label == label]
    return box


def outlined(at) -> list[str]:
    """The data-sentence numbers outlined in the "A sentence" view."""
    return re.findall(
        r'srm-selected"[^>]*data-sentence="(\d+)"', " ".join(h.value for h in at.html)
    )


def save_record(db_url: str, pair: PreferencePair, chosen: float, rejected: float) -> None:
    """Store the active model's scores of ``pair``: every sentence of a side with the same
    reward, weights summing to 1, so each side scores ``chosen`` / ``rejected`` exactly."""

    def side(text: str, score: float) -> dict:
        spans = segment(text)
        sentences = [
            {"text": s.text, "start": s.start, "end": s.end, "reward": score,
             "weight": 1 / len(spans)}
            for s in spans
        ]  # fmt: skip
        return {"score": score, "prompt_reward": 0.0, "prompt_weight": 0.0, "truncated": False,
                "sentences": sentences}  # fmt: skip

    record = PairScores.from_json(
        {
            "id": pair.id,
            "chosen": side(pair.chosen, chosen),
            "rejected": side(pair.rejected, rejected),
        }
    )
    with make_sessionmaker(open_store(db_url)).begin() as s:
        save_scores(s, get_active_model(s).id, "sample", [record])


def stored_scores(db_url: str) -> int:
    with make_sessionmaker(open_store(db_url))() as s:
        return s.scalar(select(func.count(Score.id)))


def test_shows_verdict_sentences_and_charts(filled_store: str, sample_path: Path, run_page):
    pair = load_pairs(sample_path)[1]
    at = open_pair(run_page, "sample", pair.id)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Model prefers"] in ("chosen", "rejected")
    assert metrics["Current label"] == "unlabelled"
    assert metrics["P(chosen is better)"].endswith("%")
    # The margin split beside the verdict, adding up to the margin shown.
    margin, prompt, sentences = (
        float(metrics[k]) for k in ("Margin", "Prompt shift", "Sentence shift")
    )
    # Shown to 3 significant figures: each number is within half a unit of its third digit.
    slack = sum(
        0.5 * 10 ** (math.floor(math.log10(abs(x))) - 2) for x in (margin, prompt, sentences) if x
    )
    assert abs(prompt + sentences - margin) <= slack + 1e-12
    bar = at.markdown[0].value  # the one-line verdict above the responses
    assert (
        f"margin {metrics['Margin']} = prompt shift {metrics['Prompt shift']} + sentence shift "
        f"{metrics['Sentence shift']}" in bar
    )
    assert bar.startswith(f"**Model prefers {metrics['Model prefers']}** · P(chosen better) ")
    # Each side says how much of it was scored, and shows its prompt term beside its sentences.
    n = len(segment(pair.chosen))
    assert any(c.value == f"Scored {n} of {n} sentence{'s' * (n != 1)}" for c in at.caption)
    assert sum("srm-prompt-term" in h.value for h in at.html) == 2
    # One coloured span per sentence of each response, then the legend.
    chosen_html = responses_html(at)[0]
    assert chosen_html.count("data-sentence=") == len(segment(pair.chosen))
    assert len(at.get("plotly_chart")) >= 2  # heatmap and contributions
    heatmap = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert heatmap["data"][0]["type"] == "heatmap"
    assert heatmap["data"][0]["y"] == ["chosen", "rejected"]
    assert heatmap["data"][0]["x"][0] == "prompt"  # the prompt term has a column


def test_a_model_without_a_prompt_term_shows_sentences_only(
    filled_store: str, sample_path: Path, run_page, tmp_path, monkeypatch
) -> None:
    model = tmp_path / "sentences-only"
    config = ModelConfig(backbone="tiny", d=16, prompt_term=False)
    save(SentenceRewardModel.create(config, seed=0), model)
    monkeypatch.setenv("SRM_MODEL", str(model))
    pair = load_pairs(sample_path)[1]
    at = open_pair(run_page, "sample", pair.id)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Prompt shift"] == "none"
    assert metrics["Sentence shift"] == metrics["Margin"]
    assert (
        f"margin {metrics['Margin']} = sentence shift {metrics['Margin']} (no prompt term)"
        in at.markdown[0].value
    )
    assert not any("srm-prompt-term" in h.value for h in at.html)
    heatmap = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert heatmap["data"][0]["x"][0] == "1"


def test_scores_are_computed_once_and_kept_in_the_store(filled_store, sample_path, run_page):
    pair = load_pairs(sample_path)[0]
    open_pair(run_page, "sample", pair.id)
    assert stored_scores(filled_store) == 1
    open_pair(run_page, "sample", pair.id)  # read back from the store, not scored again
    assert stored_scores(filled_store) == 1


def test_picking_a_sentence_shows_its_numbers(filled_store, sample_path, run_page):
    pair = next(p for p in load_pairs(sample_path) if len(segment(p.rejected)) >= 2)
    at = open_pair(run_page, "sample", pair.id)
    at.radio(key="inspect.side").set_value("rejected")
    rerun(at)
    picker(at, "Sentence").set_value(1)
    rerun(at)
    labels = [m.label for m in at.metric]
    assert {"Reward", "Weight", "Contribution"} <= set(labels)
    selected = [h.value for h in at.html if 'data-sentence="2"' in h.value and "outline" in h.value]
    assert selected


def test_merging_two_sentences_rescores_at_once(filled_store, sample_path, run_page):
    pair = next(p for p in load_pairs(sample_path) if len(segment(p.chosen)) >= 3)
    at = open_pair(run_page, "sample", pair.id)
    before = responses_html(at)[0].count("data-sentence=")
    at.button(key="inspect.merge").click()
    rerun(at)
    assert responses_html(at)[0].count("data-sentence=") == before - 1
    assert "edited segmentation (not saved)" in at.markdown[0].value
    at.button(key="inspect.reset").click()
    rerun(at)
    assert responses_html(at)[0].count("data-sentence=") == before


def test_markup_in_responses_is_shown_as_text(app_store: str, run_page) -> None:
    evil = '<script>window.__xss=1</script> Hello. <img src=x onerror="window.__xss=1"> Bye.'
    fill(app_store, [PreferencePair("x1", "Say <b>hi</b>.", evil, "Fine. Thanks.")], "xss")
    at = open_pair(run_page, "xss", "x1")
    html = responses_html(at)[0]
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=" in html


def test_featuring_a_pair_for_the_demo(filled_store, sample_path, run_page) -> None:
    pair = load_pairs(sample_path)[5]
    at = open_pair(run_page, "sample", pair.id)
    [toggle] = [t for t in at.toggle if t.label == "Feature this pair in demo mode"]
    assert toggle.value is False
    toggle.set_value(True)
    rerun(at)
    from srm.store import get_setting

    with make_sessionmaker(open_store(filled_store))() as s:
        assert get_setting(s, "demo_pairs") == [["sample", pair.id]]


def test_the_sentence_picked_starts_over_on_another_pair(filled_store, sample_path, run_page):
    first, second = [p for p in load_pairs(sample_path) if len(segment(p.rejected)) >= 3][:2]
    at = open_pair(run_page, "sample", first.id)
    at.radio(key="inspect.side").set_value("rejected")
    rerun(at)
    picker(at, "Sentence").set_value(2)
    rerun(at)
    assert outlined(at) == ["3"]
    at.selectbox(key="inspect.pair_id").set_value(second.id)
    rerun(at)
    assert picker(at, "Sentence").value == 0
    assert outlined(at) == ["1"]
    assert picker(at, "Sentence of the rejected response").value == 0


def test_no_truncation_notice_when_nothing_was_cut(filled_store, sample_path, run_page):
    pair = min(load_pairs(sample_path), key=lambda p: len(p.prompt + p.chosen + p.rejected))
    at = open_pair(run_page, "sample", pair.id)
    n = len(segment(pair.chosen))
    assert any(c.value == f"Scored {n} of {n} sentence{'s' * (n != 1)}" for c in at.caption)
    assert not [c.value for c in at.caption if "greyed" in c.value or "part-way" in c.value]
    assert not [w.value for w in at.warning if "cut responses" in w.value]


def test_the_truncation_notice_counts_the_sentences_cut(
    app_store: str, run_page, tmp_path, monkeypatch
) -> None:
    model = tmp_path / "short-context"
    config = ModelConfig(backbone="tiny", d=16, score_max_length=48)
    save(SentenceRewardModel.create(config, seed=0), model)
    monkeypatch.setenv("SRM_MODEL", str(model))
    long = " ".join(f"Sentence number {i} says a little more." for i in range(1, 13))
    fill(app_store, [PreferencePair("long", "Tell me.", long, "Short answer.")], "cut")
    at = open_pair(run_page, "cut", "long")
    scored = re.search(r"Scored (\d+) of 12 sentences", " ".join(c.value for c in at.caption))
    assert scored, [c.value for c in at.caption]
    greyed = 12 - int(scored.group(1))
    assert greyed > 0
    notes = [c.value for c in at.caption if "greyed" in c.value]
    assert len(notes) == 1  # under the chosen response only: the rejected one fit
    assert notes[0].startswith(f"{greyed} of 12 sentences greyed: ")
    assert responses_html(at)[0].count("srm-truncated") == greyed


def test_a_hair_below_even_reads_below_50_percent(filled_store, sample_path, run_page) -> None:
    """P = 49.98% prefers rejected, so it must not read 50.0%; and an unlabelled pair is
    judged against the imported verdict, never against a "current label"."""
    first, pair = load_pairs(sample_path)[:2]
    open_pair(run_page, "sample", first.id)  # the app registers its model
    save_record(filled_store, pair, chosen=0.1, rejected=0.1008)
    at = open_pair(run_page, "sample", pair.id)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Model prefers"] == "rejected"
    assert metrics["P(chosen is better)"] == "<50.0%"
    shown = [a.value for a in (*at.success, *at.warning, *at.info)]
    assert not [t for t in shown if "current label" in t]
    # Inside the no-clear-preference band it neither agrees nor disagrees (no warning).
    assert not at.warning and not at.success
    assert at.info[0].value == (
        "Nobody has labelled this pair yet; the model has no clear preference "
        "(P(chosen better) = <50.0%): it neither backs nor questions the imported verdict "
        "(chosen is better)."
    )
    save_record(filled_store, pair, chosen=0.9, rejected=0.1)
    at = open_pair(run_page, "sample", pair.id)
    assert at.success[0].value == (
        "Nobody has labelled this pair yet; the model agrees with the imported verdict "
        "(chosen is better)."
    )


def test_split_a_sentence_at_a_word_chosen_in_the_text(filled_store, sample_path, run_page):
    pair = next(p for p in load_pairs(sample_path) if len(segment(p.chosen)[0].text.split()) >= 4)
    first = segment(pair.chosen)[0].text
    at = open_pair(run_page, "sample", pair.id)
    before = responses_html(at)[0].count("data-sentence=")
    split = picker(at, "Split before")
    # The choices are the sentence's word starts, each shown as the words either side.
    words = first.split()
    assert split.options[0] == f"{words[0]} | {' '.join(words[1:5])}" + " …" * (len(words) > 5)
    offset = split_points(first)[1]  # before the third word
    split.set_value(offset)
    rerun(at)
    at.button(key="inspect.split").click()
    rerun(at)
    spans = re.findall(r'data-sentence="(\d+)">([^<]*)<', responses_html(at)[0])
    assert len(spans) == before + 1
    assert html.unescape(spans[0][1]).replace("&#10;", "\n") == first[:offset]


def test_a_sentence_picked_past_the_end_after_a_reset_falls_back_to_the_first(
    filled_store, sample_path, run_page
):
    """Split the last sentence, pick the new last one, reset the boundaries: that sentence is
    gone, and the picker goes back to sentence 1 rather than failing."""
    pair = next(p for p in load_pairs(sample_path) if len(segment(p.chosen)[-1].text.split()) >= 3)
    n = len(segment(pair.chosen))
    at = open_pair(run_page, "sample", pair.id)
    edit = picker(at, "Sentence of the chosen response")
    edit.set_value(n - 1)
    rerun(at)
    at.button(key="inspect.split").click()  # at its first word boundary
    rerun(at)
    picker(at, "Sentence of the chosen response").set_value(n)  # the new last sentence
    rerun(at)
    assert picker(at, "Sentence of the chosen response").value == n
    at.button(key="inspect.reset").click()
    rerun(at)
    assert picker(at, "Sentence of the chosen response").value == 0
    assert len(picker(at, "Sentence of the chosen response").options) == n


# --- credit methods: the likelihood head, and sentences that carry a likelihood ----------------
def likelihood_record(pair: PreferencePair, head: str | None, reward_is_likelihood: bool) -> dict:
    """A stored record of ``pair`` whose sentences carry a likelihood (negative, about -2):
    a likelihood-head model's (reward = likelihood, weight = share of the sentences, no prompt
    term, per-token log-probabilities) or a sentence-head model's with the likelihood feature."""

    def side(text: str, offset: float) -> dict:
        spans = segment(text)
        sentences = []
        for j, s in enumerate(spans):
            likelihood = -2.0 - offset - 0.5 * j
            reward = likelihood if reward_is_likelihood else 0.1 * (-1) ** j
            sentences.append(
                {"text": s.text, "start": s.start, "end": s.end, "reward": reward,
                 "weight": 1 / len(spans), "likelihood": likelihood}
            )  # fmt: skip
        prompt = (0.0, 0.0) if reward_is_likelihood else (0.3, 0.2)  # (r_0, a_0)
        record = {
            "score": prompt[0] * prompt[1] + sum(s["reward"] * s["weight"] for s in sentences),
            "prompt_reward": prompt[0],
            "prompt_weight": prompt[1],
            "truncated": False,
            "sentences": sentences,
        }
        if reward_is_likelihood:  # one "token" per sentence
            record["tokens"] = [
                {"start": s.start, "end": s.end, "reward": -2.0 - 0.1 * j}
                for j, s in enumerate(spans)
            ]
        return record

    return {"id": pair.id, "head": head, "chosen": side(pair.chosen, 0.0),
            "rejected": side(pair.rejected, 1.0)}  # fmt: skip


def use_model(db_url: str, path: Path, head: str, records: list[dict]) -> None:
    """Register ``path`` as the active model with ``head`` and store its scores of the
    records' pairs (the page reads them back and never loads the model)."""
    from srm.store import register_model, set_active_model

    with make_sessionmaker(open_store(db_url)).begin() as s:
        model = register_model(
            s, path.name, str(path), config={"model": {"head": head, "backbone": "tiny-llama"}}
        )
        set_active_model(s, model.id)
        save_scores(s, model.id, "sample", [PairScores.from_json(r) for r in records])


def legend(at) -> str:
    [found] = [h.value for h in at.html if h.value.startswith('<div class="srm-legend"')]
    return found


def test_a_likelihood_model_names_its_method_and_centres_its_colours(
    filled_store, sample_path, run_page, tmp_path
):
    pair = next(p for p in load_pairs(sample_path) if len(segment(p.chosen)) >= 2)
    use_model(filled_store, tmp_path / "lm", "likelihood", [likelihood_record(pair, None, True)])
    at = open_pair(run_page, "sample", pair.id)
    # The method, in words, with the legend; its reward is the likelihood: not offered twice.
    assert (
        "Colour: the language model&#x27;s likelihood: mean log-probability of the sentence&#x27;s "
        "tokens given everything before it (higher = more expected)" in legend(at)
    )
    assert at.segmented_control(key="inspect.by").options == ["reward", "weight"]
    # Log-probabilities are all negative: the scale is centred at the pair's mean, and says so.
    record = PairScores.from_json(likelihood_record(pair, "likelihood", True))
    values = [s.reward for side in (record.chosen, record.rejected) for s in side.sentences]
    mean = sum(values) / len(values)
    assert f"centred at the mean over the pair&#x27;s sentences, {sig3(mean)}" in legend(at)
    heatmap = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["y"] for t in heatmap["data"]] == [["chosen", "rejected"]]  # no second block
    assert heatmap["data"][0]["zmid"] == pytest.approx(mean)
    assert "centred at the pair's mean" in heatmap["layout"]["title"]["text"]
    # Both colours occur: a sentence above the mean is purple, one below orange.
    styles = " ".join(responses_html(at))
    assert "rgba(94, 60, 153" in styles and "rgba(230, 97, 1" in styles
    assert [s.value for s in at.subheader if s.value.startswith("Token")] == [
        "Token log-probabilities"
    ]


def test_sentences_with_a_likelihood_offer_it_as_a_colour_and_a_heatmap_row(
    filled_store, sample_path, run_page, tiny_model
):
    pair, other = [p for p in load_pairs(sample_path) if len(segment(p.chosen)) >= 2][:2]
    record = likelihood_record(pair, None, False)
    use_model(filled_store, tiny_model, "sentence", [record])
    at = open_pair(run_page, "sample", pair.id)
    control = at.segmented_control(key="inspect.by")
    assert control.options == ["reward", "weight", "likelihood"]
    assert "Colour: each sentence&#x27;s reward r_j from the sentence head" in legend(at)
    heatmap = json.loads(at.get("plotly_chart")[0].proto.spec)
    rows = [t["y"] for t in heatmap["data"]]
    assert rows == [["chosen", "rejected"], ["chosen · likelihood", "rejected · likelihood"]]
    likelihood = heatmap["data"][1]
    assert likelihood["z"][0][0] is None  # the prompt has no likelihood
    assert likelihood["text"][0][1] == sig3(record["chosen"]["sentences"][0]["likelihood"])
    assert heatmap["data"][0]["zmid"] == 0  # rewards stay about 0
    assert likelihood["zmid"] < 0  # log-probabilities about their mean
    # Coloured by likelihood: the method says so, and the picked sentence shows its number.
    control.set_value("likelihood")
    rerun(at)
    assert "Colour: the language model&#x27;s likelihood" in legend(at)
    assert "likelihood (mean token log-probability)" in legend(at)
    assert [t["y"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]] == [
        ["chosen", "rejected"]
    ]  # the likelihood is the colour now: not a second time
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Likelihood"] == sig3(record["chosen"]["sentences"][0]["likelihood"])
    # A pair whose sentences carry none (not scored yet: the model scores it without the
    # feature) falls back to the reward colours.
    at.selectbox(key="inspect.pair_id").set_value(other.id)
    rerun(at)
    assert at.segmented_control(key="inspect.by").options == ["reward", "weight"]
    assert at.segmented_control(key="inspect.by").value == "reward"
