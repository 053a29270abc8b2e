"""The reward server: OpenRLHF's /get_reward shape, the dense rewards, bad and oversized
requests, the token, batching, and ``srm serve`` as a process on a loopback port."""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import torch
from click.testing import CliRunner
from fastapi.testclient import TestClient

from srm.backbones import load_tokenizer
from srm.cli import main
from srm.config import ConfigError, ModelConfig, ServeConfig
from srm.dense import policy_token_rewards, policy_tokens, token_offsets
from srm.model import SentenceRewardModel
from srm.score import score_responses
from srm.serve import create_app
from tests.waiting import wait_until_answering

TEXTS = [
    ("What is the capital of France?", "Paris is the capital. It is in the north."),
    ("Tell me a joke.", "Why did the chicken cross the road? To get to the other side!"),
    ("Say hi.", "Hi."),
    ("Explain rain briefly.", "Water evaporates. It cools into clouds.\n\nThen it falls as rain."),
]
PROMPTS = [p for p, _ in TEXTS]
RESPONSES = [r for _, r in TEXTS]


@pytest.fixture(scope="module")
def model() -> SentenceRewardModel:
    torch.manual_seed(0)
    return SentenceRewardModel.create(ModelConfig(backbone="tiny", d=16), seed=0).eval()


@pytest.fixture
def make_client(model) -> Iterator[Callable[..., TestClient]]:
    """``make_client(token=None, **ServeConfig fields)``: a started app (its batcher runs)."""
    clients: list[TestClient] = []

    def make(token: str | None = None, **config) -> TestClient:
        client = TestClient(create_app(model, ServeConfig(**config), token=token, name="tiny"))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def openrlhf_request(prompts=PROMPTS, responses=RESPONSES, **extra) -> dict:
    """What OpenRLHF posts: the decoded prompt + response, the prompts, the labels."""
    return {
        "query": [p + r for p, r in zip(prompts, responses, strict=True)],
        "prompts": list(prompts),
        "labels": [None] * len(prompts),
        **extra,
    }


def test_get_reward_answers_in_openrlhf_shape(client, model) -> None:
    answer = client.post("/get_reward", json=openrlhf_request())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {
        "rewards",
        "scores",
        "extra_logs",
        "sentence_rewards",
        "sentence_spans",
        "prompt_match",
    }
    assert body["prompt_match"] == ["prompt"] * len(TEXTS)
    # OpenRLHF reads body["rewards"] into torch.tensor and logs scores and extra_logs per item.
    assert isinstance(body["rewards"], list) and isinstance(body["scores"], list)
    assert all(type(x) is float for x in body["rewards"] + body["scores"])
    assert torch.tensor(body["rewards"]).shape == (len(TEXTS),)
    assert body["scores"] == body["rewards"]
    assert isinstance(body["extra_logs"], dict)
    for name, values in body["extra_logs"].items():
        assert isinstance(name, str) and len(values) == len(TEXTS)
        assert all(type(x) is float for x in values)
    expected = score_responses(model, PROMPTS, RESPONSES)
    assert body["rewards"] == pytest.approx([r.score for r in expected], abs=1e-5)
    assert body["extra_logs"]["prompt_term"] == pytest.approx(
        [r.prompt_term for r in expected], abs=1e-5
    )


def test_sentence_rewards_are_the_dense_terms_placed_in_the_query(client, model) -> None:
    request = openrlhf_request()
    body = client.post("/get_reward", json=request).json()
    expected = score_responses(model, PROMPTS, RESPONSES)
    for i, record in enumerate(expected):
        query, prompt = request["query"][i], request["prompts"][i]
        terms = [s.weight * s.reward for s in record.sentences if s.scored]
        assert body["sentence_rewards"][i] == pytest.approx(terms, abs=1e-5)
        assert math.fsum(body["sentence_rewards"][i]) == pytest.approx(
            body["rewards"][i] - body["extra_logs"]["prompt_term"][i], abs=1e-5
        )
        spans = body["sentence_spans"][i]
        assert [query[a:b] for a, b in spans] == [s.text for s in record.sentences]
        assert spans[0][0] == len(prompt)


