"""Step partition: round-trip, keyword rule, keyword families."""

from hypothesis import given, settings
from hypothesis import strategies as st

from trm.dag.partition import KEYWORD_SETS, blocks, first_word, partition, resolve_keywords

WORDS = ["Wait", "so", "But", "x = 3", "Alternatively,", "**Therefore**", "the", "1.", "  ", "", "hmm", "Let's"]
SEPS = ["\n", "\n\n", "\n\n\n", "\n \n", " ", "\n\t\n\n"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPS)), max_size=30), st.text(max_size=20))
def test_partition_round_trips_and_new_steps_start_with_keywords(pieces, tail):
    trace = "".join(word + sep for word, sep in pieces) + tail
    steps = partition(trace)
    assert "".join(steps) == trace
    assert len(steps) >= 1
    keywords = KEYWORD_SETS["default"]
    for step in steps[1:]:
        assert first_word(step) in keywords or first_word(step).split("'")[0] in keywords


def test_blocks_keep_separators_and_preamble_is_step_zero():
    trace = "Find x.\nGiven 2x=6.\n\nSo x = 3.\n\nthat is simple\n\n\nWait, check: 2*3=6.\n \nYes."
    assert blocks(trace) == [
        "Find x.\nGiven 2x=6.\n\n",
        "So x = 3.\n\n",
        "that is simple\n\n\n",
        "Wait, check: 2*3=6.\n \n",
        "Yes.",
    ]
    steps = partition(trace)
    assert steps == ["Find x.\nGiven 2x=6.\n\n", "So x = 3.\n\nthat is simple\n\n\n", "Wait, check: 2*3=6.\n \nYes."]


def test_keywords_are_configurable():
    trace = "A.\n\nCompute b.\n\nso c.\n\nUse d."
    assert len(partition(trace, KEYWORD_SETS["gpt-oss"])) == 4
    assert partition(trace, resolve_keywords("compute,")) == ["A.\n\n", "Compute b.\n\nso c.\n\nUse d."]
    assert resolve_keywords(None) == KEYWORD_SETS["default"]
    try:
        resolve_keywords("qwen4")
    except ValueError as exc:
        assert "qwen3" in str(exc)
    else:
        raise AssertionError("unknown family accepted")


def test_empty_and_keywordless_traces():
    assert partition("") == [""]
    assert partition("no keywords here\n\nat all") == ["no keywords here\n\nat all"]
    assert partition("\n\nWait, a leading blank line") == ["\n\nWait, a leading blank line"]
