"""LLM verifier client: the protocol's input on the wire and in the served model, decision parsing, unusable
replies as faults, gating, and behaviour against real and scripted servers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from trm_testing.fault_server import FaultServer, chat_completion, dead_backend, verifier_prompts, verifier_reply
from trm_testing.serving import PROMPT_PROBE, running_server
from test_protocol import VERIFIER_EXPECTED

from trm.client import BackendPool, BackendRequestError, BackendsUnavailable
from trm.protocol import GENERAL_VERIFIER_MAX_TOKENS, general_verifier_input
from trm.rewards.correctness import VerifierUnusable, VerifyConfig, verify_response
from trm.rewards.llm_verifier import GeneralVerifier, parse_decision

REPO = Path(__file__).resolve().parents[1]
VERIFIER_NAME = "TIGER-Lab/general-verifier"
WEBINSTRUCT = "TIGER-Lab/WebInstruct-verified"
# The fixed inputs of test_protocol.VERIFIER_EXPECTED (the protocol's text for them, byte for byte).
QUESTION, TRUTH, STUDENT = "What is $\\frac{1}{2}+\\frac{1}{3}$?", "\\frac{5}{6}", "5/6"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The two agree.\nFinal Decision: Yes", True),
        ("final decision:no", False),
        # The release looks for the exact "Final Decision: Yes" and would not verify these two; the decision is Yes
        # in any spelling, and a reward must not hinge on the verifier's capitalisation or markdown.
        ("Final Decision: **Yes**", True),
        ("**Final Decision:** yes", True),
        ("Final Decision: No ... wait. Final Decision: Yes", True),  # the last tag counts
        ("FINAL DECISION: NO", False),
        # The release counts any reply containing the exact tag as verified; ours must accept all of those, even
        # when a later tag disagrees (so rewards match the paper's on the model's rare double decisions).
        ("Final Decision: Yes. Hmm, no. final decision: no", True),
        ("Final Decision: Yesterday", True),
        ("Yes, they match.", None),
        ("Final Decision: Maybe", None),
        ("", None),
    ],
)
def test_parse_decision(text, expected):
    assert parse_decision(text) is expected


def answering(text, finish_reason="stop"):
    """A scripted verifier replying ``text`` to every prompt, on whichever API it is asked."""
    return lambda i, request: verifier_reply(request, lambda prompt: text, finish_reason)


def verify_with(script, question="What is 2+2?", truth="4", answer="four", **kwargs):
    with FaultServer(script) as fake:
        async def go():
            pool = BackendPool([fake.url], deadline=10)
            try:
                return await GeneralVerifier(pool, **kwargs).verify(question, truth, answer)
            finally:
                await pool.aclose()

        return asyncio.run(go()), fake.requests


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_the_request_is_the_protocol_input_byte_for_byte_greedy_with_512_tokens(api):
    verdict, requests = verify_with(answering("Same value.\nFinal Decision: Yes"), QUESTION, TRUTH, STUDENT, api=api)
    assert verdict.correct and verdict.source == "llm_verifier" and verdict.answer == STUDENT
    sent = json.loads(requests[0].body)
    if api == "completions":  # the default: the text is the prompt (a list request, here of one)
        assert requests[0].path == "/v1/completions" and sent["prompt"] == [VERIFIER_EXPECTED]
    else:  # the release's route: one user message, nothing else
        assert requests[0].path == "/v1/chat/completions"
        assert sent["messages"] == [{"role": "user", "content": VERIFIER_EXPECTED}]
    assert sent["model"] == VERIFIER_NAME and sent["temperature"] == 0
    assert sent["max_tokens"] == GENERAL_VERIFIER_MAX_TOKENS == 512
    config = VerifyConfig()
    assert (config.verifier_max_tokens, config.answer_tail_chars) == (512, 2000)  # defaults are the protocol's


def test_the_student_answer_is_cut_to_its_last_2000_characters():
    answer = "y" + "x" * 2500 + "THE END"
    _, requests = verify_with(answering("Final Decision: No"), answer=answer)
    (content,) = verifier_prompts(requests[0])
    assert content == general_verifier_input("What is 2+2?", "4", answer[-2000:])
    assert f"### Student Answer: {answer[-2000:]}\n\n" in content and answer[-2001:] not in content


def test_an_empty_answer_is_not_verified_and_nothing_is_called():
    async def go():
        pool = BackendPool(dead_backend(), deadline=1)  # any call would raise BackendsUnavailable
        try:
            return [await GeneralVerifier(pool).verify("q", "4", answer) for answer in ("", "  \n")]
        finally:
            await pool.aclose()

    for verdict in asyncio.run(go()):
        assert not verdict.correct and verdict.source == "no_answer" and "not asked" in verdict.detail


def test_scripted_no_is_not_verified():
    verdict, _ = verify_with(answering("Final Decision: No"))
    assert not verdict.correct and "No" in verdict.detail


def test_a_complete_reply_without_a_tag_is_the_models_answer_not_verified():
    verdict, _ = verify_with(answering("lorem ipsum <|im_end|> 42"))
    assert not verdict.correct and verdict.source == "llm_verifier"
    assert "unparsable" in verdict.detail and "42" in verdict.detail


@pytest.mark.parametrize(
    "content, finish, source, correct",
    [
        (None, "stop", "verifier_unusable", False),  # no content at all
        (None, "length", "verifier_unusable", False),
        ("The student's answer 4 and the ground truth", "length", "verifier_unusable", False),  # cut off, no decision
        ("Both are 4.\nFinal Decision: Yes", "length", "llm_verifier", True),  # cut off after its decision: decided
        ("Final Decision: No", "length", "llm_verifier", False),
    ],
)
def test_empty_or_cut_off_replies_are_unusable_not_wrong(content, finish, source, correct):
    verdict, _ = verify_with(answering(content, finish))
    assert (verdict.source, verdict.correct) == (source, correct)
    if source == "verifier_unusable":
        assert ("no content" in verdict.detail) if content is None else ("cut off at max_tokens 512" in verdict.detail)


def test_a_reply_that_is_not_a_completion_is_retried_then_raises():
    def script(i, req):
        return ("status", 200, {"unexpected": True}) if i < 2 else verifier_reply(req, lambda p: "Final Decision: No")

    verdict, requests = verify_with(script)  # a malformed answer is a backend fault: retried, never a verdict
    assert len(requests) == 3 and verdict.source == "llm_verifier" and not verdict.correct
    with FaultServer(lambda i, req: ("status", 200, {"unexpected": True})) as fake:
        async def go():
            pool = BackendPool([fake.url], deadline=0.5, backoff_base=0.01)
            try:
                return await GeneralVerifier(pool).verify("q", "4", "four")
            finally:
                await pool.aclose()

        with pytest.raises(BackendsUnavailable, match="malformed answer to /v1/completions: answer is not a "
                                                      "completion"):
            asyncio.run(go())


def unusable_for(marker: str):
    """A verifier whose reply to questions containing ``marker`` has no content; every other answer is "No"."""
    return lambda i, request: verifier_reply(request, lambda prompt: None if marker in prompt else "Final Decision: No")


def reward_requests(n: int):
    from trm.rewards.compute import RewardRequest

    return [RewardRequest(f"so \\boxed{{{k + 100}}}", str(k), WEBINSTRUCT, f"prompt {k}", f"question Q{k}?")
            for k in range(n)]


def test_unusable_replies_count_toward_the_batch_limit_and_the_verdict_line(caplog):
    from trm.rewards.compute import RewardSettings, reward_batch_sync, verdict_counts

    with FaultServer(unusable_for("Q0?")) as fake:
        settings = RewardSettings.resolve(verifier_backends=fake.url, rm_backends=dead_backend(), deadline_s=10)
        with caplog.at_level("WARNING", logger="trm.rewards.correctness"):
            results = reward_batch_sync(reward_requests(20), settings)  # limit max(2, 0.1 x 20) = 2: one is logged
        assert [r.verdict.source for r in results] == ["verifier_unusable"] + ["llm_verifier"] * 19
        assert results[0].score == 0 and not results[0].verdict.correct
        line = verdict_counts(results)
        assert line.startswith("llm_verifier 19, verifier_unusable 1")
        assert "1 of 20 are checker faults (verifier_unusable + worker_error), counted toward the batch's limit" in line
        assert "1 of 20 answers marked wrong because their checker failed (verifier_unusable 1)" in caplog.text
    with FaultServer(unusable_for("?")) as fake:  # every reply empty: the deployment is broken
        settings = RewardSettings.resolve(verifier_backends=fake.url, rm_backends=dead_backend(), deadline_s=10)
        with pytest.raises(VerifierUnusable, match=r"failed on 20 of 20 answers \(verifier_unusable 20; limit 2"):
            reward_batch_sync(reward_requests(20), settings)


def test_gate_calls_the_verifier_only_for_configured_sources_after_rule_failure():
    with FaultServer(answering("Final Decision: Yes")) as fake:
        async def go():
            pool = BackendPool([fake.url], deadline=10)
            try:
                kwargs = dict(question="How many legs has a spider?", verifier=GeneralVerifier(pool))
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
        prompts = [prompt for r in fake.requests for prompt in verifier_prompts(r)]
    assert llm.correct and llm.source == "llm_verifier" and llm.also == ("math_verify", "prime_math")
    assert not rule_only.correct and rule_only.source == "math_verify"
    assert by_rule.correct and by_rule.source == "exact_match"
    assert custom.correct and custom.source == "llm_verifier"
    assert prompts == [general_verifier_input("How many legs has a spider?", "8", "eight")] * 2  # the two allowed


@pytest.fixture(scope="module")
def probed_chat_server(tiny_models, tmp_path_factory):
    """The real chat server with the verifier template, recording the prompt ids it gives the model."""
    log = tmp_path_factory.mktemp("probe") / "prompt-ids.jsonl"
    args = ["serve", "chat", "--model", str(tiny_models["chat"]), "--served-model-name", VERIFIER_NAME,
            "--chat-template", str(REPO / "chat_templates" / "verifier.jinja")]
    env = {"PYTHONPATH": str(PROMPT_PROBE), "TRM_TEST_PROMPT_LOG": str(log)}
    with running_server(args, env=env) as url:
        yield url, log


def test_the_served_verifier_model_gets_exactly_the_protocol_text(probed_chat_server, tiny_models):
    from transformers import AutoTokenizer

    url, log = probed_chat_server

    async def go():
        pool = BackendPool([url], deadline=120, request_timeout=120)
        try:
            verdicts = [await GeneralVerifier(pool, max_tokens=8, api=api).verify(QUESTION, TRUTH, STUDENT)
                        for api in ("completions", "chat")]
            with pytest.raises(BackendRequestError) as info:
                await GeneralVerifier(pool, model="not-served").verify(QUESTION, TRUTH, STUDENT)
            return verdicts, info.value
        finally:
            await pool.aclose()

    verdicts, error = asyncio.run(go())
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["chat"])
    logged = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    (completion_ids,) = [entry["ids"] for entry in logged if entry["route"] == "completions"]
    (chat_ids,) = [entry["ids"] for entry in logged if entry["route"] == "chat"]
    # Token ids, not a count: byte-level BPE ids decode back to the exact text, so one byte off changes them. The
    # plain template gives the text itself; a completions prompt gets the tokenizer's own special tokens, as vLLM
    # and sglang give it (this tiny tokenizer adds a BOS; the general-verifier's Qwen2.5 tokenizer adds none).
    assert chat_ids == tokenizer(VERIFIER_EXPECTED, add_special_tokens=False)["input_ids"]
    assert completion_ids == tokenizer(VERIFIER_EXPECTED)["input_ids"]
    assert tokenizer.decode(chat_ids) == tokenizer.decode(completion_ids, skip_special_tokens=True) == VERIFIER_EXPECTED
    # A random model writes no decision within 8 tokens: cut off, so unusable (a fault), not "wrong".
    for verdict in verdicts:
        assert not verdict.correct and verdict.source == "verifier_unusable" and "max_tokens 8" in verdict.detail
    assert error.status_code == 404 and "not-served" in error.message