def test_token_rewards_for_the_policys_tokenizer(make_client, model, tiny_gpt2_dir) -> None:
    """With --dense-tokenizer: one reward per policy token of each query, a_j r_j on the token
    holding sentence j's last character (the response after the prompt), zero elsewhere."""
    client = make_client(dense_tokenizer=str(tiny_gpt2_dir))
    request = openrlhf_request()
    body = client.post("/get_reward", json=request).json()
    policy = load_tokenizer(tiny_gpt2_dir)
    records = score_responses(model, PROMPTS, RESPONSES)
    for i, record in enumerate(records):
        query = request["query"][i]
        offsets = token_offsets(policy, query)
        got = body["token_rewards"][i]
        assert len(got) == len(offsets)
        expected = [0.0] * len(offsets)
        for (start, end), term in zip(
            body["sentence_spans"][i], body["sentence_rewards"][i], strict=True
        ):
            last = start + len(query[start:end].rstrip()) - 1
            (t,) = [k for k, (a, b) in enumerate(offsets) if a <= last < b]
            expected[t] += term
        assert got == pytest.approx(expected, abs=1e-9)
        assert sum(got) == pytest.approx(record.score - record.prompt_term, abs=1e-5)
    plain = make_client().post("/get_reward", json=request).json()
    assert "token_rewards" not in plain  # only when asked for: OpenRLHF's keys otherwise


def test_token_rewards_on_the_policys_own_ids(make_client, model, tiny_gpt2_dir) -> None:
    """With response_ids (the policy's sampled ids, here tokenised piece by piece, EOS last):
    the response is read off the ids, token_rewards has one reward per id, placed by bytes as
    srm.dense does, and the EOS id gets nothing; response_offsets give the same."""
    client = make_client(dense_tokenizer=str(tiny_gpt2_dir))
    policy = load_tokenizer(tiny_gpt2_dir)
    pieces = [["Paris is the capital.", "\n", "\n", "北京 🙂"], ["Hi", "."]]
    ids = [
        [i for piece in parts for i in policy(piece, add_special_tokens=False)["input_ids"]]
        + [policy.eos_token_id]
        for parts in pieces
    ]
    responses = ["".join(parts) for parts in pieces]
    request = openrlhf_request(PROMPTS[:2], responses, response_ids=ids)
    body = client.post("/get_reward", json=request).json()
    assert body["token_positions"] == ["response_ids", "response_ids"]
    records = score_responses(model, PROMPTS[:2], responses)
    for i, record in enumerate(records):
        tokens = policy_tokens(policy, ids[i])
        assert body["token_rewards"][i] == pytest.approx(
            policy_token_rewards(record, tokens), abs=1e-5
        )
        assert len(body["token_rewards"][i]) == len(ids[i]) and body["token_rewards"][i][-1] == 0
        assert body["rewards"][i] == pytest.approx(record.score, abs=1e-5)
    offsets = [list(policy_tokens(policy, row).byte_spans) for row in ids]
    by_offsets = client.post(
        "/get_reward", json=openrlhf_request(PROMPTS[:2], responses, response_offsets=offsets)
    ).json()
    assert by_offsets["token_positions"] == ["response_offsets"] * 2
    for got, want in zip(by_offsets["token_rewards"], body["token_rewards"], strict=True):
        assert got == pytest.approx(want, abs=1e-5)
    # ids need the policy's tokenizer to read them
    refused = make_client().post("/get_reward", json=request)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "response_ids"]


def test_end_of_sequence_text_is_stripped_and_extra_keys_are_ignored(make_client) -> None:
    client = make_client(strip=["</s>", "<pad>"])
    plain = client.post("/get_reward", json=openrlhf_request()).json()
    request = openrlhf_request(responses=[r + "</s><pad><pad>" for r in RESPONSES])
    del request["labels"]
    request["metadata"] = {"anything": 1}  # OpenRLHF forks send more keys
    request["query"][0] = "<s>" + request["query"][0]  # a BOS text before the prompt
    answer = client.post("/get_reward", json=request)
    assert answer.status_code == 200, answer.text
    assert answer.json()["rewards"] == pytest.approx(plain["rewards"], abs=1e-5)
    assert answer.json()["sentence_spans"][0][0][0] == len("<s>" + PROMPTS[0])


def openrlhf_rewards(client: TestClient, queries, prompts, labels=None) -> torch.Tensor:
    """OpenRLHF's remote reward client, reproduced (OpenRLHF itself needs GPU packages): the
    JSON body posted with no headers of its own, up to 5 tries, rewards read into a tensor;
    a failure is an exception, as OpenRLHF then fails in torch.cat."""
    body = {"query": list(queries), "prompts": list(prompts), "labels": labels or []}
    for _ in range(5):
        answer = client.post("/get_reward", json=body)
        if answer.status_code == 200:
            return torch.tensor(answer.json()["rewards"])
    raise RuntimeError(f"no reward: {answer.status_code} {answer.text}")


CHAT = [
    (
        "chatml",
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n"
        "<|im_start|>assistant\n",
        "<|im_end|>",
    ),
    (
        "llama3",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{q}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|eot_id|>",
    ),
    ("mistral", "<s>[INST] {q} [/INST]", "</s>"),
]


