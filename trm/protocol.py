"""The experiment's protocol strings: model input formats and the paper's prompts, each declared once.

These are interfaces, like a wire format: a model was trained on (or an experiment was run with) exactly this
text, so a reworded copy is a different experiment. Everything that renders one of them imports it from here,
and ``tests/test_protocol.py`` compares the rendered text with the reference byte for byte.
"""

from __future__ import annotations

# ---- general-verifier input --------------------------------------------------------------------------------------
# Source: the TIGER-Lab/general-verifier model card's input format, as the original TRM release sends it (one user
# message under the plain concatenating chat template `chat_templates/verifier.jinja`, greedy, 512 new tokens).
GENERAL_VERIFIER_TEMPLATE = (
    "User: ### Question: {question}\n\n"
    "### Ground Truth Answer: {ground_truth}\n\n"
    "### Student Answer: {student_answer}\n\n"
    "For the above question, please verify if the student's answer is equivalent to the ground truth answer.\n"
    "Do not solve the question by yourself; just check if the student's answer is equivalent to the ground truth "
    "answer.\n"
    'If the student\'s answer is correct, output "Final Decision: Yes". If the student\'s answer is incorrect, '
    'output "Final Decision: No". Assistant:'
)
# The release counts an answer as verified iff the verifier's output contains this.
GENERAL_VERIFIER_YES = "Final Decision: Yes"
# The student answer is the extracted final answer cut to its last this-many characters (the release's value).
GENERAL_VERIFIER_ANSWER_TAIL_CHARS = 2000
GENERAL_VERIFIER_MAX_TOKENS = 512


def general_verifier_input(question: str, ground_truth: str, student_answer: str,
                           answer_tail_chars: int = GENERAL_VERIFIER_ANSWER_TAIL_CHARS) -> str:
    """The verifier's whole input; the student answer keeps only its last ``answer_tail_chars`` characters."""
    if answer_tail_chars > 0:
        student_answer = student_answer[-answer_tail_chars:]
    # Field values are inserted as they are (str.format does not re-read braces inside a LaTeX answer).
    return GENERAL_VERIFIER_TEMPLATE.format(question=question, ground_truth=ground_truth, student_answer=student_answer)


# ---- RL prompts --------------------------------------------------------------------------------------------------
# Source: the paper, App. G.3 (following LUFFY). `{problem}` is the question; the text is the whole user turn.
# The `\n` inside the think format are newlines, as in protocol.md's convention and in LUFFY's data preparation,
# where the instruction is an ordinary (non-raw) Python string.
QWEN_MATH_RL_PROMPT = (
    "Your task is to follow a systematic, thorough reasoning process before providing the final solution. This "
    "involves analyzing, summarizing, exploring, reassessing, and refining your thought process through multiple "
    "iterations. Structure your response into two sections: Thought and Solution. In the Thought section, present "
    'your reasoning using the format: "<think>\n thoughts </think>\n". Each thought should include detailed '
    'analysis, brainstorming, verification, and refinement of ideas. After "</think>\n" in the Solution section, '
    "provide the final, logical, and accurate answer, clearly derived from the exploration in the Thought section. "
    "If applicable, include the answer in \\boxed{{}} for closed-form results like multiple choices or mathematical "
    "solutions. {problem}"
)
# Source: the paper, App. G.3 (Llama-3.1-8B-Instruct's RL prompt).
LLAMA_RL_PROMPT = "{problem} Please reason step by step, and put your final answer within \\boxed{{}}."

# Named RL prompt templates (the names `trm data webinstruct convert --template`, `trm generate --template` and
# `trm eval accuracy --template` accept). Values are str.format templates with one field, `{problem}`.
RL_PROMPTS = {
    "luffy": QWEN_MATH_RL_PROMPT,  # the paper's prompt for Qwen2.5-Math-1.5B / 7B
    "llama-boxed": LLAMA_RL_PROMPT,  # the paper's prompt for Llama-3.1-8B-Instruct
}
# The paper's prompt per policy family.
PAPER_PROMPT_FOR_FAMILY = {"qwen-math": "luffy", "llama": "llama-boxed"}


def rl_user_turn(template: str, problem: str) -> str:
    """The user turn of a named paper prompt for ``problem``."""
    try:
        return RL_PROMPTS[template].format(problem=problem)
    except KeyError:
        raise ValueError(f"unknown RL prompt {template!r}; choose one of {', '.join(RL_PROMPTS)}") from None


# ---- ReasonFlux-PRM input (the Table 2 baseline scorer) ----------------------------------------------------------
# Source: the Gen-Verse/ReasonFlux-PRM-7B model card: the user turn is the problem, the assistant turn the reasoning
# steps each followed by this tag, under the model's own chat template; the model scores each tagged position.
REASONFLUX_STEP_TAG = "<extra_0>"
