"""Views and pairwise ME² judging against the scripted judge: position bias, consistency, audit trail."""

import asyncio

from trm_testing.judge import ScriptedJudge, decision, demo_policy
from trm.dag.graph import Dag, merged_view
from trm.llm.client import ChatClient, ChatConfig
from trm.preference.pairwise import PairwiseConfig, compare_responses, consistency_label
from trm.preference.prompts import DIMENSIONS, parse_decision
from trm.preference.views import dominant_leaves, dominant_path, macro_view_text, structural_header

SHORT = "<think>Let x be the number.\n\nSo 2x = 6 and x = 3.</think>\nThe answer is \\boxed{3}."
LONG = (
    "<think>We need x with 2x = 6.\n\nMaybe x = 2? Then 2x = 4, no.\n\nWait, try x = 4: 8, no.\n\n"
    "Alternatively divide: x = 6/2 = 3, so \\boxed{3}.\n\nSo x = 3.</think>\n\\boxed{3}"
)


def client(judge):
    return ChatClient(judge.url, "scripted", config=ChatConfig(backoff_base=0.01))


def views_policy(answer_policy):
    """Structure and summaries from the demo judge; comparisons from ``answer_policy``."""

    def policy(req):
        if req.kind in ("dimension", "aggregate"):
            return answer_policy(req)
        return demo_policy(req)

    return policy


def test_parse_decision_is_lenient_around_the_marker():
    assert parse_decision("Trace 2 rambles.\n<|decision|> Trace 1") == ("1", "Trace 2 rambles.")
    assert parse_decision("x <|decision|>**trace 2**") == ("2", "x")
    assert parse_decision("<|decision|>Tie.")[0] == "tie"
    assert parse_decision("<|decision|> Trace 1 ... no wait <|decision|>: Trace 2")[0] == "2"
    assert parse_decision("I prefer Trace 1")[0] is None


def test_consistency_rule():
    fwd, bwd = (1, 2), (2, 1)
    assert consistency_label([(fwd, 2)] * 3 + [(bwd, 2)] * 3) == (2, "consistent")
    assert consistency_label([(fwd, 1)] * 3 + [(bwd, 2)] * 3) == (None, "position_bias")
    assert consistency_label([(fwd, 1)] * 3 + [(bwd, 1)] * 2 + [(bwd, "tie")]) == (None, "tie")
    assert consistency_label([(fwd, 1)] * 3 + [(bwd, 1)] * 2 + [(bwd, None)]) == (None, "unparsable")
    assert consistency_label([(fwd, 1), (fwd, 2), (fwd, 1), (bwd, 1), (bwd, 1), (bwd, 1)]) == (None, "inconsistent")
    # a looser bar: the winner must still lead within each order
    assert consistency_label([(fwd, 1), (fwd, 2), (fwd, 1), (bwd, 1), (bwd, 1), (bwd, 1)], 0.8) == (1, "consistent")
    assert consistency_label([(fwd, 1)] * 3 + [(bwd, 2)] * 3, 0.5) == (None, "position_bias")


def test_dominant_path_and_macro_headers():
    steps = [
        "P\n\n",
        "So a\n\n",
        "b gives \\boxed{7}\n\n",
        "Wait\n\n",
        "Maybe 8\n\n",
        "Alternatively \\boxed{7}\n\n",
        "So 7",
    ]
    dag = Dag(
        steps=steps,
        parents=[[], [0], [1], [1], [3], [0], [5]],
        actions=["root", "continue", "continue", "backtrack", "continue", "backtrack", "continue"],
    )
    # leaves: 2 (states 7), 4 (states 8), 6 (the last step); 5 states 7 but is not a leaf
    assert dag.leaves == [2, 4, 6]
    assert dominant_leaves(dag, "7") == [2, 6]
    assert dominant_path(dag, [2, 6]) == "P\n\nSo a\n\nb gives \\boxed{7}\n\nAlternatively \\boxed{7}\n\nSo 7"
    assert dominant_leaves(dag, None) == [6]
    merged = merged_view(dag)
    assert [s.members for s in merged] == [[0], [1], [2], [3, 4], [5, 6]]
    text = macro_view_text(merged, [f"summary {s.id}." for s in merged])
    assert text.splitlines() == [
        "<Root id=0 depth=0 parents=[] children=[1, 4]> summary 0.",
        "<Branch id=1 depth=1 parents=[0] children=[2, 3]> summary 1.",
        "<Leaf id=2 depth=2 parents=[1] children=[]> summary 2.",
        "<Leaf id=3 depth=2 parents=[1] children=[]> summary 3.",
        "<Leaf id=4 depth=1 parents=[0] children=[]> summary 4.",
    ]
    assert structural_header(merged[1]) == "<Branch id=1 depth=1 parents=[0] children=[2, 3]>"


