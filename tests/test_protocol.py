"""The protocol strings render byte for byte as the reference gives them (../shared/reference/protocol.md)."""

from pathlib import Path

import pytest

from trm import protocol

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "protocol.md"

# Copied from protocol.md section 1 (with `\n` written out as newlines) and section 2, for a clean checkout without it.
VERIFIER_EXPECTED = (
    "User: ### Question: What is $\\frac{1}{2}+\\frac{1}{3}$?\n\n### Ground Truth Answer: \\frac{5}{6}\n\n"
    "### Student Answer: 5/6\n\nFor the above question, please verify if the student's answer is equivalent to the "
    "ground truth answer.\nDo not solve the question by yourself; just check if the student's answer is equivalent "
    "to the ground truth answer.\nIf the student's answer is correct, output \"Final Decision: Yes\". If the "
    "student's answer is incorrect, output \"Final Decision: No\". Assistant:"
)
LUFFY_EXPECTED_PREFIX = "Your task is to follow a systematic, thorough reasoning process before providing the final solution."
LLAMA_EXPECTED = "What is {x}? Please reason step by step, and put your final answer within \\boxed{}."


def _reference_block(after: str) -> str:
    """The first fenced block after the line containing ``after`` in protocol.md."""
    text = REFERENCE.read_text(encoding="utf-8")
    rest = text[text.index(after):]
    block = rest.split("```\n", 2)[1]
    return block.rstrip("\n")


def test_verifier_input_is_the_protocol_text():
    rendered = protocol.general_verifier_input("What is $\\frac{1}{2}+\\frac{1}{3}$?", "\\frac{5}{6}", "5/6")
    assert rendered == VERIFIER_EXPECTED


@pytest.mark.skipif(not REFERENCE.exists(), reason="reference protocol.md not beside this checkout")
def test_verifier_template_matches_reference_file():
    block = _reference_block("## 1. General-verifier input").replace("\\n", "\n")
    expected = block.format(question="Q {x}", ground_truth="G", student_answer="S")
    assert protocol.general_verifier_input("Q {x}", "G", "S") == expected


@pytest.mark.skipif(not REFERENCE.exists(), reason="reference protocol.md not beside this checkout")
def test_rl_prompts_match_reference_file():
    luffy = _reference_block("Qwen2.5-Math-1.5B / 7B").replace("\\n", "\n")
    assert protocol.rl_user_turn("luffy", "PROBLEM") == luffy.replace("{problem}", "PROBLEM")
    assert protocol.rl_user_turn("llama-boxed", "PROBLEM") == "PROBLEM Please reason step by step, and put your final answer within \\boxed{}."


def test_rl_prompts_keep_braces_of_the_problem():
    assert protocol.rl_user_turn("llama-boxed", "What is {x}?") == LLAMA_EXPECTED
    assert protocol.rl_user_turn("luffy", "P").startswith(LUFFY_EXPECTED_PREFIX)
    assert protocol.rl_user_turn("luffy", "P").endswith("\\boxed{} for closed-form results like multiple choices or mathematical solutions. P")
    assert '"<think>\n thoughts </think>\n"' in protocol.rl_user_turn("luffy", "P")


def test_verifier_answer_tail():
    rendered = protocol.general_verifier_input("q", "g", "x" * 2500 + "END")
    assert "x" * 1997 + "END\n\n" in rendered and "x" * 1998 + "END" not in rendered


def test_unknown_prompt_name():
    with pytest.raises(ValueError, match="luffy"):
        protocol.rl_user_turn("nope", "p")