@pytest.mark.parametrize(("name", "template", "eos"), CHAT, ids=[c[0] for c in CHAT])
def test_openrlhf_gets_a_reward_for_templated_and_cut_prompts(
    client, model, tiny_gpt2_dir, name, template, eos
) -> None:
    """Templated prompts are scored as the training transcript (not markup), the EOS text
    never enters a sentence, and a prompt OpenRLHF cut (its tokens, from either end; the full
    prompt posted) still gets a reward: no 422, and the answer says how the response was
    found."""
    from srm.chat_markup import untemplate
    from srm.data.pairs import transcript

    prompts = [template.format(q=q) for q in PROMPTS]
    queries = [p + r + eos for p, r in zip(prompts, RESPONSES, strict=True)]
    got = openrlhf_rewards(client, queries, prompts)
    rendered = [transcript(untemplate(p)) for p in prompts]
    assert (
        rendered[0].startswith("\n\n") and "<|" not in rendered[0] and "[INST]" not in rendered[0]
    )
    expected = score_responses(model, rendered, RESPONSES)
    torch.testing.assert_close(got, torch.tensor([r.score for r in expected]), atol=1e-5, rtol=0)
    body = client.post("/get_reward", json={"query": queries, "prompts": prompts}).json()
    for query, spans in zip(queries, body["sentence_spans"], strict=True):
        assert all(eos not in query[a:b] for a, b in spans)
    policy = load_tokenizer(tiny_gpt2_dir)
    cut_left, cut_right = [], []
    for prompt, response in zip(prompts, RESPONSES, strict=True):
        ids = policy(prompt, add_special_tokens=False)["input_ids"]
        cut_left.append(policy.decode(ids[len(ids) // 2 :]) + response + eos)
        cut_right.append(policy.decode(ids[: len(ids) // 2]) + response + eos)
    for cut in (cut_left, cut_right):
        rewards = openrlhf_rewards(client, cut, prompts)
        assert rewards.shape == (len(PROMPTS),) and torch.isfinite(rewards).all()
    matched = client.post("/get_reward", json={"query": cut_right, "prompts": prompts}).json()
    assert set(matched["prompt_match"]) <= {"prompt_prefix", "template_header"}
    for query, spans in zip(cut_right, matched["sentence_spans"], strict=True):
        assert query[spans[0][0] :].startswith(RESPONSES[cut_right.index(query)][:5])


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ('{"query": ["a"', ["body", 14], "JSON decode error"),
        ({"query": "Hi", "prompts": ["Hi"]}, ["body", "query"], "valid list"),
        ({"query": ["Hi"]}, ["body", "prompts"], "Field required"),
        ({"query": ["Hi there"], "prompts": ["Hi", "Ho"]}, ["body", "prompts"], "2 prompts for 1"),
        ({"query": [3], "prompts": ["x"]}, ["body", "query", 0], "valid string"),
        ({"query": ["Hi\ud800"], "prompts": ["Hi"]}, ["body", "query", 0], "lone surrogate"),
    ],
)
def test_malformed_requests_get_a_422_naming_the_field(client, body, loc, message) -> None:
    if isinstance(body, str):
        answer = client.post(
            "/get_reward", content=body, headers={"content-type": "application/json"}
        )
    else:
        text = json.dumps(body)  # ensure_ascii: a lone surrogate travels as \ud800
        answer = client.post(
            "/get_reward", content=text, headers={"content-type": "application/json"}
        )
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == loc
    assert message in error["msg"]
    assert client.get("/health").json()["status"] == "ok"


def test_score_refuses_no_responses(client) -> None:
    answer = client.post("/score", json={"prompt": "Hi", "responses": []})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "responses"]


def test_oversized_requests_are_refused_with_the_limit(make_client) -> None:
    client = make_client(max_items=2, max_chars=200, max_body_mb=0.002)  # about 2 KB
    too_many = client.post("/get_reward", json=openrlhf_request())
    assert too_many.status_code == 413
    (error,) = too_many.json()["detail"]
    assert error["loc"] == ["body", "query"]
    assert "4 items; the limit is 2 per request (srm serve --max-items)" in error["msg"]
    too_long = client.post("/score", json={"prompt": "Hi", "responses": ["ok", "x" * 201]})
    assert too_long.status_code == 413
    assert too_long.json()["detail"][0]["loc"] == ["body", "responses", 1]
    assert "201 characters; the limit is 200" in too_long.json()["detail"][0]["msg"]
    big = {"prompt": "Hi", "responses": ["ok"], "pad": "y" * 3000}
    by_length = client.post("/score", json=big)
    assert by_length.status_code == 413
    assert "over 0.002 MB" in by_length.json()["detail"][0]["msg"]
    streamed = client.post(  # no Content-Length: counted as it arrives
        "/score",
        content=(chunk for chunk in [json.dumps(big).encode()[:1500]] * 3),
        headers={"content-type": "application/json"},
    )
    assert streamed.status_code == 413
    assert "--max-body-mb" in streamed.json()["detail"][0]["msg"]
    fine = client.post("/get_reward", json=openrlhf_request(PROMPTS[:2], RESPONSES[:2]))
    assert fine.status_code == 200, fine.text


def test_token_is_required_when_set(make_client) -> None:
    client = make_client(token="s3cret")
    request = openrlhf_request()
    assert client.post("/get_reward", json=request).status_code == 401
    wrong = client.post("/get_reward", json=request, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert client.post("/score", json={"prompt": "a", "responses": ["b"]}).status_code == 401
    right = client.post("/get_reward", json=request, headers={"Authorization": "Bearer s3cret"})
    assert right.status_code == 200, right.text
    assert client.get("/health").status_code == 200


def test_score_returns_the_records_srm_score_writes(client, model) -> None:
    answer = client.post(
        "/score", json={"prompt": PROMPTS[3], "responses": RESPONSES, "dense": True}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["head"] == "sentence" and body["max_length"] == model.score_length
    expected = score_responses(model, [PROMPTS[3]] * len(RESPONSES), RESPONSES)
    for got, record in zip(body["responses"], expected, strict=True):
        dense = got.pop("dense")
        assert got.keys() == record.to_json().keys()
        assert got["score"] == pytest.approx(record.score, abs=1e-5)
        assert [s["text"] for s in got["sentences"]] == [s.text for s in record.sentences]
        assert [d["dense_reward"] for d in dense] == pytest.approx(
            [s.weight * s.reward for s in record.sentences], abs=1e-5
        )
    plain = client.post("/score", json={"prompt": "a", "responses": ["b."]}).json()
    assert "dense" not in plain["responses"][0]


@pytest.mark.parametrize("batching", [True, False])
def test_concurrent_requests_share_a_forward_pass_when_batching(make_client, batching) -> None:
    # The batch closes when 4 responses are in, so the long wait only bounds a slow machine.
    client = make_client(batching=batching, max_batch=4, max_wait_ms=10_000)
    answers: list = [None] * 4

    def post(i: int) -> None:
        request = openrlhf_request(PROMPTS[i : i + 1], RESPONSES[i : i + 1])
        answers[i] = client.post("/get_reward", json=request)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alone = client.post("/get_reward", json=openrlhf_request()).json()["rewards"]
    assert [a.json()["rewards"][0] for a in answers] == pytest.approx(alone, abs=1e-5)
    # The four requests, then the request of all four: one pass each way with batching.
    assert client.get("/health").json()["batches"] == (2 if batching else 5)


def test_a_failure_while_scoring_is_a_500_and_the_server_carries_on(make_client, monkeypatch):
    import srm.score

    real = srm.score.score_encoded

    def failing(model, encoded, **kwargs):
        if any("BOOM" in span.text for e in encoded for span in e.spans):
            raise RuntimeError("the model fell over")
        return real(model, encoded, **kwargs)

    monkeypatch.setattr(srm.score, "score_encoded", failing)
    client = make_client()
    bad = client.post("/score", json={"prompt": "Hi", "responses": ["BOOM."]})
    assert bad.status_code == 500
    assert "the model fell over" in bad.json()["detail"]
    assert client.post("/score", json={"prompt": "Hi", "responses": ["Fine."]}).status_code == 200


def test_openapi_schema_describes_the_endpoints(client) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/get_reward", "/score", "/health"} <= set(schema["paths"])
    request = schema["components"]["schemas"]["RewardRequest"]
    assert set(request["required"]) == {"query", "prompts"}
    response = schema["components"]["schemas"]["RewardResponse"]
    assert {"rewards", "scores", "extra_logs"} <= set(response["required"])


def test_serve_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="max_batch: got 0"):
        ServeConfig(max_batch=0)
    with pytest.raises(ConfigError, match="strip: an empty suffix"):
        ServeConfig(strip=["</s>", ""])


def test_serve_refuses_to_listen_beyond_loopback_without_a_token(monkeypatch) -> None:
    monkeypatch.delenv("SRM_SERVE_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--model", "/nowhere"])
    assert result.exit_code == 2
    assert "beyond loopback: give a token with --token or $SRM_SERVE_TOKEN" in result.output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def srm_serve(
    model: Path,
    log_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    open_files: int | None = None,
    python_code: str | None = None,
) -> Iterator[tuple[subprocess.Popen, str]]:
    """``srm serve`` as a process of its own on a free loopback port, once it answers /health:
    (the process, its URL). ``open_files`` sets its descriptor limit (ulimit -n);
    ``python_code`` runs instead of ``python -m srm.cli``, with the CLI arguments after it."""
    port = free_port()
    log = log_path.open("w")
    root = str(Path(__file__).resolve().parents[2])  # this tree's srm, not an installed one
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root, **(env or {})}
    entry = ["-c", python_code] if python_code else ["-m", "srm.cli"]
    command = [sys.executable, *entry, "serve", "--model", str(model), "--port", str(port), *args]

    def limit_open_files() -> None:
        if open_files is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))

    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environment,
        preexec_fn=limit_open_files,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{url}/health", process, log_path, "srm serve")
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)
        log.close()


