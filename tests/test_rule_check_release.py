"""Our rule check against the original release's (reference/protocol.md section 4): where they agree, and each case
where they disagree with the reason ours is right."""

from __future__ import annotations

import asyncio
import json

from trm_testing.fault_server import FaultServer, dead_backend, verifier_prompts, verifier_reply

from trm.client import BackendPool
from trm.rewards.correctness import VerifyConfig, rule_check_batch, verify_response
from trm.rewards.llm_verifier import GeneralVerifier

WEBINSTRUCT = "TIGER-Lab/WebInstruct-verified"


def release_math_verify_accepts(answer: str, ground_truth: str) -> bool:
    """The release's step 4: both sides parsed as ``$x$`` and bare, any pair verified (small trusted inputs only)."""
    from math_verify import parse, verify

    forms = lambda text: [p for p in (parse(f"${text}$", parsing_timeout=None), parse(text, parsing_timeout=None)) if p]
    return any(verify(g, a, timeout_seconds=None) for g in forms(ground_truth) for a in forms(answer))


def release_prime_math_accepts(answer: str, ground_truth: str) -> bool:
    from verl.utils.reward_score import prime_math

    return bool(prime_math.compute_score(answer, ground_truth)[0])


# Both accept, and ours through the step named.
AGREE_ACCEPT = [
    ("8 legs", "8", "math_verify"),  # only the bare form reads it (as $x$ it is 8*l*e*g*s): kept, it read everything
    ("5 apples", "5", "math_verify"),
    ("x = 2", "2", "math_verify"),
    ("10\\%", "0.1", "prime_math"),  # percentages: only prime_math
    ("50", "0.5", "prime_math"),  # prime_math also reads a number as a percentage of the other (the release's rule)
    ("3.14", "\\pi", "prime_math"),  # prime_math tries pi = 3.14
    ("1.00001", "1", "prime_math"),  # relative tolerance 1e-4
    ("6.283", "2\\pi", "prime_math"),
]

# The release accepts these through a bare-form fragment: math-verify's bare parse takes the first (or last) number
# it finds, "1" out of "1+x^2", and the release verifies any pair. A number picked out of a larger expression is
# not the answer, so ours (which uses a bare parse only when it read the whole text but words) says wrong.
DISAGREE_FRAGMENT = [
    ("1+x^2", "1"),
    ("2x+3", "2"),
    ("2 + 3i", "3"),
    ("1, 2, 3", "3"),
    ("2", "2x+3"),  # the same on the ground truth's side
    ("f(x) = 2x+1", "2"),
]


def test_cases_both_accept():
    verdicts = rule_check_batch([a for a, _, _ in AGREE_ACCEPT], [g for _, g, _ in AGREE_ACCEPT])
    for (answer, gold, source), verdict in zip(AGREE_ACCEPT, verdicts):
        assert release_math_verify_accepts(answer, gold) or release_prime_math_accepts(answer, gold), answer
        assert (verdict.correct, verdict.source) == (True, source), (answer, verdict)


def test_fragments_the_release_accepts_are_wrong_here():
    verdicts = rule_check_batch([a for a, _ in DISAGREE_FRAGMENT], [g for _, g in DISAGREE_FRAGMENT])
    for (answer, gold), verdict in zip(DISAGREE_FRAGMENT, verdicts):
        assert release_math_verify_accepts(answer, gold), f"the release no longer accepts {answer!r} for {gold!r}"
        assert not release_prime_math_accepts(answer, gold), answer  # the disagreement is math-verify's bare form
        assert (verdict.correct, verdict.source) == (False, "math_verify"), (answer, verdict)


def test_length_guard_comes_before_every_other_check_as_in_the_release():
    long_half = "0.5" + "0" * 60  # equal to 1/2, but 52 characters longer than the ground truth
    (guarded, kept) = rule_check_batch([long_half, "0.5" + "0" * 57], ["\\frac{1}{2}", "\\frac{1}{2}"])
    assert (guarded.correct, guarded.source) == (False, "length_guard") and "more than 50 apart" in guarded.detail
    assert (kept.correct, kept.source) == (True, "math_verify")  # 49 characters apart: checked
    short = rule_check_batch(["x"], ["an answer written out at length " * 3])[0]  # the guard is two-sided
    assert short.source == "length_guard"


