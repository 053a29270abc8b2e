"""Inspect names the credit method it shows, and colours log-probabilities about their mean:
one case per kind of model, read in Chromium through the real `make app`.

The models are made here, as a person would make them, on tiny random backbones (no
download): a likelihood-head model on a tiny Llama saved with its LM head (the approach of
tests/srm/conftest.py's ``tiny_llama_dir``), and models trained for 2 steps on sentence labels
(`srm train --steps FILE`): one on the ``tiny`` backbone, one on the Llama with the likelihood
feature, whose sentences then carry a likelihood; and an imported reward model (a tiny
random Llama sequence classifier registered by `srm init --reward-model`, head
``classifier``). `srm score --dataset` registers each one and scores the pairs in the store;
each case makes its model active and opens Inspect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from playwright.sync_api import Page, expect

from srm import store
from srm.cli import main
from srm.data import StepRecord, load_pairs
from tests.e2e.conftest import ARTIFACTS, App, serve
from tests.e2e.test_app import (
    SAMPLE,
    SHOWN_PAIR,
    SWAPPED_PAIR,
    expect_responses,
    open_page,
    sample_pair,
    sessions,
    settled_screenshot,
)

pytestmark = pytest.mark.e2e

DATASET = "credit"
PURPLE, ORANGE = "rgba(94, 60, 153", "rgba(230, 97, 1"  # palette.POSITIVE_RGB, NEGATIVE_RGB
LIKELIHOOD_WORDS = (
    "Colour: the language model's likelihood: mean log-probability of the sentence's tokens "
    "given everything before it (higher = more expected)"
)


# ------------------------------------------------------------------------------- the models
@dataclass(frozen=True)
class Inputs:
    """What the model builders share: the module's directory, a tiny Llama with its LM head,
    and a file of step-labelled responses (TRL stepwise)."""

    workdir: Path
    llama: Path
    steps: Path


def cli(*args: str) -> str:
    """An `srm` command, run in this process (torch is loaded once); its output."""
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def likelihood_model(inputs: Inputs) -> Path:
    """The likelihood head on the Llama: nothing trained, as `srm init --likelihood` makes."""
    from srm.checkpoint import save
    from srm.config import ModelConfig
    from srm.model import SentenceRewardModel

    path = inputs.workdir / "likelihood"
    save(
        SentenceRewardModel.create(ModelConfig(backbone=str(inputs.llama), head="likelihood")), path
    )
    return path


def train_on_sentence_labels(inputs: Inputs, name: str, *flags: str) -> Path:
    """`srm train --steps FILE` for 2 steps with these flags (the backbone among them)."""
    out = inputs.workdir / name
    cli("train", "--steps", str(inputs.steps), "--out", str(out), "--max-steps", "2",
        "--batch-size", "3", "--max-length", "64", "--device", "cpu", *flags)  # fmt: skip
    return out


def imported_reward_model(inputs: Inputs) -> Path:
    """A tiny random Llama sequence classifier (one label) on the Llama's tokenizer, saved
    locally, registered by `srm init --reward-model` as a user's own reward model would be."""
    import torch
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    from tests.tiny_models import tiny_llama_config

    source = inputs.workdir / "tiny-reward-model"
    tokenizer = AutoTokenizer.from_pretrained(inputs.llama)
    tokenizer.save_pretrained(source)
    torch.manual_seed(1)
    config = tiny_llama_config(
        len(tokenizer),
        layers=2,
        positions=1024,
        num_labels=1,
        pad_token_id=tokenizer.eos_token_id,
    )
    LlamaForSequenceClassification(config).save_pretrained(source)
    out = inputs.workdir / "imported"
    cli("init", "--reward-model", str(source), "--out", str(out))
    return out


#: How each case's model is made.
BUILDERS: dict[str, Callable[[Inputs], Path]] = {
    "likelihood": likelihood_model,
    "sentence-labels": lambda i: train_on_sentence_labels(
        i, "sentence-labels", "--backbone", "tiny"
    ),
    "likelihood-feature": lambda i: train_on_sentence_labels(
        i, "likelihood-feature", "--backbone", str(i.llama), "--likelihood-feature", "--d", "16"
    ),
    "classifier": imported_reward_model,
}