def test_srm_serve_process_answers_over_http(tiny_model: Path, tmp_path: Path) -> None:
    with srm_serve(tiny_model, tmp_path / "serve.log", env={"SRM_SERVE_TOKEN": "tok"}) as (
        _,
        url,
    ):
        request = openrlhf_request()
        assert httpx.post(f"{url}/get_reward", json=request).status_code == 401
        answer = httpx.post(
            f"{url}/get_reward", json=request, headers={"Authorization": "Bearer tok"}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["rewards"]) == len(TEXTS)
        assert httpx.get(f"{url}/health").json()["model"] == tiny_model.name


# ------------------------------------------------------------------------ hostile requests
NON_FINITE = [
    pytest.param('{"query": [NaN], "prompts": ["x"]}', "NaN", id="nan-in-a-list"),
    pytest.param('{"query": ["ab"], "prompts": ["a"], "labels": [1e999]}', "1e999", id="1e999"),
    pytest.param('{"query": [Infinity], "prompts": ["x"]}', "Infinity", id="infinity-in-a-list"),
    pytest.param('{"query": ["ab"], "prompts": -Infinity}', "-Infinity", id="minus-infinity"),
    pytest.param('{"query": ["ab"], "prompts": ["a"], "x": -1e999}', "-1e999", id="extra-key"),
    pytest.param('{"prompt": "a", "responses": ["b"], "dense": NaN}', "NaN", id="a-flag"),
    pytest.param("1e999", "1e999", id="the-whole-body"),
]


