"""webapp/highlight.py: reward tints, sentence/token spans and, above all, escaping."""

from __future__ import annotations

from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

import pytest

from srm.records import PairScores, ResponseScores
from webapp import highlight

XSS_SCRIPT = "<script>alert(1)</script> "
XSS_IMG = '<img src=x onerror="window.__xss=1"> '


def make_side(
    sentences: list[tuple[str, float | None, float | None]],
    *,
    gap: str = "",
    prompt: tuple[float, float] = (0.1, 0.2),
    tokens: bool = False,
) -> tuple[str, ResponseScores]:
    """A response text and its scored record: ``(text, reward, weight)`` per sentence, ``gap``
    (not part of any sentence) between sentences; the score obeys the model's invariant."""
    text, records = "", []
    for i, (s, reward, weight) in enumerate(sentences):
        if i:
            text += gap
        records.append(
            {
                "text": s,
                "start": len(text),
                "end": len(text) + len(s),
                "reward": reward,
                "weight": weight,
            }
        )
        text += s
    prompt_reward, prompt_weight = prompt
    score = prompt_reward * prompt_weight + sum(
        r["reward"] * r["weight"] for r in records if r["reward"] is not None
    )
    record: dict[str, Any] = {
        "score": score,
        "prompt_reward": prompt_reward,
        "prompt_weight": prompt_weight,
        "truncated": any(r["reward"] is None for r in records),
        "sentences": records,
    }
    if tokens:  # one "token" per whitespace-separated word, reward alternating in sign
        record["tokens"], pos = [], 0
        for j, word in enumerate(text.split()):
            start = text.index(word, pos)
            pos = start + len(word)
            record["tokens"].append({"start": start, "end": pos, "reward": (-1) ** j * 0.1 * j})
    return text, ResponseScores.from_json(record)


def make_record(
    chosen: list[tuple[str, float | None, float | None]],
    rejected: list[tuple[str, float | None, float | None]],
) -> PairScores:
    """A scored pair record as srm.score.score_pairs returns it (sentence head)."""
    return PairScores(
        id="p1",
        source="hh",
        head="sentence",
        prefix_rewards=False,
        chosen=make_side(chosen)[1],
        rejected=make_side(rejected)[1],
    )


