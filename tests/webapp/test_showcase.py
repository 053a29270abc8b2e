"""webapp/showcase.py: the Showcase's captions, side names and legend, from hand-made records
whose numbers decide what the words must say."""

from __future__ import annotations

import pytest

from srm.compare import verdict
from srm.records import PairScores, ResponseScores
from webapp import showcase

Sentence = tuple[str, float, float]  # (text, reward, weight)


def side(sentences: list[Sentence], prompt_weight: float, prompt_reward: float = 1.0):
    records, pos = [], 0
    for text, reward, weight in sentences:
        end = pos + len(text)
        records.append({"text": text, "start": pos, "end": end, "reward": reward, "weight": weight})
        pos = end
    score = prompt_reward * prompt_weight + sum(r["reward"] * r["weight"] for r in records)
    return ResponseScores.from_json(
        {
            "score": score,
            "prompt_reward": prompt_reward,
            "prompt_weight": prompt_weight,
            "truncated": False,
            "sentences": records,
        }
    )


def record(
    chosen: list[Sentence], rejected: list[Sentence], prompt=(0.1, 0.1), id: str = "p"
) -> PairScores:
    return PairScores(id=id, chosen=side(chosen, prompt[0]), rejected=side(rejected, prompt[1]))


# The sentences decide: the rejected answer's second sentence takes 0.8 × 0.5 = 0.40 off.
SENTENCES_DECIDE = record(
    [("Paris is the capital. ", 0.3, 0.5), ("It is on the Seine. ", 0.2, 0.4)],
    [("I think it is Lyon. ", -0.1, 0.4), ("Or maybe Rome, who knows. ", -0.8, 0.5)],
)
# The prompt term decides: equal sentences, a large difference in the question's weight.
PROMPT_DECIDES = record([("Yes. ", 0.1, 0.2)], [("Yes. ", 0.1, 0.2)], prompt=(0.8, 0.1))


def test_sides_are_named_by_what_people_preferred() -> None:
    assert showcase.side_names(None) == {
        "chosen": "The answer people preferred",
        "rejected": "The other answer",
    }
    assert showcase.side_names("swap") == {
        "rejected": "The answer people preferred",
        "chosen": "The other answer",
    }
    assert set(showcase.side_names("tie").values()) == {"The first answer", "The second answer"}
    assert showcase.sides_in_order("swap") == ("rejected", "chosen")
    assert showcase.sides_in_order("keep") == ("chosen", "rejected")


def test_a_caption_quotes_the_sentence_that_counts_most() -> None:
    text = showcase.caption(SENTENCES_DECIDE, verdict(SENTENCES_DECIDE, None))
    assert text.startswith("The model agrees with the people: it is ")
    assert "sure the answer people preferred is the better one" in text
    # margin = 0.01 - 0.01 + (0.15 + 0.08) - (-0.04 - 0.40) = 0.67: σ = 66.2%, written as
    # every page writes a P (srm.records.probability_text)
    assert "it is 66.2% sure" in text
    assert "The sentences carry 100% of the difference" in text
    assert "the second sentence of the other answer" in text
    assert "“Or maybe Rome, who knows.”: it counts most" in text
    assert "takes 0.40 off its score" in text
    assert "σ" not in text and "s2" not in text


def test_a_caption_gives_the_sentences_no_credit_when_the_prompt_term_decides() -> None:
    v = verdict(PROMPT_DECIDES, None)
    assert v.split.prompt_dominates
    text = showcase.caption(PROMPT_DECIDES, v)
    assert "the question's own term, not the sentences, carries the verdict (100%" in text
    assert "Notice" not in text and "sentence of" not in text


def test_a_caption_says_when_the_model_disagrees_after_a_swap() -> None:
    text = showcase.caption(SENTENCES_DECIDE, verdict(SENTENCES_DECIDE, "swap"))
    assert text.startswith("The model disagrees with the people: it is 66.2% sure the other answer")
    # After the swap the imported "rejected" side is the one people preferred.
    assert "the second sentence of the answer people preferred" in text