@pytest.mark.parametrize("path", ["/get_reward", "/score"])
@pytest.mark.parametrize(("body", "number"), NON_FINITE)
def test_numbers_json_does_not_have_get_a_422(client, path: str, body: str, number: str) -> None:
    """Python's json reads NaN and Infinity, and FastAPI's 422 echoed them back in a body that
    could not be rendered: the client got a 500."""
    answer = client.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body"]
    assert error["msg"].startswith(f"{number} is not a finite number: JSON has no NaN or Infinity")
    assert client.post(path, content="{", headers={"content-type": "application/json"}).json()[
        "detail"
    ][0]["loc"] == ["body", 1]  # other broken JSON is still FastAPI's to describe


def test_a_request_past_its_deadline_gets_a_503_and_its_work_stops(
    make_client, model, monkeypatch
) -> None:
    client = make_client(timeout_s=1.0, max_batch=1)
    release = threading.Event()
    passes = []
    real_forward = model.forward

    def forward(*args, **kwargs):
        passes.append(len(passes))
        release.wait(60)  # the first pass outlives the request's deadline
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", forward)
    try:
        slow = client.post("/score", json={"prompt": "Hi", "responses": ["A.", "B.", "C."]})
        assert slow.status_code == 503, slow.text
        (error,) = slow.json()["detail"]
        assert "took over 1 s, the limit (srm serve --timeout-s)" in error["msg"]
        assert client.get("/health").json()["in_flight"] == 0
    finally:
        release.set()
    fine = client.post("/score", json={"prompt": "Hi", "responses": ["Fine."]})
    assert fine.status_code == 200, fine.text
    # The abandoned request ran at most the pass under way (not its three), then this one's.
    assert len(passes) <= 2


def test_a_slow_request_holds_up_neither_health_nor_the_other_requests(
    make_client, monkeypatch
) -> None:
    """Segmenting runs per request beside the model's thread: a request whose text takes long
    to segment (once: 100,000 characters of "!!! ", minutes) does not queue the others."""
    import srm.segment

    real = srm.segment.segment
    entered, release = threading.Event(), threading.Event()

    def segment(text: str, **kwargs):
        if text.startswith("HUGE"):
            entered.set()
            release.wait(60)
        return real(text, **kwargs)

    monkeypatch.setattr(srm.segment, "segment", segment)
    client = make_client()
    answers: dict[str, httpx.Response] = {}

    def post(name: str, response: str) -> None:
        answers[name] = client.post("/score", json={"prompt": "Hi", "responses": [response]})

    huge = threading.Thread(target=post, args=("huge", "HUGE" + "!!! " * 1000))
    huge.start()
    try:
        assert entered.wait(60), "the huge request never reached segmentation"
        small = threading.Thread(target=post, args=("small", "Fine. Thanks."))
        small.start()
        small.join(60)  # a bound for a hung test, not a timing: it waits forever when queued
        assert not small.is_alive(), "the small request waited for the huge one"
        assert answers["small"].status_code == 200, answers["small"].text
        assert client.get("/health").json()["in_flight"] == 1
    finally:
        release.set()
        huge.join(60)
    assert answers["huge"].status_code == 200


