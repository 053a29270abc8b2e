"""webapp/showcase.py: the Showcase's captions, side names and legend, from hand-made records
whose numbers decide what the words must say."""

from __future__ import annotations

import pytest

from srm.compare import verdict
from srm.records import PairScores, ResponseScores
from srm.store import make_sessionmaker, open_store, set_setting
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
    assert "the question itself, not the sentences, carries the verdict (100%" in text
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


def stored_model(db_url: str, records: list[PairScores], path: str = "/nowhere") -> None:
    from srm.store import (
        make_sessionmaker,
        open_store,
        register_model,
        save_scores,
        set_active_model,
    )

    with make_sessionmaker(open_store(db_url)).begin() as s:
        model = register_model(s, "m", path, config={"model": {"head": "sentence"}})
        save_scores(s, model.id, "sample", records)
        set_active_model(s, model.id)


GOOD, WEAK, BAD = [("Right. ", 0.6, 0.5)], [("Hm. ", 0.2, 0.5)], [("Wrong. ", -0.6, 0.5)]


def test_the_demo_picks_clear_verdicts_the_sentences_carry(filled_store, sample_path) -> None:
    """Without featured pairs: only clear verdicts (P outside 50% ± 5%) the sentences carry,
    agreement with the people first, then the surest; never a red-team pair."""
    from srm.data import load_pairs
    from webapp import scoring, services

    pairs = load_pairs(sample_path)
    safe = [p.id for p in pairs if not p.source.endswith("harmless-base")]
    red_team = next(p.id for p in pairs if p.source == "hh-rlhf/harmless-base")
    records = [
        record(BAD, GOOD, id=safe[0]),  # clear (margin -0.6), the model disagrees
        record(WEAK, WEAK, prompt=(0.8, 0.1), id=safe[1]),  # the prompt shift carries it
        record(GOOD, BAD, id=safe[2]),  # clear (+0.6), agrees
        record(WEAK, [("Hm. ", 0.0, 0.5)], id=safe[3]),  # margin 0.1: no clear preference
        record(GOOD, [("Hm. ", 0.0, 0.5)], id=safe[4]),  # clear (+0.3), agrees, less surely
        record(GOOD, BAD, id=red_team),  # as clear as can be, but from a red-team source
    ]
    stored_model(filled_store, records)
    model = services.active_model(filled_store)
    assert scoring.demo_pairs(filled_store, model, limit=3) == [
        ("sample", i) for i in (safe[2], safe[4], safe[0])
    ]
    # Featured pairs come first, whatever they are; the automatic ones fill up the rest.
    with make_sessionmaker(open_store(filled_store)).begin() as s:
        set_setting(s, scoring.DEMO_PAIRS, [["sample", safe[3]]])
    assert scoring.demo_pairs(filled_store, model, limit=3) == [
        ("sample", i) for i in (safe[3], safe[2], safe[4])
    ]


def test_an_admin_can_switch_the_content_filter_off(filled_store, sample_path) -> None:
    from srm.data import load_pairs
    from webapp import scoring, services

    red_team = [p.id for p in load_pairs(sample_path) if p.source == "hh-rlhf/harmless-base"]
    stored_model(filled_store, [record(GOOD, BAD, id=i) for i in red_team[:2]])
    model = services.active_model(filled_store)
    assert scoring.demo_filter_on(filled_store)  # on by default
    with make_sessionmaker(open_store(filled_store)).begin() as s:
        set_setting(s, scoring.DEMO_FILTER, False)
    assert not scoring.demo_filter_on(filled_store)
    assert scoring.demo_pairs(filled_store, model, limit=2) == [("sample", i) for i in red_team[:2]]


def test_the_question_part_and_model_name_in_plain_words() -> None:
    chosen = SENTENCES_DECIDE.chosen  # prompt weight 0.1, reward 1.0
    assert showcase.question_part(chosen) == "The question itself adds 0.10 to this answer's score."
    minus = side([("Yes. ", 0.1, 0.2)], 0.61, prompt_reward=-1.0)
    assert (
        showcase.question_part(minus) == "The question itself takes 0.61 off this answer's score."
    )
    assert showcase.public_name("/srv/runs/m1/model") == "model"
    assert showcase.public_name("~/models/tiny") == "tiny"
    assert showcase.public_name("sentence-transformers/all-MiniLM-L6-v2") == (
        "sentence-transformers/all-MiniLM-L6-v2"
    )