def test_a_guarded_answer_still_reaches_the_verifier_unless_the_length_rule_stops_it():
    gold = "The velocity doubles while the kinetic energy grows by a factor of four, since it goes with the square."
    with FaultServer(lambda i, req: verifier_reply(req, lambda prompt: "Final Decision: Yes")) as fake:
        async def go():
            pool = BackendPool([fake.url], deadline=10)
            try:
                kwargs = dict(data_source=WEBINSTRUCT, question="q", verifier=GeneralVerifier(pool))
                short = await verify_response("\\boxed{v doubles, E x4}", gold, **kwargs)  # much shorter: the LLM decides
                long = await verify_response("\\boxed{" + "x" * 60 + "}", "7", **kwargs)  # much longer: length rule
                return short, long
            finally:
                await pool.aclose()

        short, long = asyncio.run(go())
        asked = [prompt for r in fake.requests for prompt in verifier_prompts(r)]
    assert (short.correct, short.source, short.also) == (True, "llm_verifier", ("length_guard",))
    assert len(asked) == 1 and "### Student Answer: v doubles, E x4\n\n" in asked[0]
    assert (long.correct, long.source, long.also) == (False, "length_guard", ("length_rule",))  # the first one stays


def test_a_timeout_is_not_overwritten_by_the_length_rule():
    # 10^(10^10) hangs sympy; it is 12 characters against 1, so the length rule applies as well (issue 11.7).
    async def go():
        pool = BackendPool(dead_backend(), deadline=1)  # a verifier call would raise: the length rule skips it
        try:
            return await verify_response("\\boxed{10^{10^{10}}}", "5", data_source=WEBINSTRUCT, question="q",
                                         verifier=GeneralVerifier(pool), config=VerifyConfig(rule_timeout_s=1.0))
        finally:
            await pool.aclose()

    verdict = asyncio.run(go())
    assert (verdict.correct, verdict.source) == (False, "timeout")
    assert verdict.also[-1] == "length_rule" and "length rule: answer has 12 characters" in verdict.detail
    assert "no result within 1s" in verdict.detail


def test_a_plain_not_equal_is_settled_by_the_length_rule_and_both_are_reported():
    async def go():
        return await verify_response("\\boxed{3 apples and 4 pears, all in one basket}", "7", data_source=WEBINSTRUCT,
                                     question="q", verifier=None)

    verdict = asyncio.run(go())
    assert (verdict.correct, verdict.source, verdict.also) == (False, "length_rule", ("math_verify", "prime_math"))


def test_prime_math_in_workers_is_verls_module_without_verls_heavy_imports(monkeypatch):
    """The workers load verl's own prime_math files, not torch and transformers (7 s and 300 MB per worker)."""
    from trm.rewards.worker_pool import WorkerPool

    pool = WorkerPool("trm.rewards.math_rules:check_item", workers=1)
    try:
        (outcome,) = pool.map([["3.14", "\\pi", "prime_math"]], timeout_s=30)
    finally:
        pool.shutdown()
    assert outcome.status == "ok" and outcome.value["correct"] is release_prime_math_accepts("3.14", "\\pi") is True
    probe = WorkerPool("trm_testing.rule_check_workers:loaded_modules", workers=1)  # warms up as the rule check's workers do
    try:
        (loaded,) = probe.map([["verl.utils.reward_score.prime_math", "math_verify", "torch", "transformers"]], 30)
    finally:
        probe.shutdown()
    assert loaded.value == {"verl.utils.reward_score.prime_math": True, "math_verify": True, "torch": False,
                            "transformers": False}


# Answer shapes the release misjudges (issue 14, with real graders' labels in tests/data/answer_cases.jsonl): ours
# says wrong, the release accepts. (answer, ground truth, ours' source, why ours is right)
DISAGREE_SHAPES = [
    ("10 \\text{ m}", "10 \\text{ cm}", "units", "math-verify drops both units and compares 10 with 10"),
    ("(2,1)", "\\{1,2\\}", "math_verify", "an ordered pair is not the set; compared in the set's written order"),
    ("2^{10}.", "2", "math_verify", "math-verify's inline form reads 2 out of 2^{10}. (sentence period)"),
    ("1 + \\frac{1}{\\mathrm{e}}", "1 - \\frac{1}{\\mathrm{e}}", "math_verify", "math-verify reads both as 1"),
]


def test_shapes_the_release_accepts_wrongly_are_wrong_here():
    verdicts = rule_check_batch([a for a, *_ in DISAGREE_SHAPES], [g for _, g, *_ in DISAGREE_SHAPES])
    for (answer, gold, source, why), verdict in zip(DISAGREE_SHAPES, verdicts):
        assert release_math_verify_accepts(answer, gold) or release_prime_math_accepts(answer, gold), (answer, why)
        assert (verdict.correct, verdict.source) == (False, source), (answer, why, verdict)


def test_a_multi_part_ground_truth_is_not_its_last_box():
    # the release keeps the last box of the ground truth and would accept "4" for "\boxed{3}, \boxed{4}"
    (last_only, both) = rule_check_batch(["4", "3, 4"], ["\\boxed{3}, \\boxed{4}"] * 2)
    assert (last_only.correct, both.correct) == (False, True)
