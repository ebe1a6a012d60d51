"""LLM verifier client: prompt, decision parsing, gating, and behaviour against real and scripted servers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from _client_support import FaultServer, chat_completion
from conftest import running_server

from trm.client import BackendPool, BackendRequestError
from trm.rewards.correctness import VerifyConfig, verify_response
from trm.rewards.llm_verifier import llm_verify, parse_decision, verifier_prompt

REPO = Path(__file__).resolve().parents[1]
VERIFIER_NAME = "TIGER-Lab/general-verifier"
WEBINSTRUCT = "TIGER-Lab/WebInstruct-verified"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The two agree.\nFinal Decision: Yes", True),
        ("final decision:no", False),
        ("Final Decision: **Yes**", True),
        ("Final Decision: No ... wait. Final Decision: Yes", True),  # the last tag counts
        ("Yes, they match.", None),
        ("Final Decision: Maybe", None),
        ("", None),
    ],
)
def test_parse_decision(text, expected):
    assert parse_decision(text) is expected


def test_prompt_has_the_fields_and_keeps_the_answer_tail():
    answer = "x" * 2500 + "THE END"
    prompt = verifier_prompt("What is 2+2?", "4", answer)
    assert "### Question: What is 2+2?" in prompt
    assert "### Ground Truth Answer: 4" in prompt
    student = prompt.split("### Student Answer: ", 1)[1].split("\n\n", 1)[0]
    assert student == answer[-2000:] and student.endswith("THE END")
    assert "Final Decision: Yes" in prompt and "Final Decision: No" in prompt


def verify_with(script, answer="four", **kwargs):
    with FaultServer(script) as fake:
        async def go():
            pool = BackendPool([fake.url], deadline=10)
            try:
                return await llm_verify(pool, "What is 2+2?", "4", answer, **kwargs)
            finally:
                await pool.aclose()

        return asyncio.run(go()), fake.requests


def test_scripted_yes_is_verified_and_the_request_is_greedy_with_512_tokens():
    verdict, requests = verify_with(lambda i, req: ("status", 200, chat_completion("Same value.\nFinal Decision: Yes")))
    assert verdict.correct and verdict.source == "llm_verifier" and verdict.answer == "four"
    sent = requests[0].json()
    assert requests[0].path == "/v1/chat/completions"
    assert sent["model"] == VERIFIER_NAME and sent["temperature"] == 0 and sent["max_tokens"] == 512
    assert "### Student Answer: four" in sent["messages"][0]["content"]


def test_scripted_no_is_not_verified():
    verdict, _ = verify_with(lambda i, req: ("status", 200, chat_completion("Final Decision: No")))
    assert not verdict.correct and "No" in verdict.detail


def test_garbage_answer_is_not_verified_with_an_unparsable_detail():
    verdict, _ = verify_with(lambda i, req: ("status", 200, chat_completion("lorem ipsum <|im_end|> 42")))
    assert not verdict.correct and verdict.source == "llm_verifier"
    assert "unparsable" in verdict.detail and "42" in verdict.detail


def test_a_reply_that_is_not_a_chat_completion_raises():
    with pytest.raises(ValueError, match="not a chat completion"):
        verify_with(lambda i, req: ("status", 200, {"unexpected": True}))


def test_gate_calls_the_verifier_only_for_configured_sources_after_rule_failure():
    with FaultServer(lambda i, req: ("status", 200, chat_completion("Final Decision: Yes"))) as fake:
        async def go():
            pool = BackendPool([fake.url], deadline=10)
            try:
                kwargs = dict(question="How many legs has a spider?", verifier_pool=pool)
                llm = await verify_response("So \\boxed{eight}", "8", data_source=WEBINSTRUCT, **kwargs)
                rule_only = await verify_response("So \\boxed{eight}", "8", data_source="numina_math", **kwargs)
                by_rule = await verify_response("So \\boxed{8}", "8", data_source=WEBINSTRUCT, **kwargs)
                custom = await verify_response(
                    "So \\boxed{eight}", "8", data_source="mine", config=VerifyConfig(llm_data_sources={"mine"}), **kwargs
                )
                return llm, rule_only, by_rule, custom
            finally:
                await pool.aclose()

        llm, rule_only, by_rule, custom = asyncio.run(go())
        prompts = [r.json()["messages"][0]["content"] for r in fake.requests]
    assert llm.correct and llm.source == "llm_verifier"
    assert not rule_only.correct and rule_only.source == "math_verify"
    assert by_rule.correct and by_rule.source == "exact_match"
    assert custom.correct and custom.source == "llm_verifier"
    assert len(prompts) == 2  # only the two allowed, rule-failed samples reached the verifier
    assert "### Question: How many legs has a spider?" in prompts[0] and "### Ground Truth Answer: 8" in prompts[0]


@pytest.fixture(scope="module")
def chat_server(tiny_models):
    args = ["serve", "chat", "--model", str(tiny_models["chat"]), "--served-model-name", VERIFIER_NAME]
    template = REPO / "chat_templates" / "verifier.jinja"
    if template.exists():
        args += ["--chat-template", str(template)]
    with running_server(args) as url:
        yield url


def test_real_chat_server_with_a_random_model_is_not_verified(chat_server):
    async def go():
        pool = BackendPool([chat_server], deadline=120, request_timeout=120)
        try:
            verdict = await llm_verify(pool, "What is 2+2?", "4", "four")
            with pytest.raises(BackendRequestError) as info:
                await llm_verify(pool, "What is 2+2?", "4", "four", model="not-served")
            return verdict, info.value
        finally:
            await pool.aclose()

    verdict, error = asyncio.run(go())
    assert not verdict.correct and verdict.source == "llm_verifier"
    assert verdict.detail.startswith("unparsable verifier output")
    assert error.status_code == 404 and "not-served" in error.message
