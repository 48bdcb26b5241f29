"""`llm_judge` (optional, off by default): an LLM behind an OpenAI-compatible chat endpoint rates
each steered generation on AxBench's three criteria — the concept, relevance to the instruction
(here: the prompt it continues) and fluency — each 0, 1 or 2, in one request per criterion.

For users who have such an endpoint (a local llama.cpp / vLLM / Ollama server, or a hosted one);
nothing in steerkit calls it unless the config lists the metric. The client is the standard
library's urllib: no extra dependency.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import numpy as np

from steerkit import Column, EvalContext, Metric, Needs, SteerkitError, ValidationError
from steerkit.checks import finite_number, string
from steerkit_metrics._context import generations_to_score, nan_column

__all__ = ["CRITERIA", "LLMJudge", "parse_rating"]

logger = logging.getLogger(__name__)

#: criterion → what the judge is asked (our wording of AxBench's rubric: 0 no, 1 somewhat, 2 yes)
CRITERIA = {
    "concept": (
        "Rate how clearly the TEXT expresses the concept: {concept}.\n"
        "0: the concept is absent. 1: the concept is somewhat present or only hinted at. "
        "2: the concept is clearly present."
    ),
    "instruction": (
        "Rate how well the TEXT follows on from the PROMPT (stays on its topic and answers or "
        "continues it sensibly).\n0: unrelated to the prompt. 1: somewhat related. "
        "2: clearly related."
    ),
    "fluency": (
        "Rate how fluent the TEXT is as English, ignoring whether it is finished.\n"
        "0: not fluent (broken, repetitive, gibberish). 1: somewhat fluent. 2: fluent."
    ),
}
_TEMPLATE = (
    "{criterion}\n\nPROMPT:\n{prompt}\n\nTEXT:\n{text}\n\n"
    "Explain in one sentence, then end with your rating in the form Rating: [[N]] "
    "where N is 0, 1 or 2."
)
_RATING = re.compile(r"\[\[\s*([0-2])\s*\]\]")
_LOOSE = re.compile(r"rating\s*:?\s*\[*\s*([0-2])\b", re.IGNORECASE)


def parse_rating(reply: str) -> float:
    """The 0–2 rating in a judge's reply ("Rating: [[N]]", the last one; a bare "Rating: N" as
    a fallback) as a float; NaN when there is none."""
    found = _RATING.findall(reply) or _LOOSE.findall(reply)
    return float(found[-1]) if found else math.nan


class LLMJudge(Metric):
    """Columns: `llm_concept`, `llm_instruction`, `llm_fluency` — the judge's 0–2 ratings of the
    steered generation of prompt i divided by 2, in [0, 1] — and `llm_aggregate`, their harmonic
    mean (0 when any is 0, as in AxBench). NaN for rows without a generation, inputs without a
    vector, blank generations and replies without a rating (logged).

    base_url: the endpoint's base, e.g. "http://localhost:8080/v1" (the judge POSTs to
    {base_url}/chat/completions); model: the model name sent; concept: the target concept in
    words (e.g. "positive sentiment"); api_key_env: the environment variable holding the API
    key (sent as a Bearer token when set; none for a local server); timeout: seconds per
    request.
    """

    name = "llm_judge"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        concept: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
    ) -> None:
        for field, value in (("base_url", base_url), ("model", model), ("concept", concept)):
            if value is None:
                raise ValidationError(
                    "llm_judge",
                    field,
                    f"a {field} ([evaluation.params.llm_judge] {field} = ...): the LLM judge is "
                    "off unless configured",
                    "None",
                )
        self.base_url = string("llm_judge", "base_url", base_url).rstrip("/")
        if not re.match(r"^https?://", self.base_url):
            raise ValidationError(
                "llm_judge", "base_url", "an http:// or https:// URL", repr(base_url)
            )
        self.model = string("llm_judge", "model", model)
        self.concept = string("llm_judge", "concept", concept)
        self.api_key_env = string("llm_judge", "api_key_env", api_key_env)
        self.timeout = finite_number("llm_judge", "timeout", timeout, positive=True)

    def __repr__(self) -> str:
        return f"LLMJudge(base_url={self.base_url!r}, model={self.model!r})"

    def columns(self) -> tuple[Column, ...]:
        described = {
            "concept": "the LLM judge's concept rating / 2",
            "instruction": "the LLM judge's relevance-to-the-prompt rating / 2",
            "fluency": "the LLM judge's fluency rating / 2",
        }
        return (
            *(
                Column(
                    f"llm_{key}",
                    f"LLM {key}",
                    better="higher",
                    format=".3f",
                    description=text,
                    role="effect" if key == "concept" else None,
                )
                for key, text in described.items()
            ),
            Column(
                "llm_aggregate",
                "LLM aggregate",
                better="higher",
                format=".3f",
                description="harmonic mean of the LLM judge's three scores",
            ),
        )

    def requires(self) -> Needs:
        return Needs(generations=True)

    def compute(self, context: EvalContext) -> Mapping[str, Any]:
        n = len(context.inputs)
        out = {c.name: nan_column(n) for c in self.columns()}
        for _, i, text in generations_to_score(context, self.name, base=False):
            for key, criterion in CRITERIA.items():
                question = _TEMPLATE.format(
                    criterion=criterion.format(concept=self.concept),
                    prompt=context.prompts[i],
                    text=text,
                )
                reply = self.ask(question)
                rating = parse_rating(reply)
                if math.isnan(rating):
                    logger.warning("llm_judge: no rating in the reply %r", reply[:200])
                out[f"llm_{key}"][i] = rating / 2.0
        scores = np.stack([out[f"llm_{key}"] for key in CRITERIA])
        with np.errstate(divide="ignore", invalid="ignore"):
            harmonic = len(CRITERIA) / np.sum(1.0 / scores, axis=0)
        out["llm_aggregate"] = np.where(np.any(scores == 0, axis=0), 0.0, harmonic)
        out["llm_aggregate"][np.any(np.isnan(scores), axis=0)] = np.nan
        return out

    def ask(self, question: str) -> str:
        """The endpoint's reply (the first choice's message content) to one user message."""
        body = json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": question}],
                "temperature": 0,
                "max_tokens": 256,
            }
        ).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = f"{self.base_url}/chat/completions"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")[:300]
            raise SteerkitError(
                f"llm_judge: {url} answered HTTP {e.code} ({detail.strip() or e.reason}); "
                f"check base_url, model and the API key in ${self.api_key_env}"
            ) from e
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise SteerkitError(
                f"llm_judge: could not reach {url} ({e}); is the server running?"
            ) from e
        except json.JSONDecodeError as e:
            raise SteerkitError(f"llm_judge: {url} did not answer JSON ({e})") from e
        try:
            return str(data["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError) as e:
            raise SteerkitError(
                f"llm_judge: {url} answered without choices[0].message.content: "
                f"{json.dumps(data)[:300]}"
            ) from e