def test_first_position_judge_yields_no_label():
    policy = views_policy(lambda req: decision("The first one reads better.", "Trace 1"))
    with ScriptedJudge(policy) as judge:
        outcome = asyncio.run(compare_responses(client(judge), "Solve 2x = 6.", SHORT, LONG, repetitions=3))
        per_order = 4 + 3  # four dimension requests asking n=3, then three aggregation requests
        assert judge.count("dimension") == 2 * 4 and judge.count("aggregate") == 2 * 3
        assert judge.count("dimension") + judge.count("aggregate") == 2 * per_order
    assert outcome.label is None and outcome.reason == "position_bias"
    assert len(outcome.judgements) == 6
    assert {j.order for j in outcome.judgements} == {(1, 2), (2, 1)}


def test_consistent_judge_yields_the_label_with_a_full_audit_trail():
    def shorter(req):
        one, two = req.traces()
        return decision(
            f"Compared {len(one)} vs {len(two)} characters.", "Trace 1" if len(one) < len(two) else "Trace 2"
        )

    with ScriptedJudge(views_policy(shorter)) as judge:
        outcome = asyncio.run(compare_responses(client(judge), "Solve 2x = 6.", LONG, SHORT, repetitions=2))
    assert outcome.label == 2 and outcome.reason == "consistent"
    assert outcome.votes == {"2": 4}
    audit = outcome.to_dict()
    assert len(audit["judgements"]) == 4
    for judgement in audit["judgements"]:
        assert set(judgement["dimensions"]) == {d.name for d in DIMENSIONS}
        for verdict in list(judgement["dimensions"].values()) + [judgement["aggregate"]]:
            assert verdict["prefers"] == 2 and verdict["rationale"].startswith("Compared")
    long_views, short_views = audit["views"]
    assert long_views["dag"]["actions"].count("backtrack") == 2  # "Wait" and "Alternatively" in LONG
    assert long_views["macro"].startswith("<Root id=0 depth=0")
    assert short_views["micro"] == "Let x be the number.\n\nSo 2x = 6 and x = 3."
    assert (
        audit["usage"]["requests"] >= 2 * (4 + 2) + long_views["usage"]["requests"] + short_views["usage"]["requests"]
    )


def test_ties_and_unparsable_answers_are_dropped_with_their_reason():
    with ScriptedJudge(views_policy(lambda req: decision("Equal.", "Tie"))) as judge:
        outcome = asyncio.run(compare_responses(client(judge), "Q", SHORT, LONG, repetitions=1))
    assert (outcome.label, outcome.reason) == (None, "tie")

    with ScriptedJudge(views_policy(lambda req: "Both are fine, I think.")) as judge:
        outcome = asyncio.run(
            compare_responses(client(judge), "Q", SHORT, LONG, config=PairwiseConfig(repetitions=1, parse_retries=1))
        )
        # each of the 5 calls per order is asked once more after its unparsable answer
        assert judge.count("dimension") + judge.count("aggregate") == 2 * 5 * 2
    assert (outcome.label, outcome.reason) == (None, "unparsable")
    assert outcome.judgements[0].aggregate.attempts == 2


def test_empty_summaries_fall_back_to_the_segment_text_and_are_recorded():
    from trm.preference.views import build_views

    def policy(req):
        return "" if req.kind == "summary" else demo_policy(req)

    with ScriptedJudge(policy) as judge:
        views = asyncio.run(build_views(client(judge), "Solve 2x = 6.", SHORT))
    assert views.macro.splitlines()[0] == "<Root id=0 depth=0 parents=[] children=[]> Let x be the number. So 2x = 6 and x = 3."
    assert views.errors == [{"super_node": 0, "error": "empty summary; used the segment's opening text"}]
    assert views.usage.requests == 2  # one structuring request (step 1), one summary (one super-node)