def tiny_llama(path: Path) -> Path:
    """A tiny random Llama decoder saved with its (tied) LM head, and a byte-level BPE
    tokenizer trained here on the pairs shown (as tests/srm/conftest.py's tiny_llama_dir)."""
    from tests.tiny_models import bpe_tokenizer, save_tiny_llama

    texts = [f"{p.prompt} {p.chosen} {p.rejected}" for p in load_pairs(SAMPLE)]
    return save_tiny_llama(path, bpe_tokenizer(texts), layers=2, positions=1024)


def step_file(path: Path) -> Path:
    """Six responses of three sentences, the nonsense one labelled bad."""
    records = []
    for i in range(6):
        steps = ("The sky is blue on a clear day.", f"Fact {i} holds.", "Bananas are spaceships.")
        records.append(StepRecord(f"s{i}", f"Tell me fact {i}.", steps, (True, True, False)))
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))
    return path


@dataclass(frozen=True)
class Studio:
    app: App
    model_ids: dict[str, int]


@pytest.fixture(scope="module")
def studio(workdir: Path) -> Iterator[Studio]:
    """A store holding two sample pairs (dataset ``credit``) and every case's model,
    registered and scored by `srm score --dataset`; the app on it."""
    db = workdir / "credit.db"
    url = f"sqlite:///{db}"
    pairs = workdir / "pairs.jsonl"
    wanted = [p for p in load_pairs(SAMPLE) if p.id in (SHOWN_PAIR, SWAPPED_PAIR)]
    pairs.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in wanted))
    cli("import", str(pairs), "--dataset", DATASET, "--db", url)
    inputs = Inputs(workdir, tiny_llama(workdir / "tiny-llama"), step_file(workdir / "steps.jsonl"))
    model_ids = {}
    for name, build in BUILDERS.items():
        path = build(inputs)
        output = cli("score", "--dataset", DATASET, "--model", str(path), "--db", url)
        model_ids[name] = int(re.search(r"with model (\d+)", output).group(1))
    with serve(db, workdir / "make-app-credit.log") as app:
        yield Studio(app, model_ids)


def open_inspect(page: Page, studio: Studio, model: str) -> None:
    """Make ``model`` the active model and open the shown pair on Inspect."""
    with sessions(studio.app).begin() as session:
        store.set_active_model(session, studio.model_ids[model])
    open_page(page, studio.app, f"inspect?dataset={DATASET}&pair={quote(SHOWN_PAIR, safe='')}")
    pair = sample_pair(SHOWN_PAIR)
    expect_responses(page, pair.chosen[:40], pair.rejected[:40])


def heatmap_rows(page: Page) -> list[list[str]]:
    """The row names of each coloured trace of the sentence heatmap (the grey "not scored"
    trace left out), read from plotly's own figure in the page."""
    chart = page.locator(".js-plotly-plot").first
    expect(chart.locator(".heatmaplayer").first).to_be_attached()
    return chart.evaluate(
        "el => el.data.filter(t => t.name !== 'not scored').map(t => Array.from(t.y))"
    )


def tints(page: Page) -> str:
    """The styles of every sentence span of both responses."""
    spans = page.locator(".srm-response span[data-sentence]")
    return " ".join(spans.evaluate_all("els => els.map(e => e.getAttribute('style'))"))


# ------------------------------------------------------------------------------- the cases
@dataclass(frozen=True)
class Case:
    model: str
    caption: str
    """What the legend names with the reward colours."""
    likelihood_mode: bool
    """The sentences carry a likelihood of their own: a colour mode and heatmap rows."""
    centred: bool
    """The reward colours are log-probabilities, centred at the pair's mean."""