def test_a_close_call_says_so_and_which_sentence_tips_it() -> None:
    close = record([("Fine. ", 0.05, 0.5)], [("Okay. ", 0.0, 0.5)])
    text = showcase.caption(close, verdict(close, None))
    assert "no clear preference" in text and "leans only 50.6% to" in text
    assert "the first sentence of the answer people preferred, “Fine.”: it tips the balance" in text


def test_a_tie_prefers_neither_answer() -> None:
    text = showcase.caption(SENTENCES_DECIDE, verdict(SENTENCES_DECIDE, "tie"))
    assert text.startswith(
        "People preferred neither answer; the model is 66.2% sure the first answer"
    )


def test_the_key_sentence_pushes_the_models_way() -> None:
    key = showcase.key_sentence(SENTENCES_DECIDE, verdict(SENTENCES_DECIDE, None))
    assert (key.side, key.index) == ("rejected", 1)
    assert key.term == pytest.approx(-0.4)
    # A model preferring the other side is credited by the other side's strongest sentence.
    flipped = PairScores(id="p", chosen=SENTENCES_DECIDE.rejected, rejected=SENTENCES_DECIDE.chosen)
    key = showcase.key_sentence(flipped, verdict(flipped, None))
    assert (key.side, key.index) == ("chosen", 1)


def test_long_sentences_are_cut_and_markup_stays_text() -> None:
    bait = '<script>alert(1)</script> <img src=x onerror="alert(1)"> ' + "word " * 30
    rec = record([("Good. ", 0.1, 0.1)], [(bait, -0.9, 0.9)])
    text = showcase.caption(rec, verdict(rec, None))
    assert "…" in text and "word word" in text and len(text) < 400
    shown = showcase.caption_html(rec, verdict(rec, None))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x" in shown
    assert "<script" not in shown and "<img" not in shown


def test_sentence_names_and_legend() -> None:
    assert showcase.sentence_name(0) == "the first sentence"
    assert showcase.sentence_name(9) == "the tenth sentence"
    assert showcase.sentence_name(11) == "sentence 12"
    assert "purple" in showcase.legend("reward") and "orange" in showcase.legend("reward")
    assert "teal" in showcase.legend("weight")
    with pytest.raises(ValueError, match="use reward or weight"):
        showcase.legend("colour")


def test_the_demo_falls_back_on_pairs_that_tell_a_clean_story(filled_store, sample_path) -> None:
    """Without curated pairs: agreement carried by the sentences first (surest first), then
    agreement the prompt term carries, then disagreement, then unscored pairs in import order."""
    import scoring
    import services
    from srm.data import load_pairs
    from srm.store import (
        make_sessionmaker,
        open_store,
        register_model,
        save_scores,
        set_active_model,
    )

    ids = [p.id for p in load_pairs(sample_path)]
    good, weak = [("Right. ", 0.6, 0.5)], [("Hm. ", 0.2, 0.5)]
    bad = [("Wrong. ", -0.6, 0.5)]
    records = [
        record(bad, good, id=ids[0]),  # the model disagrees with the people
        record(weak, weak, prompt=(0.8, 0.1), id=ids[1]),  # the prompt term carries it
        record(good, bad, id=ids[2]),  # the sentences carry it, surely
        record(weak, [("Hm. ", 0.0, 0.5)], id=ids[3]),  # the sentences carry it, less surely
    ]
    with make_sessionmaker(open_store(filled_store)).begin() as s:
        model = register_model(s, "m", "/nowhere", config={"model": {"head": "sentence"}})
        save_scores(s, model.id, "sample", records)
        set_active_model(s, model.id)
    picked = scoring.demo_pairs(filled_store, services.active_model(filled_store), limit=6)
    assert picked == [("sample", i) for i in (ids[2], ids[3], ids[1], ids[0], ids[4], ids[5])]