def test_segmenting_stops_at_the_next_response_once_its_request_gives_up(
    model, monkeypatch
) -> None:
    import srm.segment
    from srm.serve.batching import Batcher, _Abandoned

    real = srm.segment.segment
    abandoned = threading.Event()
    seen = []

    def segment(text: str, **kwargs):
        seen.append(text)
        abandoned.set()  # the request's deadline passes while its first response is segmented
        return real(text, **kwargs)

    monkeypatch.setattr(srm.segment, "segment", segment)
    with pytest.raises(_Abandoned):
        Batcher(model, ServeConfig())._prepare(["Hi"] * 3, ["A.", "B.", "C."], abandoned)
    assert seen == ["A."]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--token", ""], {}, "the token is blank"),
        (["--token", "   "], {}, "the token is blank"),
        (["--host", "0.0.0.0"], {"SRM_SERVE_TOKEN": ""}, "the token is blank"),
        (["--host", "0.0.0.0", "--insecure"], {"SRM_SERVE_TOKEN": " "}, "the token is blank"),
        (["--token", " s3cret"], {}, "spaces at its ends"),
        (["--token", "s3cr\u00e9t"], {}, "printable ASCII"),
    ],
)
def test_a_blank_token_is_refused(args: list[str], env: dict, message: str, monkeypatch) -> None:
    """A blank token once passed the beyond-loopback check and then matched no client."""
    monkeypatch.delenv("SRM_SERVE_TOKEN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["serve", "--model", "/nowhere", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_an_ipv6_address_in_brackets_is_bound_before_the_model_loads(
    tiny_model: Path, monkeypatch
) -> None:
    """``--host '[::1]'`` passed the loopback check and then failed to bind, after loading."""
    monkeypatch.delenv("SRM_SERVE_TOKEN", raising=False)
    served = []

    def serve(app, sock, config, max_connections) -> None:  # stands in for uvicorn
        served.append(sock.getsockname()[0])
        sock.close()

    monkeypatch.setattr("srm.serve.serve", serve)
    result = CliRunner().invoke(main, ["serve", "--host", "[::1]", "--model", str(tiny_model)])
    if ipv6_loopback():
        assert result.exit_code == 0, result.output
        assert served == ["::1"]
        assert "at http://[::1]:5000" in result.output
    else:  # pragma: no cover - a machine without IPv6
        assert result.exit_code == 2 and "cannot listen on [::1]" in result.output


def test_an_address_that_cannot_be_served_is_refused_before_the_model_loads(monkeypatch) -> None:
    monkeypatch.delenv("SRM_SERVE_TOKEN", raising=False)
    result = CliRunner().invoke(
        main, ["serve", "--host", "203.0.113.7", "--insecure", "--model", "/nowhere"]
    )  # TEST-NET-3: an address of no machine here; the model path is not even looked at
    assert result.exit_code == 2, result.output
    assert "cannot listen on 203.0.113.7 port 5000" in result.output


def test_the_connection_cap_stays_below_the_descriptor_limit() -> None:
    from srm.serve import connection_cap

    assert connection_cap(None, 1024) == 768
    assert connection_cap(100, 1024) == 100
    assert connection_cap(5000, 1024) == 768
    assert connection_cap(None, None) == 4096
    with pytest.raises(ValueError, match=r"may open 200 files \(ulimit -n\), too few"):
        connection_cap(None, 200)


# --------------------------------------------------------------- slow clients, a real server
def half_open(url: str, count: int) -> list[socket.socket]:
    """``count`` connections that start a request and never finish its headers."""
    host, port = url.removeprefix("http://").split(":")
    connections = []
    for _ in range(count):
        connection = socket.create_connection((host, int(port)))
        connection.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\n")
        connections.append(connection)
    return connections


def first_bytes(connection: socket.socket) -> bytes:
    """What the server sends on ``connection`` until it closes it (60 s: a bound for a hung
    test, not a timing)."""
    connection.settimeout(60)
    received = b""
    while chunk := connection.recv(4096):
        received += chunk
    return received


