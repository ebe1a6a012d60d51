"""Rule check (exact match + math-verify in time-bounded workers), length rule and the verification gate."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest
from trm_testing.fault_server import dead_backend

from trm.client import BackendPool, BackendsUnavailable
from trm.rewards.correctness import (
    Verdict,
    VerifyConfig,
    clean_ground_truth,
    rule_check,
    rule_check_batch,
    too_long,
    verify_response,
)
from trm.rewards.llm_verifier import GeneralVerifier
from trm.rewards.math_rules import normalise_answer
from trm.rewards.worker_pool import WorkerPool, get_pool, shutdown_pools

# (answer, ground truth, equivalent)
TABLE = [
    ("0.5", "\\frac{1}{2}", True),  # fraction vs decimal
    ("\\dfrac{3}{4}", "0.75", True),
    ("\\frac12", "1/2", True),
    ("1.50", "1.5", True),
    ("$\\frac{1}{2}$", "0.5", True),  # inline math delimiters
    ("[1, 2)", "[1,2)", True),  # intervals
    ("[1,2)", "x \\in [1, 2)", True),
    ("(-\\infty, 3]", "(-\\infty,3]", True),
    ("\\{2, 1, 3\\}", "\\{1,2,3\\}", True),  # sets, order does not matter
    ("\\{3,2,1\\}", "1, 2, 3", True),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{\\sqrt 2}{2}", True),  # LaTeX spacing and sizing
    ("2\\,\\pi", "2\\pi", True),
    ("\\left( 1, 2 \\right)", "(1,2)", True),
    ("10 \\text{ cm}", "10", True),  # units
    ("5\\ \\text{m/s}", "5", True),
    ("10\\%", "10", True),
    ("x^2+1", "1+x^2", True),  # algebraic equivalence
    ("\\sqrt{8}", "2\\sqrt{2}", True),
    ("x = 2", "2", True),
    ("\\text{True}", "True", True),
    ("0.333", "\\frac{1}{3}", False),
    ("(1,2)", "[1,2]", False),
    ("[1,2)", "(1,2]", False),
    ("\\{1,2\\}", "\\{1,2,3\\}", False),
    ("3.14", "\\pi", True),  # the release's prime_math fallback also tries pi = 3.14; kept so rewards match the paper's
    ("1+x^2", "1", False),  # a fragment of the answer must not match
    ("2x+3", "2", False),
    ("-2", "2", False),
    ("10 \\text{ cm}", "100", False),
    ("\\frac{1}{2}", "\\frac{1}{3}", False),
]

# 10^(10^10) has ten billion digits: sympy would grind on it for hours.
PATHOLOGICAL = "10^{10^{10}}"


def test_rule_check_table():
    verdicts = rule_check_batch([a for a, _, _ in TABLE], [g for _, g, _ in TABLE])
    wrong = [(a, g, v) for (a, g, expected), v in zip(TABLE, verdicts) if v.correct != expected]
    assert not wrong, wrong
    for (answer, _, _), verdict in zip(TABLE, verdicts):
        assert verdict.answer == answer
        assert verdict.source in ("exact_match", "math_verify", "prime_math", "numeric")
    assert {v.source for v in verdicts} == {"exact_match", "math_verify", "prime_math", "numeric"}  # ("-2", "2")


def test_exact_match_normalisation_is_light():
    assert normalise_answer(" $\\left[ 1,\\; 2 \\right)$. ") == "[1,2)"
    assert normalise_answer("\\text{Yes}") == "yes"
    assert normalise_answer("\\dfrac{1}{2}") == normalise_answer("\\frac{1}{2}")
    assert normalise_answer("12") != normalise_answer("1 2 3")


def test_no_answer_and_boxed_ground_truth():
    assert rule_check(None, "3") == Verdict(False, "no_answer", None, "no final answer found in the response")
    assert rule_check("   ", "3").source == "no_answer"
    assert clean_ground_truth("The answer is \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert rule_check("0.5", "\\boxed{\\frac{1}{2}}").correct


def test_pathological_input_times_out_and_the_pool_recovers():
    pool = get_pool("trm.rewards.math_rules:check_item")
    replaced_before = pool.replaced
    started = time.monotonic()
    verdicts = rule_check_batch([PATHOLOGICAL, "0.5", "0.7"], ["5", "\\frac{1}{2}", "0.8"], timeout_s=1.5)
    assert time.monotonic() - started < 30  # finished instead of hanging on sympy
    assert verdicts[0] == Verdict(False, "timeout", PATHOLOGICAL, verdicts[0].detail, ("prime_math",))
    assert "math_verify: no result within 1.5s" in verdicts[0].detail  # prime_math then had its own turn
    assert verdicts[1].correct and not verdicts[2].correct  # the rest of the batch is unaffected
    assert pool.replaced == replaced_before + 1
    assert rule_check("x^2+1", "1+x^2").correct  # the replacement worker serves the next call


def test_rule_check_from_non_main_threads_concurrently():
    results: dict[int, list[Verdict]] = {}

    def check(index: int) -> None:
        results[index] = rule_check_batch(["0.5", "\\{1,2\\}", "x = 3"], ["\\frac{1}{2}", "\\{2,1\\}", "4"])

    threads = [threading.Thread(target=check, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [0, 1, 2, 3]
    for verdicts in results.values():
        assert [v.correct for v in verdicts] == [True, True, False]
        assert verdicts[0].source == "math_verify"


def test_rule_check_inside_a_daemonic_worker_process():
    import multiprocessing

    from trm_testing.rule_check_workers import rule_check_in_child

    with multiprocessing.get_context("spawn").Pool(1) as processes:  # pool workers are daemonic
        result = processes.apply(rule_check_in_child, ([("0.5", "\\frac12"), (PATHOLOGICAL, "5")],))
    assert result == [(True, "math_verify"), (False, "timeout")]


def test_batch_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 answers but 1 ground truths"):
        rule_check_batch(["1", "2"], ["1"])


@pytest.fixture
def fault_pool(monkeypatch):
    pool = WorkerPool("trm_testing.rule_check_workers:echo_or_fault", workers=2)
    yield pool
    pool.shutdown()


def test_worker_pool_crash_hang_and_error_are_reported_per_item(fault_pool):
    outcomes = fault_pool.map(["a", "crash", "hang", "raise", "b"], timeout_s=1.0)
    assert [o.status for o in outcomes] == ["ok", "crash", "timeout", "error", "ok"]
    assert outcomes[0].value["echo"] == "a" and outcomes[4].value["echo"] == "b"
    assert "exit code 3" in outcomes[1].detail
    assert "asked to raise" in outcomes[3].detail
    assert fault_pool.replaced == 2
    again = fault_pool.map(["c", "d", "e"], timeout_s=5.0)
    assert [o.value["echo"] for o in again] == ["c", "d", "e"]
    assert len({o.value["pid"] for o in again}) <= 2  # persistent workers, not a process per item


def _running(pid: int) -> bool:
    """Is ``pid`` alive (a zombie waiting for its reaper counts as dead)?"""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_timed_out_worker_is_killed_with_the_helpers_it_forked(monkeypatch, tmp_path):
    # verl's prime_math forks a helper per sympy comparison; killing only the worker would leave it spinning.
    monkeypatch.setenv("TRM_TEST_CRASH_DIR", str(tmp_path))
    pool = WorkerPool("trm_testing.rule_check_workers:echo_or_fault", workers=1)
    try:
        assert [o.status for o in pool.map(["fork-hang", "a"], timeout_s=2.0)] == ["timeout", "ok"]
    finally:
        pool.shutdown()
    helper = int((tmp_path / "helper").read_text())
    give_up = time.monotonic() + 10.0
    while _running(helper) and time.monotonic() < give_up:
        time.sleep(0.05)  # polling with a deadline: SIGKILL is delivered asynchronously
    assert not _running(helper)


def test_workers_outlive_the_thread_that_needed_them(monkeypatch):
    # Workers die with their parent (PR_SET_PDEATHSIG), which Linux takes to be the starting *thread*.
    made: list[WorkerPool] = []

    def in_thread():
        made.append(WorkerPool("trm_testing.rule_check_workers:echo_or_fault", workers=2))
        made[0].map(["hang", "a"], timeout_s=1.0)  # the replacement worker is started from here too

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(60)
    pool = made[0]
    try:
        workers = pool._idle + pool._starting
        give_up = time.monotonic() + 1.0
        while time.monotonic() < give_up and all(w.proc.poll() is None for w in workers):
            time.sleep(0.05)  # polling with a deadline: a wrongly tied worker dies within this second
        assert [w.proc.poll() for w in workers] == [None, None]
        assert [o.status for o in pool.map(["b", "c", "d"], timeout_s=5.0)] == ["ok"] * 3
        assert pool.replaced == 1
    finally:
        pool.shutdown()


@pytest.fixture
def crashing_rule_check(monkeypatch):
    """rule_check_batch with workers that die on request (see trm_testing.rule_check_workers.check_or_crash)."""
    import trm.rewards.correctness as correctness

    monkeypatch.setattr(correctness, "RULE_CHECK_FUNCTION", "trm_testing.rule_check_workers:check_or_crash")
    yield lambda answers, golds, **kw: rule_check_batch(answers, golds, timeout_s=10.0, workers=2, **kw)
    get_pool("trm_testing.rule_check_workers:check_or_crash", 2).shutdown()


def test_answer_whose_worker_dies_once_is_retried_and_judged(crashing_rule_check, tmp_path, monkeypatch):
    marker = tmp_path / "m"
    monkeypatch.setenv("TRM_TEST_CRASH_DIR", str(tmp_path))  # read by the workers the call starts
    verdicts = crashing_rule_check(["once|m|0.5", "0.25", "0.7"], ["\\frac{1}{2}", "\\frac{1}{4}", "0.8"])
    assert marker.exists()  # the first attempt did kill its worker
    assert [(v.correct, v.source) for v in verdicts] == [(True, "math_verify"), (True, "math_verify"), (False, "math_verify")]


def test_answer_that_kills_two_workers_is_wrong_with_worker_error(crashing_rule_check, caplog):
    answers = ["always|-|0.5"] + [f"{k}/4" for k in range(1, 10)]
    with caplog.at_level("WARNING", logger="trm.rewards.correctness"):
        verdicts = crashing_rule_check(answers, ["\\frac{1}{2}"] + [f"{k / 4}" for k in range(1, 10)])
    assert (verdicts[0].correct, verdicts[0].source) == (False, "worker_error")
    assert "exit code 4" in verdicts[0].detail and "retry" in verdicts[0].detail
    assert all(v.correct and v.source == "math_verify" for v in verdicts[1:])  # the rest of the batch is judged
    assert "1 of 10 answers marked wrong because their checker failed (worker_error 1)" in caplog.text


def test_systematic_worker_deaths_raise_instead_of_returning_verdicts(crashing_rule_check):
    from trm.rewards.correctness import RuleCheckUnavailable, worker_error_limit

    assert worker_error_limit(10) == 2 and worker_error_limit(256) == 26 and worker_error_limit(1) == 2
    answers = ["always|-|1", "always|-|2"] + [str(k) for k in range(3, 11)]
    with pytest.raises(RuleCheckUnavailable, match="failed on 2 of 10 answers"):
        crashing_rule_check(answers, [f"{k}.0" for k in range(1, 11)])
    # a higher tolerance is a setting
    verdicts = crashing_rule_check(answers, [f"{k}.0" for k in range(1, 11)], max_worker_error_fraction=0.3)
    assert [v.source for v in verdicts[:2]] == ["worker_error"] * 2 and all(v.correct for v in verdicts[2:])
    with pytest.raises(ValueError, match="max_worker_error_fraction"):
        VerifyConfig(max_worker_error_fraction=1.5)


def test_worker_pool_start_failure_is_an_error_not_a_verdict():
    pool = WorkerPool("no_such_module_anywhere:f", workers=1)
    try:
        with pytest.raises(RuntimeError, match="no_such_module_anywhere"):
            pool.map(["x"], timeout_s=1.0)
    finally:
        pool.shutdown()


def test_shutdown_then_fresh_pool():
    first = get_pool("trm.rewards.math_rules:check_item")
    shutdown_pools()
    assert rule_check("2", "2.0").correct
    assert get_pool("trm.rewards.math_rules:check_item") is not first


@pytest.mark.parametrize(
    "answer, gold, expected",
    [("12345678901", "1", True), ("1234567890", "1", False), ("a" * 15, "b" * 10, False), ("a" * 25, "b" * 10, True)],
)
def test_length_rule(answer, gold, expected):
    assert too_long(answer, gold) is expected


def dead_pool(deadline: float = 1.0) -> BackendPool:
    return BackendPool(dead_backend(), deadline=deadline)


WEBINSTRUCT = "TIGER-Lab/WebInstruct-verified"


def test_verify_response_rule_path_never_calls_the_verifier():
    # The verifier backend is dead: touching it would raise BackendsUnavailable.
    async def go():
        pool = dead_pool()
        kwargs = dict(question="q", verifier=GeneralVerifier(pool))
        right = await verify_response("so \\boxed{0.5}", "\\frac12", data_source=WEBINSTRUCT, **kwargs)
        none = await verify_response("no idea", "3", data_source=WEBINSTRUCT, **kwargs)
        long = await verify_response("\\boxed{3 apples and 4 pears, all in one basket}", "7", data_source=WEBINSTRUCT,
                                     **kwargs)
        other = await verify_response("\\boxed{8}", "7", data_source="math", **kwargs)
        await pool.aclose()
        return right, none, long, other

    right, none, long, other = asyncio.run(go())
    assert right.correct and right.source == "math_verify" and right.answer == "0.5"
    assert none.source == "no_answer" and not none.correct
    assert long.source == "length_rule" and not long.correct
    assert other.source == "numeric" and not other.correct  # two plain integers: settled without a worker


def test_verify_response_verifier_failure_raises_not_zero():
    async def go():
        pool = dead_pool()
        try:
            return await verify_response("\\boxed{8}", "7", data_source=WEBINSTRUCT, question="q",
                                         verifier=GeneralVerifier(pool))
        finally:
            await pool.aclose()

    with pytest.raises(BackendsUnavailable):
        asyncio.run(go())


def test_verify_response_uses_a_given_rule_verdict_and_config():
    given = Verdict(False, "math_verify", "8", "from a batch")
    config = VerifyConfig(llm_data_sources={"my-source"})
    verdict = asyncio.run(
        verify_response("ignored", "7", data_source=WEBINSTRUCT, question="q", verifier=None, config=config, rule_verdict=given)
    )
    assert verdict is given
    with pytest.raises(ValueError, match="rule_timeout_s"):
        VerifyConfig(rule_timeout_s=0)
    assert VerifyConfig(llm_data_sources="a, b").llm_data_sources == {"a", "b"}
    assert VerifyConfig().llm_data_sources == {WEBINSTRUCT}


def test_numbers_are_checked_as_text():
    assert [v.correct for v in rule_check_batch([5, 0.5], [5, "\\frac{1}{2}"])] == [True, True]


# -- the rule check cannot stall a batch (issue 11.8) -------------------------------------------------------------
@pytest.fixture
def start_fault(monkeypatch, tmp_path):
    """rule_check_batch with workers whose function module hangs or is killed while they import it."""
    import trm.rewards.correctness as correctness

    monkeypatch.setenv("TRM_TEST_CRASH_DIR", str(tmp_path))
    monkeypatch.setattr(correctness, "RULE_CHECK_FUNCTION", "trm_testing.rule_check_start_fault:check")

    def run(fault: str, **kwargs):
        monkeypatch.setenv("TRM_TEST_START_FAULT", fault)
        return rule_check_batch(["0.5", "0.7"], ["\\frac12", "0.8"], workers=2, **kwargs)

    yield run
    get_pool("trm_testing.rule_check_start_fault:check", 2).shutdown()
    for pid in (tmp_path / "pids").read_text().split():  # every worker started was killed and reaped
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)


def test_workers_hanging_while_importing_end_the_batch_at_its_deadline(start_fault):
    from trm.rewards.correctness import RuleCheckUnavailable

    with pytest.raises(RuleCheckUnavailable, match=r"could not run within its batch deadline of 3s: 0 of 2 items done, .*2 workers still "
                                                   r"starting .*hung while importing trm_testing.rule_check_start_fault:check"):
        start_fault("hang", deadline_s=3.0)


def test_workers_killed_while_importing_raise_instead_of_being_replaced_forever(start_fault):
    from trm.rewards.correctness import RuleCheckUnavailable
    from trm.rewards.worker_pool import WorkerPool

    deaths = WorkerPool.MAX_START_DEATHS_PER_WORKER * 2
    with pytest.raises(RuleCheckUnavailable, match=rf"{deaths} workers for trm_testing.rule_check_start_fault:check died while "
                                                   r"starting and none became ready \(killed by signal 9\)"):
        start_fault("kill")  # no deadline given: the default one is minutes away, the death count ends it


def test_the_batch_deadline_is_a_setting_with_a_computed_default():
    from trm.rewards.correctness import rule_batch_deadline

    assert rule_batch_deadline(256, 1.5, 32) == 60 + 4 * 8 * 1.5
    assert VerifyConfig().rule_timeout_s == 1.5 and VerifyConfig().rule_batch_deadline_s is None
    with pytest.raises(ValueError, match="rule_batch_deadline_s"):
        VerifyConfig(rule_batch_deadline_s=0)


# -- text handling is bounded before any work (issue 11.10) -------------------------------------------------------
@pytest.mark.timeout(60)  # peeling "$$" by copying took seconds per megabyte, growing with its square
def test_huge_answers_are_bounded_before_any_work(monkeypatch):
    import trm.rewards.correctness as correctness
    from trm.traces import extract_answer

    monkeypatch.setattr(correctness, "RULE_CHECK_FUNCTION", "no_such_module_anywhere:f")  # a worker would fail
    dollars = extract_answer("\\boxed{" + "$" * 4_000_000 + "}")
    verdicts = rule_check_batch([dollars, "x" * 4_000_000], ["5", "5"])
    assert [v.source for v in verdicts] == ["length_guard"] * 2  # judged on the main process without a worker
    assert normalise_answer("$" * 4_000_000) == ""
    assert normalise_answer("\\text{" + "$" * 4_000_000 + "1}") == "$" * 4_000_000 + "1"
    assert normalise_answer(" $$ \\text{ 5 } $$ . ") == "5"


def test_answer_format_is_a_setting_the_verdict_follows_and_names():
    with pytest.raises(ValueError, match="answer_format must be 'strict' or 'lenient'"):
        VerifyConfig(answer_format="loose")

    async def go(config):
        return await verify_response("So the total is 12 apples.", "12", data_source="math", question="q", config=config)

    strict, lenient = asyncio.run(go(VerifyConfig())), asyncio.run(go(VerifyConfig(answer_format="lenient")))
    assert (strict.correct, strict.source, strict.rung) == (False, "no_answer", "none")  # RL default: the release's
    assert (lenient.correct, lenient.answer, lenient.rung) == (True, "12", "tail")  # what math-verify extracted


def test_every_box_of_a_multi_part_ground_truth_is_compared():
    assert clean_ground_truth("(a) \\boxed{3} (b) \\boxed{12}") == "3, 12"
    verdicts = rule_check_batch(["3, 12", "12"], ["(a) \\boxed{3} (b) \\boxed{12}"] * 2)
    assert [v.correct for v in verdicts] == [True, False]  # only the last box used to count: "12" was right


def _integer_pairs(count: int, seed: int = 13) -> list[tuple[str, str]]:
    """Random plain-integer (answer, ground truth) pairs of the shapes a batch holds: small and 15-digit values,
    off by one, by a sign, by a factor of 100 (prime_math's percentage reading), within its 1e-4 tolerance."""
    import random

    rng = random.Random(seed)
    pairs = []
    for k in range(count):
        g = rng.choice([rng.randint(-20, 20), rng.randint(0, 10**6), rng.randint(10**13, 10**15 - 1)])
        a = [g + rng.choice([-1, 1]), -g, g * 100, rng.randint(-10**6, 10**6), g + max(1, abs(g) // 10**5),
             rng.randint(10**14, 10**15 - 1)][k % 6]
        pairs.append((str(a) if k % 5 else f" {a} ", str(g)))
    return pairs


def test_plain_integer_fast_path_agrees_with_the_two_worker_stages(monkeypatch):
    from trm.rewards import correctness

    pairs = _integer_pairs(48) + [("007", "7"), ("-0", "0"), ("500", "5"), ("5", "500"), ("100001", "100000"),
                                  ("0", "1"), ("3", "-3"), ("1000000000000001", "1000000000000002")]  # 16 digits
    answers, golds = [a for a, _ in pairs], [g for _, g in pairs]
    fast = rule_check_batch(answers, golds)
    monkeypatch.setattr(correctness, "_integer_mismatch", lambda answer, ground_truth: None)
    workers = rule_check_batch(answers, golds)
    assert [v.correct for v in fast] == [v.correct for v in workers], [
        (p, f, w) for p, f, w in zip(pairs, fast, workers) if f.correct != w.correct]
    settled = [p for p, v in zip(pairs, fast) if v.source == "numeric"]
    assert len(settled) >= 30  # most wrong pairs never reach a worker
    assert ("0", "1") in settled and ("3", "-3") in settled
    by_pair = dict(zip(pairs, fast))
    # equal values written differently, a factor of 100 and the tolerance are the workers' to decide, as before
    for pair in [("007", "7"), ("-0", "0"), ("500", "5"), ("5", "500"), ("100001", "100000"),
                 ("1000000000000001", "1000000000000002")]:
        assert by_pair[pair].source != "numeric", (pair, by_pair[pair])
    assert by_pair[("007", "7")].correct and by_pair[("500", "5")].correct  # (math-verify; prime_math's percent)
    assert not any(v.source == "numeric" for v in workers)
    assert by_pair[("0", "1")].answer == "0" and "plain integers" in by_pair[("0", "1")].detail


def test_plain_integer_mismatch_still_goes_to_the_llm_verifier_for_its_data_sources():
    from trm_testing.fault_server import FaultServer, verifier_reply

    with FaultServer(lambda i, req: verifier_reply(req, lambda prompt: "Final Decision: Yes")) as fake:
        async def go():
            pool = BackendPool([fake.url], deadline=10)
            try:
                kwargs = dict(question="How many legs has a spider?", verifier=GeneralVerifier(pool))
                return (await verify_response("So \\boxed{6}", "8", data_source=WEBINSTRUCT, **kwargs),
                        await verify_response("So \\boxed{6}", "8", data_source="numina_math", **kwargs))
            finally:
                await pool.aclose()

        llm, rule_only = asyncio.run(go())
        assert len(fake.requests) == 1
    assert (llm.correct, llm.source, llm.also) == (True, "llm_verifier", ("numeric",))
    assert (rule_only.correct, rule_only.source, rule_only.answer) == (False, "numeric", "6")
