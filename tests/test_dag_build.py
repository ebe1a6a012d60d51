"""DAG construction against a scripted OpenAI-compatible judge on a loopback port."""

import asyncio
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from trm_testing.judge import ScriptedJudge
from trm.dag.build import DagConfig, build_dag, vote
from trm.dag.graph import (
    ACTIONS,
    Dag,
    DagState,
    Decision,
    apply_decision,
    check_decision,
    merged_view,
    validate_dag,
    validate_rules,
)
from trm.llm.client import ChatClient, ChatConfig


def run(coro):
    return asyncio.run(coro)


def client(judge: ScriptedJudge) -> ChatClient:
    return ChatClient(judge.url, "scripted", config=ChatConfig(backoff_base=0.01))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(ACTIONS), st.lists(st.integers(0, 40), max_size=4)), max_size=40))
def test_rules_keep_the_graph_valid_for_any_decision_sequence(proposals):
    """Only decisions that pass check_decision are applied (others fall back to continue), as the builder does."""
    state = DagState()
    dag = Dag(steps=["s"], parents=[[]], actions=["root"])
    for step, (action, previous) in enumerate(proposals, start=1):
        decision = Decision(action, tuple(previous) if action != "continue" else ())
        if check_decision(decision, state.pool()) is not None:
            decision = Decision("continue")
        dag.steps.append("s")
        dag.parents.append(apply_decision(state, step, decision))
        dag.actions.append(decision.action)
        assert state.main_path[0] == 0 and state.main_path[-1] == step
        assert not set(state.open_branches) & set(state.main_path)
    assert validate_rules(dag) == []


def test_vote_plurality_and_tie_order():
    c, b1, b2, m = (
        Decision("continue"),
        Decision("backtrack", (1,)),
        Decision("backtrack", (2,)),
        Decision("merge", (1, 3)),
    )
    assert vote([b1, c, b1, c]) == c  # tie continue/backtrack -> continue
    assert vote([b1, m, m, b2]) == b2  # tie backtrack/merge -> backtrack; tie between targets -> nearest
    assert vote([m, m, c]) == m
    assert vote([]) is None


def random_policy(seed: int):
    """Answers that are valid, invalid (wrong ids, bad marker) or garbage, at random."""

    def policy(req):
        rng = random.Random(f"{seed}:{req.call}:{req.choice}")
        if req.kind != "structure":
            return "not a structuring request"
        main, leaves, step = req.main_path, req.open_leaves, req.step
        kind = rng.random()
        if kind < 0.15:
            return rng.choice(
                ["I am not sure.", "<|action|>jump", "<|action|>backtrack", "<|action|> merge <|previous|>"]
            )
        if kind < 0.45:
            return "Carry on.\n<|action|>continue"
        if kind < 0.8:
            target = rng.choice(main + [step, step + 3])  # sometimes the last step or an unknown id
            return f"Go back.\n<|action|>backtrack <|previous|>{target}"
        pool = main + leaves + [step + 1]
        ids = rng.sample(pool, k=min(len(pool), rng.randint(1, 3)))
        return f"Join them.\n<|action|>MERGE <|previous|>{','.join(map(str, ids))}"

    return policy


def test_invariants_on_many_random_traces():
    rng = random.Random(7)
    with ScriptedJudge(random_policy(seed=1)) as judge:
        judge_client = client(judge)
        config = DagConfig()

        async def build_all():
            traces = [[f"step {i} of trace {t}" for i in range(rng.randint(1, 14))] for t in range(30)]
            return await asyncio.gather(*(build_dag(judge_client, "Q?", steps, config) for steps in traces))

        dags = run(build_all())
    actions = [a for dag in dags for a in dag.actions[1:]]
    assert {"continue", "backtrack", "merge"} <= set(actions), "the random judge should exercise every action"
    for dag in dags:
        assert validate_dag(dag) == []
        assert validate_rules(dag) == []
        depth, children = dag.depth, dag.children
        assert all(depth[n] > max(depth[p] for p in dag.parents[n]) for n in range(1, len(dag.steps)))
        assert dag.leaves == [n for n in range(len(dag.steps)) if not children[n]]
        assert len(dag.steps) - 1 in dag.leaves
        # every fall-back is recorded, and only fall-backs are
        for error in dag.errors:
            assert dag.actions[error["step"]] == "continue" and len(error["rejected"]) == sum(config.rounds)
        supers = merged_view(dag)
        assert sorted(m for s in supers for m in s.members) == list(range(len(dag.steps)))