def test_slow_clients_cannot_stall_health_or_run_out_of_descriptors(
    tiny_model: Path, tmp_path: Path
) -> None:
    """600 connections that never finish their headers, against a 512-descriptor limit: once,
    /health stopped answering and the accept loop logged a traceback per attempt (180 MB)."""
    log = tmp_path / "serve.log"
    with srm_serve(tiny_model, log, open_files=512) as (process, url):
        connections = half_open(url, 600)
        try:
            for _ in range(3):
                assert httpx.get(f"{url}/health", timeout=60).json()["status"] == "ok"
            # The cap is 512 - 256: the longest-waiting connections made room for newer ones.
            assert first_bytes(connections[0]).startswith(b"HTTP/1.1 503 Service Unavailable")
        finally:
            for connection in connections:
                connection.close()
        assert process.poll() is None
    assert "Traceback" not in log.read_text()


def test_headers_and_bodies_that_never_finish_are_answered_and_closed(
    tiny_model: Path, tmp_path: Path
) -> None:
    with srm_serve(
        tiny_model, tmp_path / "serve.log", "--header-timeout-s", "1", "--timeout-s", "2"
    ) as (_, url):
        (no_headers,) = half_open(url, 1)
        (no_body,) = half_open(url, 1)
        no_body.sendall(b"content-type: application/json\r\ncontent-length: 100\r\n\r\n{")
        assert first_bytes(no_headers).startswith(b"HTTP/1.1 408 Request Timeout")
        answer = first_bytes(no_body)
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"--timeout-s" in answer
        assert httpx.get(f"{url}/health").status_code == 200


STUCK_MODEL = """
import pathlib, sys, threading
import srm.score

def stuck(*args, **kwargs):  # a forward pass that never ends
    pathlib.Path(sys.argv[1]).touch()
    threading.Event().wait()

srm.score.score_encoded = srm.score.score_responses = stuck
from srm.cli import main
main(sys.argv[2:])
"""


def test_sigterm_stops_the_server_while_a_request_is_scored(
    tiny_model: Path, tmp_path: Path
) -> None:
    """Once, SIGTERM waited for the request under way: over 45 s for a huge one. Now the
    request gets a few seconds, then a 503 saying the server is stopping."""
    started = tmp_path / "scoring-started"
    log = tmp_path / "serve.log"
    code = STUCK_MODEL.replace("sys.argv[1]", repr(str(started))).replace(
        "main(sys.argv[2:])", "main(sys.argv[1:])"
    )
    answers: list[httpx.Response] = []
    with srm_serve(tiny_model, log, python_code=code) as (process, url):
        request = threading.Thread(
            target=lambda: answers.append(
                httpx.post(
                    f"{url}/score", json={"prompt": "Hi", "responses": ["Hello."]}, timeout=120
                )
            ),
            daemon=True,
        )
        request.start()
        for _ in range(600):
            if started.exists():
                break
            time.sleep(0.1)
        else:
            pytest.fail("the request never reached the model")
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=60)  # a bound for a hung test, not a timing
        except subprocess.TimeoutExpired:
            pytest.fail("srm serve ignored SIGTERM while a request was scored")
        request.join(60)
    assert returncode in (-signal.SIGTERM, 128 + signal.SIGTERM, 0)
    [answer] = answers
    assert answer.status_code == 503
    assert answer.json()["detail"][0]["msg"].startswith("the server is stopping")
    assert "Traceback" not in log.read_text()


# ------------------------------------------------------------------- surviving a rollout
def test_the_token_may_come_in_the_url(make_client) -> None:
    """OpenRLHF posts no headers: its --reward.remote_url can carry ?token=T."""
    client = make_client(token="s3cret")
    body = openrlhf_request()
    assert client.post("/get_reward?token=s3cret", json=body).status_code == 200
    assert client.post("/get_reward?token=wrong", json=body).status_code == 401
    assert client.post("/get_reward", json=body).status_code == 401


def test_allowed_clients_need_no_token_and_others_are_refused(model) -> None:
    body = openrlhf_request()

    def post(config: ServeConfig, address: str, token: str | None = None) -> int:
        app = create_app(model, config, token=token)
        with TestClient(app, client=(address, 40000)) as client:
            return client.post("/get_reward", json=body).status_code

    only = ServeConfig(allow_clients=["10.0.0.0/8", "::1"])
    assert post(only, "10.1.2.3") == 200
    assert post(only, "192.168.1.9") == 403
    with_token = ServeConfig(allow_clients=["10.0.0.0/8"])
    assert post(with_token, "10.1.2.3", token="tok") == 200  # listed: no token needed
    assert post(with_token, "192.168.1.9", token="tok") == 401
    with pytest.raises(ConfigError, match="allow_clients"):
        ServeConfig(allow_clients=["not-an-address"])


