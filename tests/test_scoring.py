"""One TRM scorer (trm.scoring): `trm score`, `trm eval rm` and `trm eval bon` give the same scores for the same texts,
in process and through a real `trm serve reward` endpoint, and an endpoint scorer keeps one pool for its life."""

from __future__ import annotations

import json

import pytest

import trm.client
from trm.client import BackendPool, BackendRequestError
from trm.evaluation.bon import main as bon_main
from trm.scoring import Scorer, ScoringConfig
from trm.serving.score import main as score_main
from trm.traces import trm_input
from trm.training.eval_rm import main as eval_rm_main
from trm_testing.fault_server import FaultServer
from trm_testing.serving import ReferenceRewardModel
from trm_testing.training import one_torch_thread

QUESTIONS = [
    {"id": f"q{i}", "prompt": f"What is {i} + {i}? Think first.",
     "responses": [f"<think>{i} plus {i} is {2 * i}. " + "Check it again. " * i + f"</think>\\boxed{{{2 * i}}}",
                   f"<think>Guess {i}.</think>\\boxed{{{i}}}"],
     "answer": str(2 * i), "correct": [True, False]}  # graded already: bon skips its grading step
    for i in range(1, 4)
]
TEXTS = [trm_input(q["prompt"], r) for q in QUESTIONS for r in q["responses"]]


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _three_commands(tmp_path, source: list[str]) -> dict[str, list[float]]:
    """Scores of TEXTS (in order) as each command writes them, all run with the same scorer flags."""
    tag = source[0].strip("-")
    records = _write(tmp_path / "records.jsonl",
                     [{"prompt": q["prompt"], "response": r} for q in QUESTIONS for r in q["responses"]])
    pairs = _write(tmp_path / "pairs.jsonl",
                   [{"prompt": q["prompt"], "chosen": q["responses"][0], "rejected": q["responses"][1]} for q in QUESTIONS])
    generations = _write(tmp_path / "generations.jsonl", QUESTIONS)
    scored, pair_scores, bon_dir = tmp_path / f"{tag}.scored.jsonl", tmp_path / f"{tag}.pairs.jsonl", tmp_path / tag
    flags = [*source, "--batch-size", "2"]
    with one_torch_thread():
        assert score_main(["--input", str(records), "--output", str(scored), *flags]) == 0
        assert eval_rm_main(["--data", str(pairs), "--scores", str(pair_scores), *flags]) == 0
        assert bon_main(["--generations", str(generations), "--output-dir", str(bon_dir), "--selectors", "trm",
                         "--n-values", "1", "2", "--repeats", "1", *flags]) == 0
    rows = [json.loads(line) for line in pair_scores.read_text().splitlines()]
    return {
        "score": [json.loads(line)["trm_score"] for line in scored.read_text().splitlines()],
        "eval-rm": [s for row in rows for s in (row["chosen"], row["rejected"])],
        "bon": [s for line in (bon_dir / "scores_trm.jsonl").read_text().splitlines() for s in json.loads(line)["scores"]],
    }


def test_the_three_commands_agree_locally_and_through_a_server(tiny_models, reward_server, tmp_path):
    local = _three_commands(tmp_path, ["--trm-model", str(tiny_models["reward"])])
    remote = _three_commands(tmp_path, ["--trm-endpoint", reward_server])
    reference = ReferenceRewardModel(tiny_models["reward"])
    expected = [reference.score(text) for text in TEXTS]
    assert len(set(expected)) == len(TEXTS)  # distinct texts, distinct scores: a mix-up of order would show
    for command, scores in [*local.items(), *remote.items()]:
        assert scores == pytest.approx(expected, abs=1e-4), command


def _clients(pool: BackendPool) -> list:
    return [client for state in pool._loops.values() for client in state.clients()]


def test_an_endpoint_scorer_keeps_one_pool_and_its_connections_between_calls(reward_server):
    scorer = Scorer(ScoringConfig(trm_endpoint=reward_server, batch_size=2, concurrency=1))
    pool = scorer.pool
    first = scorer.score(TEXTS[:3])
    clients = _clients(pool)
    assert clients and not any(client.is_closed for client in clients)
    second = scorer.score(TEXTS)
    assert scorer.pool is pool and _clients(pool) == clients  # same pool, same HTTP clients (kept-alive connections)
    assert second[:3] == pytest.approx(first, abs=1e-5)
    assert sum(s["requests"] for s in pool.stats().values()) == 2 + 3  # requests of 2 texts, both calls counted
    scorer.close()
    assert all(client.is_closed for client in clients)
    with pytest.raises(RuntimeError, match="closed"):
        scorer.score(TEXTS[:1])


def test_trm_score_builds_one_pool_for_the_whole_run(reward_server, tmp_path, monkeypatch):
    built: list[BackendPool] = []

    class CountedPool(BackendPool):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(trm.client, "BackendPool", CountedPool)
    records = _write(tmp_path / "records.jsonl", [{"prompt": "p", "response": text} for text in TEXTS])
    # one text per request and one request in flight: every record is its own scoring call
    assert score_main(["--input", str(records), "--output", str(tmp_path / "out.jsonl"), "--trm-endpoint",
                       reward_server, "--batch-size", "1", "--concurrency", "1"]) == 0
    assert len(built) == 1
    assert sum(s["requests"] for s in built[0].stats().values()) == len(TEXTS)
    assert built[0]._loops == {}  # closed at the end of the run


def test_the_api_key_comes_from_the_reward_role_and_a_rejection_raises(reward_server, monkeypatch):
    def gate(index, request):  # a key-checking proxy in front of the real server
        if request.headers.get("authorization") != "Bearer secret":
            return ("status", 401, {"error": {"message": "wrong API key"}})
        return ("forward",)

    with FaultServer(gate, target=reward_server) as proxy:
        monkeypatch.delenv("TRM_API_KEY", raising=False)
        with Scorer(ScoringConfig(trm_endpoint=proxy.url)) as scorer, pytest.raises(BackendRequestError, match="401"):
            scorer.score(TEXTS[:1])
        monkeypatch.setenv("TRM_API_KEY", "secret")
        with Scorer(ScoringConfig(trm_endpoint=proxy.url)) as scorer:
            from_env = scorer.score(TEXTS[:2])
        with Scorer(ScoringConfig(trm_endpoint=proxy.url, api_key="other")) as scorer, \
                pytest.raises(BackendRequestError, match="401"):  # an explicit key wins over the environment
            scorer.score(TEXTS[:1])
    with Scorer(ScoringConfig(trm_endpoint=reward_server)) as scorer:
        assert from_env == pytest.approx(scorer.score(TEXTS[:2]), abs=1e-6)


def test_a_scorer_needs_exactly_one_source():
    for config in (ScoringConfig(), ScoringConfig(trm_endpoint="127.0.0.1:1", trm_model="x")):
        with pytest.raises(ValueError, match="exactly one"):
            Scorer(config)