def scripted(plan: dict[int, str]):
    def policy(req):
        return f"Because.\n{plan[req.step]}"

    return policy


def test_backtrack_then_merge_gives_expected_parents_and_merged_view():
    plan = {
        1: "<|action|>continue",
        2: "<|action|>continue",
        3: "<|action|>backtrack <|previous|>1",
        4: "<|action|>continue",
        5: "<|action|>merge <|previous|>2, 4",
    }
    with ScriptedJudge(scripted(plan)) as judge:
        dag = run(build_dag(client(judge), "Q?", [f"s{i}\n\n" for i in range(6)]))
        assert judge.count("structure") == 5  # one sample each: a unique majority right away
    assert dag.parents == [[], [0], [1], [1], [3], [2, 4]]
    assert dag.actions == ["root", "continue", "continue", "backtrack", "continue", "merge"]
    assert dag.children == [[1], [2, 3], [5], [4], [5], []]
    assert dag.leaves == [5] and dag.errors == []
    assert dag.rationales[3] == "Because."
    supers = [s.to_dict() for s in merged_view(dag)]
    assert supers == [
        {"id": 0, "members": [0, 1], "parents": [], "children": [1, 2], "depth": 0, "role": "root"},
        {"id": 1, "members": [2], "parents": [0], "children": [3], "depth": 1, "role": "branch"},
        {"id": 2, "members": [3, 4], "parents": [0], "children": [3], "depth": 1, "role": "branch"},
        {"id": 3, "members": [5], "parents": [1, 2], "children": [], "depth": 2, "role": "merge"},
    ]


def test_unparsable_answers_fall_back_to_continue_and_are_recorded():
    with ScriptedJudge(lambda req: "I would rather not say.") as judge:
        dag = run(build_dag(client(judge), "Q?", ["a", "b", "c"]))
        assert judge.count() == 2 * 5  # five rounds per step, n honoured in one request each
    assert dag.actions == ["root", "continue", "continue"] and dag.parents == [[], [0], [1]]
    assert [e["step"] for e in dag.errors] == [1, 2]
    assert all(len(e["rejected"]) == 16 and e["rejected"][0]["reason"] == "no action marker" for e in dag.errors)


def test_resampling_stops_at_a_unique_majority():
    def policy(req):
        if req.step != 2:
            return "<|action|>continue"
        if req.body.get("n", 1) == 1:  # round 1: an invalid target
            return "<|action|>backtrack <|previous|>1"  # 1 is the end of the main path -> invalid
        return ["<|action|>backtrack <|previous|>0", "<|action|>backtrack <|previous|>0", "<|action|>continue"][
            req.choice
        ]

    with ScriptedJudge(policy) as judge:
        dag = run(build_dag(client(judge), "Q?", ["a", "b", "c"]))
        sizes = [body.get("n", 1) for body in judge.requests]
    assert sizes == [1, 1, 3]  # step 1: one round; step 2: rounds of 1 and 3, then a majority exists
    assert dag.parents[2] == [0] and dag.actions[2] == "backtrack" and dag.errors == []


def test_endpoint_without_n_support_gets_repeated_calls():
    with ScriptedJudge(lambda req: "nonsense", honour_n=False) as judge:
        dag = run(build_dag(client(judge), "Q?", ["a", "b"]))
        assert judge.count() == 16  # all samples of all rounds, one request each
    assert len(dag.errors) == 1 and len(dag.errors[0]["rejected"]) == 16