def test_a_full_queue_answers_503_with_retry_after(make_client, monkeypatch) -> None:
    """max_queue requests under way: one more is answered at once, 503 and Retry-After."""
    import srm.segment

    real = srm.segment.segment
    entered, release = threading.Event(), threading.Event()

    def segment(text: str, **kwargs):
        if text.startswith("HOLD"):
            entered.set()
            release.wait(60)
        return real(text, **kwargs)

    monkeypatch.setattr(srm.segment, "segment", segment)
    client = make_client(max_queue=1)
    answers: dict[str, httpx.Response] = {}

    def post() -> None:
        answers["held"] = client.post("/score", json={"prompt": "Hi", "responses": ["HOLD on."]})

    held = threading.Thread(target=post)
    held.start()
    try:
        assert entered.wait(60)
        refused = client.post("/get_reward", json=openrlhf_request())
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert "--max-queue" in refused.text
    finally:
        release.set()
        held.join(60)
    assert answers["held"].status_code == 200
    assert client.post("/get_reward", json=openrlhf_request()).status_code == 200


def test_a_request_whose_client_has_gone_is_not_scored(tiny_model: Path, tmp_path: Path) -> None:
    """A client that sends a large request and closes its connection: the server drops the
    work (no batch completes), and answers the next client."""
    body = json.dumps(openrlhf_request(PROMPTS * 400, RESPONSES * 400)).encode()
    with srm_serve(tiny_model, tmp_path / "serve.log", "--no-batching") as (_, url):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head = "POST /get_reward HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            sock.sendall(head.encode() + f"content-length: {len(body)}\r\n\r\n".encode() + body)
            deadline = time.monotonic() + 60
            while httpx.get(f"{url}/health").json()["in_flight"] == 0:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        while (health := httpx.get(f"{url}/health").json())["in_flight"]:
            assert time.monotonic() < deadline, "the abandoned request is still under way"
            time.sleep(0.05)
        assert health["batches"] == 0  # its forward passes stopped: nothing completed
        answer = httpx.post(f"{url}/get_reward", json=openrlhf_request(), timeout=60)
        assert answer.status_code == 200
        assert httpx.get(f"{url}/health").json()["batches"] == 1


# ------------------------------------------------------------- several processes, one port
def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def worker_pids(url: str, count: int) -> set[int]:
    """The pids /health reports, over new connections, until ``count`` differ (a worker still
    loading its model answers once it has)."""
    pids: set[int] = set()
    for _ in range(200):
        pids.add(httpx.get(f"{url}/health", timeout=120).json()["pid"])
        if len(pids) == count:
            break
    return pids


def wait_until_gone(pids: set[int]) -> None:
    for _ in range(600):  # a bound for a hung test, not a timing
        if all(gone(pid) for pid in pids):
            return
        time.sleep(0.1)
    pytest.fail(f"worker processes still running: {sorted(p for p in pids if not gone(p))}")


def test_two_workers_answer_on_one_port_and_sigterm_stops_them_all(
    tiny_model: Path, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    with srm_serve(tiny_model, log, "--workers", "2") as (process, url):
        pids = worker_pids(url, 2)
        assert len(pids) == 2 and process.pid not in pids
        for _ in range(4):
            answer = httpx.post(f"{url}/get_reward", json=openrlhf_request(), timeout=60)
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["rewards"]) == len(TEXTS)
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("srm serve --workers 2 ignored SIGTERM")
    assert returncode == 0
    wait_until_gone(pids)
    text = log.read_text()
    assert "from 2 processes" in text and "Traceback" not in text


def test_workers_stop_when_their_parent_is_killed(tiny_model: Path, tmp_path: Path) -> None:
    """SIGKILL leaves the parent no chance to stop its workers: they stop themselves."""
    with srm_serve(tiny_model, tmp_path / "serve.log", "--workers", "2") as (process, url):
        pids = worker_pids(url, 2)
        process.kill()
        process.wait(timeout=60)
    wait_until_gone(pids)


def test_workers_refuse_a_port_another_server_holds(monkeypatch) -> None:
    """SO_REUSEPORT would let the workers join a server of this user already on the port
    (another srm serve --workers): the port is first bound without it, and refused."""
    monkeypatch.delenv("SRM_SERVE_TOKEN", raising=False)
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = CliRunner().invoke(
            main, ["serve", "--workers", "2", "--port", str(port), "--model", "/nowhere"]
        )  # the model path is not even looked at
    assert result.exit_code == 2, result.output
    assert f"cannot listen on 127.0.0.1 port {port}" in result.output