#: The imported reward model (`srm init --reward-model`).
CLASSIFIER = pytest.param(
    Case(
        "classifier",
        "Colour: prefix rewards of an imported reward model (what the response earns when cut "
        "after this sentence, minus before)",
        likelihood_mode=False,
        centred=False,
    ),
    id="imported-reward-model",
)
CASES = [
    pytest.param(Case("likelihood", LIKELIHOOD_WORDS, False, True), id="likelihood-head"),
    pytest.param(
        Case(
            "sentence-labels",
            "Colour: each sentence's reward r_j from the sentence head",
            likelihood_mode=False,
            centred=False,
        ),
        id="sentence-labels",
    ),
    pytest.param(
        Case(
            "likelihood-feature",
            "Colour: each sentence's reward r_j from the sentence head",
            likelihood_mode=True,
            centred=False,
        ),
        id="likelihood-feature",
    ),
    CLASSIFIER,
]


@pytest.mark.parametrize("case", CASES)
def test_inspect_names_the_method_and_colours_it(studio: Studio, page: Page, case: Case) -> None:
    open_inspect(page, studio, case.model)
    legend = page.locator(".srm-legend")
    expect(legend.locator(".srm-colour-method")).to_have_text(case.caption)
    modes = page.get_by_role("radiogroup", name="Colour sentences by").get_by_role("radio")
    expect(modes).to_have_text(["reward", "weight", "likelihood"][: 2 + case.likelihood_mode])
    if case.centred:  # all negative: about their mean, so both colours occur
        expect(legend).to_contain_text("centred at the mean over the pair's sentences")
        assert PURPLE in tints(page) and ORANGE in tints(page)
    else:
        expect(legend).to_contain_text("(0: no tint)")
    rows = [["chosen", "rejected"]]
    if case.likelihood_mode:
        rows.append(["chosen · likelihood", "rejected · likelihood"])
    assert heatmap_rows(page) == rows
    settled_screenshot(page, f"inspect-{case.model}")
    if case.model == "likelihood":
        expect(page.get_by_role("heading", name="Token log-probabilities")).to_be_visible()
        # What a person sees first, at a laptop's size: the pair and its colours.
        page.set_viewport_size({"width": 1280, "height": 720})
        page.locator(".srm-legend").scroll_into_view_if_needed()
        expect(page.locator("[data-stale='true']")).to_have_count(0)
        page.screenshot(path=ARTIFACTS / "inspect-likelihood-1280x720.png")
    if case.likelihood_mode:  # coloured by the likelihood: named, centred, shown once
        modes.filter(has_text="likelihood").click()
        expect(legend.locator(".srm-colour-method")).to_have_text(LIKELIHOOD_WORDS)
        expect(legend).to_contain_text("centred at the mean over the pair's sentences")
        expect(page.locator("[data-stale='true']")).to_have_count(0)
        assert heatmap_rows(page) == [["chosen", "rejected"]]
        assert PURPLE in tints(page) and ORANGE in tints(page)
        settled_screenshot(page, f"inspect-{case.model}-by-likelihood")


def test_train_can_also_learn_from_the_sentence_tags(studio: Studio, page: Page) -> None:
    """The box above the training form follows the dataset at once (a form's own widgets
    would wait for its submit), and ticked, shows the sentence-label weight."""
    from srm.segment import segment

    with sessions(studio.app).begin() as session:
        pair = store.get_pair(session, DATASET, SHOWN_PAIR)
        first = segment(pair.chosen)[0]
        store.tag_sentence(session, pair.id, "e2e", "chosen", (first.start, first.end), "good")
    open_page(page, studio.app, "train")
    box = page.get_by_role("checkbox", name="Also learn from the sentence tags (1 tagged response)")
    expect(box).to_be_enabled()
    expect(page.get_by_role("spinbutton", name="Sentence-label weight")).to_have_count(0)
    page.get_by_text("Also learn from the sentence tags").click()  # the input itself is hidden
    expect(box).to_be_checked()
    expect(page.get_by_role("spinbutton", name="Sentence-label weight")).to_have_value("1.00")
    expect(page.get_by_text("Also the sentence tags of 1 response.", exact=False)).to_be_visible()
    settled_screenshot(page, "train-sentence-tags")
