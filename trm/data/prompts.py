"""Named prompt templates for RL data and for evaluating RL checkpoints, so both use one prompt by name.

`trm data webinstruct convert --template`, `trm generate --template` and `trm eval accuracy --template` accept these names.
The paper's prompts (``luffy``, ``llama-boxed``) come from `trm.protocol` and are the whole user turn, without a
system turn; the ``own-*`` templates are this project's earlier wording, kept for comparison runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from trm.protocol import PAPER_PROMPT_FOR_FAMILY, rl_user_turn

# Our own instruction wording (not the paper's); used only by the own-* templates.
BOXED_INSTRUCTION = "Reason through the problem step by step, then write the final answer inside \\boxed{}."


@dataclass(frozen=True)
class PromptTemplate:
    """How a problem becomes chat messages: an optional system turn and the user turn."""

    name: str
    description: str
    user: Callable[[str], str]
    system: str | None = None

    def user_turn(self, problem: str) -> str:
        return self.user(problem.strip())

    def messages(self, problem: str) -> list[dict]:
        turns = [{"role": "system", "content": self.system}] if self.system else []
        return turns + [{"role": "user", "content": self.user_turn(problem)}]


def _paper(name: str) -> Callable[[str], str]:
    return lambda problem: rl_user_turn(name, problem)


TEMPLATES: dict[str, PromptTemplate] = {
    "luffy": PromptTemplate("luffy", "the paper's prompt for Qwen2.5-Math (LUFFY's)", _paper("luffy")),
    "llama-boxed": PromptTemplate("llama-boxed", "the paper's prompt for Llama-3.1-8B-Instruct", _paper("llama-boxed")),
    "own-qwen-math": PromptTemplate("own-qwen-math", "our instruction as a system turn, the bare question as user turn",
                                    lambda problem: problem, system=BOXED_INSTRUCTION),
    "own-llama": PromptTemplate("own-llama", "one user turn: the question, then our instruction",
                                lambda problem: f"{problem}\n\n{BOXED_INSTRUCTION}"),
    "plain": PromptTemplate("plain", "the bare question as the only turn", lambda problem: problem),
}

# Policy families and their default template: the paper's prompt for that family.
FAMILIES = tuple(PAPER_PROMPT_FOR_FAMILY)


def get_template(name: str) -> PromptTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        families = f" ({name!r} is a policy family: use its paper prompt {PAPER_PROMPT_FOR_FAMILY[name]!r})" \
            if name in PAPER_PROMPT_FOR_FAMILY else ""
        raise ValueError(f"unknown prompt template {name!r}; choose one of {', '.join(TEMPLATES)}{families}") from None


def template_for(family: str, template: str | None = None) -> PromptTemplate:
    """The named template, else the paper's prompt for the policy family."""
    if template is not None:
        return get_template(template)
    if family not in PAPER_PROMPT_FOR_FAMILY:
        raise ValueError(f"unknown policy family {family!r}; choose one of {', '.join(FAMILIES)}")
    return TEMPLATES[PAPER_PROMPT_FOR_FAMILY[family]]


def template_help() -> str:
    return "; ".join(f"{t.name}: {t.description}" for t in TEMPLATES.values())
