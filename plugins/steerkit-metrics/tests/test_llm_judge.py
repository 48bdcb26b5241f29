"""`llm_judge` against a loopback OpenAI-compatible server started here (http.server in a thread):
what it sends, how it reads the ratings, and what it says when the server misbehaves."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import numpy as np
import pytest
from steerkit_metrics import LLMJudge, parse_rating

from steerkit import (
    Activations,
    EvalContext,
    MethodResult,
    SteeringVector,
    SteerkitError,
    ValidationError,
)

HOOK = "blocks.0.hook_resid_pre"
PROMPTS = ["The movie was", "My day"]
GENERATIONS = [" great fun", " bad bad bad"]


class Judge(BaseHTTPRequestHandler):
    """Rates by what the text and the criterion say; records every request."""

    requests: ClassVar[list[dict[str, Any]]] = []
    status = 200

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Judge.requests.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        if Judge.status != 200:
            self.send_response(Judge.status)
            self.end_headers()
            self.wfile.write(b'{"error": "model not found"}')
            return
        question = body["messages"][0]["content"]
        good = "great fun" in question
        if "concept" in question.split("\n")[0]:
            rating = 2 if good else 0
        elif "follows on" in question:
            rating = 1
        else:
            rating = 2 if good else 1
        reply = {
            "choices": [
                {"message": {"role": "assistant", "content": f"Fine. Rating: [[{rating}]]"}}
            ]
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Judge.requests = []
    Judge.status = 200
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Judge)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


def context(n: int = 3) -> EvalContext:
    return EvalContext(
        inputs=Activations(np.zeros((n, 4)), hook_point=HOOK),
        result=MethodResult([SteeringVector(np.ones(4), hook_point=HOOK)], shared=True),
        prompts=PROMPTS,
        generations=GENERATIONS,
        base_generations=GENERATIONS,
    )


def test_parse_rating() -> None:
    assert parse_rating("It is clear. Rating: [[2]]") == 2.0
    assert parse_rating("Rating: [[1]] ... no, Rating: [[0]]") == 0.0
    assert parse_rating("Rating: 1") == 1.0
    assert math.isnan(parse_rating("I cannot rate this."))
    assert math.isnan(parse_rating("Rating: [[7]]"))


def test_the_judge_rates_three_criteria_per_generation(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_KEY", "sekrit")
    judge = LLMJudge(
        base_url=server, model="tiny-judge", concept="positive sentiment", api_key_env="JUDGE_KEY"
    )
    out = judge.compute(context())
    assert len(Judge.requests) == 2 * 3  # two generations × three criteria; row 2 has none
    first = Judge.requests[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["auth"] == "Bearer sekrit"
    assert first["body"]["model"] == "tiny-judge" and first["body"]["temperature"] == 0
    question = first["body"]["messages"][0]["content"]
    assert (
        "positive sentiment" in question and PROMPTS[0] in question and GENERATIONS[0] in question
    )
    # ratings / 2; the harmonic mean of the three, 0 when one is 0
    np.testing.assert_allclose(out["llm_concept"][:2], [1.0, 0.0])
    np.testing.assert_allclose(out["llm_instruction"][:2], [0.5, 0.5])
    np.testing.assert_allclose(out["llm_fluency"][:2], [1.0, 0.5])
    assert out["llm_aggregate"][0] == pytest.approx(3 / (1 / 1.0 + 1 / 0.5 + 1 / 1.0))
    assert out["llm_aggregate"][1] == 0.0
    assert all(math.isnan(out[c][2]) for c in out)


def test_no_key_no_authorization_header(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    LLMJudge(base_url=server, model="m", concept="c").ask("hello")
    assert Judge.requests[0]["auth"] is None


def test_server_errors_are_reported(server: str) -> None:
    Judge.status = 404
    judge = LLMJudge(base_url=server, model="missing", concept="c")
    with pytest.raises(SteerkitError, match="HTTP 404.*model not found"):
        judge.compute(context())
    unreachable = LLMJudge(base_url="http://127.0.0.1:9/v1", model="m", concept="c", timeout=2)
    with pytest.raises(SteerkitError, match="could not reach"):
        unreachable.ask("hello")


def test_off_unless_configured() -> None:
    with pytest.raises(ValidationError, match="base_url"):
        LLMJudge()
    with pytest.raises(ValidationError, match="concept"):
        LLMJudge(base_url="http://localhost:8080/v1", model="m")
    with pytest.raises(ValidationError, match="http"):
        LLMJudge(base_url="localhost:8080", model="m", concept="c")