class Parsed(HTMLParser):
    """Every start tag with its (unescaped) attributes, and the text a browser would show."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data

    def spans(self) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.tags if tag == "span"]


# --- colours ----------------------------------------------------------------------------------


def alpha(rgba: str) -> float:
    return float(rgba.rstrip(")").split(",")[-1])


def rgb(rgba: str) -> tuple[int, ...]:
    return tuple(int(c) for c in rgba.removeprefix("rgba(").split(",")[:3])


def test_reward_color_is_transparent_at_zero_and_diverges() -> None:
    assert alpha(highlight.reward_color(0.0, 2.0)) == 0.0
    assert rgb(highlight.reward_color(1.0, 2.0)) == highlight.POSITIVE_RGB
    assert rgb(highlight.reward_color(-1.0, 2.0)) == highlight.NEGATIVE_RGB
    assert alpha(highlight.reward_color(1.0, 2.0)) == pytest.approx(
        highlight.MAX_ALPHA / 2, abs=1e-3
    )
    assert alpha(highlight.reward_color(-2.0, 2.0)) == pytest.approx(highlight.MAX_ALPHA)


def test_reward_color_clamps_beyond_scale() -> None:
    assert highlight.reward_color(2.0, 2.0) == highlight.reward_color(50.0, 2.0)
    assert highlight.reward_color(-2.0, 2.0) == highlight.reward_color(-50.0, 2.0)
    assert highlight.reward_color(float("nan"), 1.0) == highlight.reward_color(0.0, 1.0)


def test_weight_color_is_sequential_and_clamped() -> None:
    assert alpha(highlight.weight_color(0.0, 0.5)) == 0.0
    assert alpha(highlight.weight_color(0.25, 0.5)) == pytest.approx(
        highlight.MAX_ALPHA / 2, abs=1e-3
    )
    assert highlight.weight_color(0.5, 0.5) == highlight.weight_color(3.0, 0.5)
    assert rgb(highlight.weight_color(0.5, 0.5)) == highlight.WEIGHT_RGB
    assert alpha(highlight.weight_color(-1.0, 0.5)) == 0.0


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan")])
def test_colors_reject_a_scale_that_is_not_positive(scale: float) -> None:
    with pytest.raises(ValueError, match="shared_scale"):
        highlight.reward_color(0.5, scale)


def test_shared_scale_spans_both_sides_and_ignores_truncated() -> None:
    pair = make_record([("A. ", 0.5, 0.3), ("B. ", None, None)], [("C. ", -1.5, 0.7)])
    assert highlight.shared_scale(pair, "reward") == highlight.Scale(1.5)  # about 0
    assert highlight.shared_scale(pair, "weight") == highlight.Scale(0.7)


def test_shared_scale_is_never_zero() -> None:
    assert highlight.shared_scale(
        make_record([("A. ", 0.0, 0.0)], [("B. ", None, None)]), "reward"
    ) == highlight.Scale(1.0)
    with pytest.raises(ValueError, match="reward"):
        highlight.shared_scale(make_record([("A. ", 1.0, 1.0)], []), "score")


# --- sentences_html ---------------------------------------------------------------------------


def test_escapes_everything_from_the_response() -> None:
    text, side = make_side(
        [(XSS_SCRIPT, 0.5, 0.4), (XSS_IMG, -0.5, 0.6), ("Fine & <b>. ", 0.1, 0.2)]
    )
    for by in ("reward", "weight"):
        out = highlight.sentences_html(text, side, by=by)
        assert "<script" not in out and "<img" not in out and 'onerror="' not in out
        assert "<b>" not in out
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
        assert "&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;" in out
        parsed = Parsed(out)
        # Only our own markup; the response comes back as text, character for character.
        assert {tag for tag, _ in parsed.tags} == {"div", "span"}
        assert parsed.text == text
        for _, attrs in parsed.tags:
            assert set(attrs) <= {"class", "style", "title", "data-sentence"}


def test_token_titles_hold_escaped_token_text() -> None:
    text, side = make_side([(XSS_SCRIPT, 0.5, 0.4), (XSS_IMG, -0.5, 0.6)], tokens=True)
    out = highlight.tokens_html(text, side)
    assert "<script" not in out and "<img" not in out and 'onerror="' not in out
    parsed = Parsed(out)
    titles = [attrs["title"] for attrs in parsed.spans()]
    # The raw text reached the title attribute as a value, not as markup.
    assert any('onerror="window.__xss=1"' in (t or "") for t in titles)
    assert 'title="token 4 · &#x27;onerror=&quot;window.__xss=1&quot;&gt;&#x27;' in out
    assert parsed.text == text
    assert {tag for tag, _ in parsed.tags} == {"div", "span"}


def test_whitespace_and_gaps_between_sentences_are_kept() -> None:
    text, side = make_side([("First one.  ", 0.5, 0.5), ("Second\tone. ", -0.2, 0.5)], gap="\n\n")
    out = highlight.sentences_html(text, side)
    assert "white-space: pre-wrap" in out
    assert Parsed(out).text == text
    # The gap is plain text between the two spans, its newlines kept as character references
    # so that st.markdown never sees a blank line.
    assert '</span>&#10;&#10;<span class="srm-sentence"' in out
    assert "\n" not in out


def test_sentence_spans_are_numbered_from_one_with_a_tooltip() -> None:
    text, side = make_side([("A. ", 0.123, 0.25), ("B. ", -0.5, 0.5), ("C. ", 0.0, 0.25)])
    spans = Parsed(highlight.sentences_html(text, side)).spans()
    assert [s["data-sentence"] for s in spans] == ["1", "2", "3"]
    assert spans[0]["title"] == "sentence 1 · reward +0.123 · weight 0.25 · contributes +0.0307"
    # Three significant figures, as everywhere: a small reward is not shown as +0.000.
    text, side = make_side([("A. ", 0.000412, 0.004), ("B. ", 0.0, 0.5)])
    spans = Parsed(highlight.sentences_html(text, side)).spans()
    assert spans[0]["title"] == (
        "sentence 1 · reward +0.000412 · weight 0.004 · contributes +1.65e-6"
    )
    assert spans[1]["title"] == "sentence 2 · reward 0 · weight 0.5 · contributes 0"


def test_sentence_tint_follows_the_value_and_scale() -> None:
    text, side = make_side([("A. ", 1.0, 0.1), ("B. ", -0.5, 0.9)])
    spans = Parsed(highlight.sentences_html(text, side)).spans()
    # Default scale is this record's max |reward|: 1.0.
    assert highlight.reward_color(1.0, 1.0) in spans[0]["style"]
    assert highlight.reward_color(-0.5, 1.0) in spans[1]["style"]
    spans = Parsed(highlight.sentences_html(text, side, by="weight", scale=0.9)).spans()
    assert highlight.weight_color(0.1, 0.9) in spans[0]["style"]
    assert highlight.weight_color(0.9, 0.9) in spans[1]["style"]
    with pytest.raises(ValueError, match="by must be"):
        highlight.sentences_html(text, side, by="score")


def test_truncated_sentences_are_grey_and_say_why() -> None:
    text, side = make_side([("Kept. ", 0.5, 1.0), ("Dropped. ", None, None)])
    spans = Parsed(highlight.sentences_html(text, side)).spans()
    assert "srm-truncated" not in spans[0]["class"]
    assert "srm-truncated" in spans[1]["class"]
    assert "dashed" in spans[1]["style"] and "background-color" not in spans[1]["style"]
    assert "truncation" in spans[1]["title"]
    assert spans[1]["data-sentence"] == "2"


def test_selected_sentence_gets_the_outline() -> None:
    text, side = make_side([("A. ", 0.5, 0.5), ("B. ", -0.5, 0.5), ("C. ", None, None)])
    for selected in (2, 3):
        spans = Parsed(highlight.sentences_html(text, side, selected=selected)).spans()
        outlined = [s["data-sentence"] for s in spans if "outline" in s["style"]]
        assert outlined == [str(selected)]
    assert "outline" not in highlight.sentences_html(text, side)


def test_one_response_div_and_a_larger_font_in_demo_mode() -> None:
    text, side = make_side([("A. ", 0.5, 0.5)])
    normal = highlight.sentences_html(text, side)
    large = highlight.sentences_html(text, side, large=True)
    assert normal.startswith('<div class="srm-response"') and normal.endswith("</div>")
    assert [tag for tag, _ in Parsed(normal).tags].count("div") == 1
    assert "font-size: 1rem" in normal and "font-size: 1.35rem" in large


def test_offsets_past_the_text_never_invent_or_repeat_text() -> None:
    text, side = make_side([("A. ", 0.5, 0.5), ("B. ", 0.5, 0.5)])
    first, second = side.sentences
    second = replace(second, start=1, end=99)  # overlaps sentence 1, runs past the text
    side = replace(side, sentences=(first, second))
    assert Parsed(highlight.sentences_html(text, side)).text == text


# --- tokens_html and legend -------------------------------------------------------------------


def test_tokens_html_wraps_each_token() -> None:
    text, side = make_side([("One two. ", 0.5, 0.5), ("Three four. ", 0.5, 0.5)], tokens=True)
    spans = Parsed(highlight.tokens_html(text, side)).spans()
    assert [s["data-token"] for s in spans] == ["1", "2", "3", "4"]
    assert highlight.reward_color(-0.3, 0.3) in spans[3]["style"]  # the largest |reward|


def test_tokens_html_needs_token_rewards() -> None:
    text, side = make_side([("A. ", 0.5, 0.5)])
    with pytest.raises(ValueError, match="token-head"):
        highlight.tokens_html(text, side)


def test_legend_shows_its_ends() -> None:
    reward = highlight.legend_html("reward", 0.75)
    assert "-0.75 " in reward and "+0.75" in reward and "linear-gradient" in reward
    weight = highlight.legend_html("weight", 0.4)
    assert "0.4" in weight and highlight.weight_color(0.4, 0.4) in weight
    assert "-0.00123 " in highlight.legend_html("reward", 0.00123)  # never -0.001


def test_legend_names_the_method_and_a_scale_about_a_mean() -> None:
    caption = "Colour: the model's <b>credit</b>"
    legend = highlight.legend_html("likelihood", highlight.Scale(1.5, mean=-3.0), caption=caption)
    assert "<b>" not in legend and "the model&#x27;s &lt;b&gt;credit&lt;/b&gt;" in legend
    parsed = Parsed(legend)
    assert "likelihood (mean token log-probability): -4.5 " in parsed.text
    assert parsed.text.endswith(
        " -1.5 (log-probabilities are all negative: centred at the mean over the pair's "
        "sentences, -3, no tint)"
    )
    reward = Parsed(highlight.legend_html("reward", highlight.Scale(1.5, mean=-3.0))).text
    assert reward.startswith("sentence reward (mean token log-probability): -4.5 ")
    assert "srm-colour-method" in legend
    assert "srm-colour-method" not in highlight.legend_html("reward", 0.75)  # no caption
    assert "(0: no tint)" in highlight.legend_html("reward", 0.75)


def with_likelihood(side: ResponseScores, values: list[float | None]) -> ResponseScores:
    sentences = tuple(replace(s, likelihood=v) for s, v in zip(side.sentences, values, strict=True))
    return replace(side, sentences=sentences)


def test_likelihood_tints_are_about_the_scales_centre() -> None:
    text, side = make_side([("A. ", 0.5, 0.5), ("B. ", -0.2, 0.3), ("C. ", 0.1, 0.2)])
    side = with_likelihood(side, [-1.0, -3.0, -2.0])
    scale = highlight.Scale(1.0, mean=-2.0)
    spans = Parsed(highlight.sentences_html(text, side, by="likelihood", scale=scale)).spans()
    assert highlight.reward_color(1.0, 1.0) in spans[0]["style"]  # above the mean: purple
    assert highlight.reward_color(-1.0, 1.0) in spans[1]["style"]  # below: orange
    assert alpha(spans[2]["style"].split("background-color: ")[1].split(";")[0]) == 0.0
    # Without a scale, this response's own mean is the centre.
    assert Parsed(highlight.sentences_html(text, side, by="likelihood")).spans() == spans
    # The tooltip gives the likelihood beside the reward it is not.
    assert spans[1]["title"].endswith("· contributes -0.06 · likelihood -3")
    lm = with_likelihood(replace(side, sentences=tuple(
        replace(s, reward=s.likelihood) for s in side.sentences)), [-1.0, -3.0, -2.0])  # fmt: skip
    titles = [s["title"] for s in Parsed(highlight.sentences_html(text, lm)).spans()]
    assert not [t for t in titles if "likelihood" in t]  # the reward is the likelihood


def test_the_prompt_term_chip_has_no_likelihood() -> None:
    _, side = make_side([("A. ", 0.5, 0.5)], prompt=(0.4, 0.5))
    chip = highlight.prompt_term_html(side, by="likelihood", scale=highlight.Scale(1.0, -2.0))
    assert "rgba(94, 60, 153, 0.000)" in chip or "rgba(230, 97, 1, 0.000)" in chip
    assert "beyond" not in chip


def test_token_log_probabilities_are_tinted_about_their_mean() -> None:
    text, side = make_side([("One two. ", -2.0, 1.0)], tokens=True)  # rewards 0, -0.1
    tokens = tuple(replace(t, reward=v) for t, v in zip(side.tokens, [-1.0, -3.0], strict=True))
    spans = Parsed(
        highlight.tokens_html(text, replace(side, tokens=tokens), log_probabilities=True)
    ).spans()
    assert highlight.reward_color(1.0, 1.0) in spans[0]["style"]
    assert highlight.reward_color(-1.0, 1.0) in spans[1]["style"]
    assert spans[1]["title"] == "token 2 · 'two.' · log-probability -3"


def test_plain_html_escapes_and_keeps_whitespace() -> None:
    text = XSS_IMG + "\n\n  indented"
    out = highlight.plain_html(text, large=True)
    assert "<img" not in out and "&lt;img src=x onerror=&quot;" in out
    parsed = Parsed(out)
    assert parsed.text == text and [tag for tag, _ in parsed.tags] == ["div"]
    assert "font-size: 1.35rem" in out


# --- code blocks and tables -------------------------------------------------------------------
CODE = "Try:\n```html\n<script>alert(1)</script>\n\nx = 1 < 2\n```\n"
TABLE = "| Name | Avg |\n|---|---|\n| <b>Jeter</b> | .310 |\n"


def segmented(text: str, reward: float = 0.2) -> tuple[str, ResponseScores]:
    from srm.segment import segment

    return make_side([(s.text, reward, 0.5) for s in segment(text)])


def blocks_in(markup: str) -> list[tuple[str, str | None]]:
    return [(tag, attrs.get("class")) for tag, attrs in Parsed(markup).tags if tag != "span"]


def test_a_code_block_is_shown_as_code_and_escaped() -> None:
    text, side = segmented(CODE + "Done.")
    out = highlight.sentences_html(text, side)
    assert blocks_in(out) == [
        ("div", "srm-response"),
        ("pre", "srm-block srm-code"),
        ("code", None),
    ]
    assert "<script" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "x = 1 &lt; 2" in out
    assert "monospace" in out.split('<pre class="srm-block srm-code" style="')[1].split('"')[0]
    parsed = Parsed(out)
    assert parsed.text == text  # fences and all, character for character
    # The code's two chunks are sentences 2 and 3, inside the block; "Done." is after it.
    code = out.split("<code>")[1].split("</code>")[0]
    assert [a["data-sentence"] for a in Parsed(code).spans()] == ["2", "3"]
    assert 'data-sentence="4">Done.</span></div>' in out


def test_a_table_is_shown_in_a_monospace_block_and_escaped() -> None:
    text, side = segmented("Stats:\n" + TABLE + "Jeter leads.")
    out = highlight.sentences_html(text, side)
    assert ("pre", "srm-block srm-table") in blocks_in(out)
    assert "<b>" not in out and "&lt;b&gt;Jeter&lt;/b&gt;" in out
    table = out.split('<pre class="srm-block srm-table"')[1].split("</pre>")[0]
    assert [a["data-sentence"] for a in Parsed(table + "</pre>").spans()] == ["2"]
    assert Parsed(out).text == text


def test_the_prompt_and_tokens_show_blocks_too() -> None:
    assert ("pre", "srm-block srm-table") in blocks_in(highlight.plain_html(TABLE))
    text, side = make_side([(CODE, 0.5, 0.5)], tokens=True)
    out = highlight.tokens_html(text, side)
    assert ("pre", "srm-block srm-code") in blocks_in(out)
    assert Parsed(out).text == text


def test_a_sentence_across_a_block_edge_is_continued_not_duplicated() -> None:
    """A boundary edited by hand can put prose and code in one sentence: it is closed at the
    block's edge and continued inside, still one [data-sentence] element."""
    text = "Intro line.\n```\ncode\n```\nAfter."
    side = make_side([(text[:-6], 0.3, 0.5), ("After.", -0.3, 0.5)])[1]
    out = highlight.sentences_html(text, side)
    spans = Parsed(out).spans()
    assert [a.get("data-sentence") for a in spans] == ["1", None, "2"]
    assert spans[1]["data-continues"] == "1" and spans[1]["style"] == spans[0]["style"]
    assert Parsed(out).text == text
    assert out.index("<pre") > out.index('data-sentence="1"')


def test_the_demo_question_is_the_last_human_turn_without_its_role_word() -> None:
    from webapp import highlight

    shown = highlight.question_html(
        "\n\nHuman: Hi <b>there</b>\n\nAssistant: Hello\n\nHuman: Why <i>so</i>?\n\nAssistant:"
    )
    assert "Earlier turns (2)</summary>" in shown
    question = shown.split("</details>")[1]
    assert ">Why &lt;i&gt;so&lt;/i&gt;?</div>" in question and "Human" not in question
    assert highlight.question_html("Name three rivers.").endswith(">Name three rivers.</div>")
