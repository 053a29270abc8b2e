"""The reward server: OpenRLHF's /get_reward shape, the dense rewards, bad and oversized
requests, the token, batching, and ``srm serve`` as a process on a loopback port."""

from __future__ import annotations

import json
import math
import os
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
from srm.dense import token_offsets
from srm.model import SentenceRewardModel
from srm.score import score_responses
from srm.serve import create_app

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
    assert set(body) == {"rewards", "scores", "extra_logs", "sentence_rewards", "sentence_spans"}
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


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ('{"query": ["a"', ["body", 14], "JSON decode error"),
        ({"query": "Hi", "prompts": ["Hi"]}, ["body", "query"], "valid list"),
        ({"query": ["Hi"]}, ["body", "prompts"], "Field required"),
        ({"query": ["Hi there"], "prompts": ["Hi", "Ho"]}, ["body", "prompts"], "2 prompts for 1"),
        ({"query": ["Hi", "Yo"], "prompts": ["Hi", "Ho"]}, ["body", "query", 1], "prompts[1]"),
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

    real = srm.score.score_responses

    def failing(model, prompts, responses, **kwargs):
        if any("BOOM" in r for r in responses):
            raise RuntimeError("the model fell over")
        return real(model, prompts, responses, **kwargs)

    monkeypatch.setattr(srm.score, "score_responses", failing)
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


def test_srm_serve_process_answers_over_http(tiny_model: Path, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    root = str(Path(__file__).resolve().parents[2])  # this tree's srm, not an installed one
    env = {**os.environ, "SRM_SERVE_TOKEN": "tok", "OMP_NUM_THREADS": "1", "PYTHONPATH": root}
    command = [sys.executable, "-m", "srm.cli", "serve", "--model", str(tiny_model)]
    process = subprocess.Popen(
        [*command, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to a minute or so on a loaded machine; no timing asserted
            if process.poll() is not None:
                pytest.fail(f"srm serve exited: {(tmp_path / 'serve.log').read_text()}")
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail(f"srm serve never answered: {(tmp_path / 'serve.log').read_text()}")
        request = openrlhf_request()
        assert httpx.post(f"{url}/get_reward", json=request).status_code == 401
        answer = httpx.post(
            f"{url}/get_reward", json=request, headers={"Authorization": "Bearer tok"}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["rewards"]) == len(TEXTS)
        assert httpx.get(f"{url}/health").json()["model"] == tiny_model.name
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
