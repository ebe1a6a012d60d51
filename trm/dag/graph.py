"""The DAG of a reasoning trace: structure-building rules, invariant checks and the merged view.

Steps are visited in order; node 0 (the first step) is the root. After every step the *main path* runs from
the root to that step. A step attaches by one of three actions:

- ``continue``: its parent is the previous step (the end of the main path).
- ``backtrack K``: its single parent K is on the main path and strictly earlier than its end; the abandoned
  tail's last step becomes an *open leaf* and the main path is cut back to K before the new step joins it.
- ``merge K1,K2,...``: two or more parents, at least one of them an open leaf of another branch and at most
  one on the main path. Merged open leaves are closed. The new main path runs through the main-path parent
  if there is one (the abandoned part becomes an open leaf), else through the most recent merged leaf.

Parents always have smaller ids than their child, so the graph is acyclic by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ACTIONS = ("continue", "backtrack", "merge")
ROOT = "root"  # the action recorded for node 0


@dataclass(frozen=True)
class Decision:
    """One proposed attachment for a step: an action and the parent ids it names (empty for continue)."""

    action: str
    previous: tuple[int, ...] = ()


@dataclass
class AttachmentPool:
    """What the judge may attach the current step to."""

    main_path: list[int]  # the full main path, root first
    shown_main_path: list[int]  # root plus the last `main_path_window` ids of the main path
    open_leaves: list[int]  # leaves of other open branches offered to the judge, most recent first


@dataclass
class DagState:
    """Main path and open branches while steps are being attached."""

    main_path: list[int] = field(default_factory=lambda: [0])
    # open leaf id -> the root-to-leaf path it ended (so a merge can continue along it)
    open_branches: dict[int, list[int]] = field(default_factory=dict)

    def pool(self, main_path_window: int = 8, max_open_leaves: int = 5) -> AttachmentPool:
        tail = self.main_path[-main_path_window:] if main_path_window > 0 else []
        shown = ([0] if 0 not in tail else []) + tail
        leaves = sorted(self.open_branches, reverse=True)[:max_open_leaves]
        return AttachmentPool(list(self.main_path), shown, leaves)


def check_decision(decision: Decision, pool: AttachmentPool) -> str | None:
    """Why ``decision`` breaks the attachment rules for this pool, or None if it is valid."""
    last = pool.main_path[-1]
    previous = decision.previous
    if decision.action == "continue":
        return None
    if decision.action == "backtrack":
        if len(previous) != 1:
            return f"backtrack needs exactly one previous id, got {list(previous)}"
        target = previous[0]
        if target == last:
            return f"backtrack target {target} is the end of the main path (that is a continue)"
        if target not in pool.shown_main_path:
            return f"backtrack target {target} is not on the shown main path {pool.shown_main_path}"
        return None
    if decision.action == "merge":
        if len(previous) < 2 or len(set(previous)) != len(previous):
            return f"merge needs two or more distinct previous ids, got {list(previous)}"
        on_main = [k for k in previous if k in pool.shown_main_path]
        on_leaves = [k for k in previous if k in pool.open_leaves]
        unknown = [k for k in previous if k not in on_main and k not in on_leaves]
        if unknown:
            return f"merge ids {unknown} are neither on the shown main path nor open leaves {pool.open_leaves}"
        if not on_leaves:
            return "merge needs at least one open leaf of another branch"
        if len(on_main) > 1:
            return f"merge may use at most one main-path id, got {on_main}"
        return None
    return f"unknown action {decision.action!r}"


def apply_decision(state: DagState, step: int, decision: Decision) -> list[int]:
    """Attach ``step`` (already checked) and update the main path and open branches; returns its parents."""
    main = state.main_path
    if decision.action == "continue":
        parents = [main[-1]]
        main.append(step)
        return parents
    if decision.action == "backtrack":
        target = decision.previous[0]
        state.open_branches[main[-1]] = list(main)
        state.main_path = main[: main.index(target) + 1] + [step]
        return [target]
    # merge
    parents = sorted(decision.previous)
    on_main = [k for k in parents if k in main]
    leaves = [k for k in parents if k in state.open_branches]
    leaf_paths = {k: state.open_branches.pop(k) for k in leaves}
    if on_main:
        anchor = on_main[0]
        if anchor != main[-1]:
            state.open_branches[main[-1]] = list(main)
        state.main_path = main[: main.index(anchor) + 1] + [step]
    else:
        state.open_branches[main[-1]] = list(main)
        state.main_path = leaf_paths[max(leaves)] + [step]
    return parents


@dataclass
class Dag:
    """A finished DAG: per node its text, parents and action; errors recorded while building."""

    steps: list[str]
    parents: list[list[int]]
    actions: list[str]
    errors: list[dict] = field(default_factory=list)  # {"step": i, "error": ..., "answers": [...]}
    rationales: list[str] = field(default_factory=list)  # the judge's one-line reason per step ("" for root)

    @property
    def children(self) -> list[list[int]]:
        kids: list[list[int]] = [[] for _ in self.steps]
        for node, parents in enumerate(self.parents):
            for parent in parents:
                kids[parent].append(node)
        return kids

    @property
    def depth(self) -> list[int]:
        """Longest distance from the root (so a merge node sits below all of its parents)."""
        depth = [0] * len(self.steps)
        for node in range(1, len(self.steps)):
            depth[node] = 1 + max(depth[p] for p in self.parents[node])
        return depth

    @property
    def leaves(self) -> list[int]:
        return [node for node, kids in enumerate(self.children) if not kids]

    def ancestors(self, nodes: list[int]) -> set[int]:
        """``nodes`` and everything above them."""
        seen: set[int] = set()
        stack = list(nodes)
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(self.parents[node])
        return seen

    def to_dict(self) -> dict:
        return {
            "num_steps": len(self.steps),
            "steps": self.steps,
            "parents": self.parents,
            "children": self.children,
            "depth": self.depth,
            "actions": self.actions,
            "leaves": self.leaves,
            "errors": self.errors,
            "rationales": self.rationales,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Dag":
        return cls(
            steps=list(data["steps"]),
            parents=[list(p) for p in data["parents"]],
            actions=list(data["actions"]),
            errors=list(data.get("errors", [])),
            rationales=list(data.get("rationales", [])),
        )


def validate_dag(dag: Dag) -> list[str]:
    """Invariant violations (empty when the DAG is well formed). Used by tests and on loading files."""
    problems: list[str] = []
    n = len(dag.steps)
    if not (len(dag.parents) == len(dag.actions) == n):
        return [f"length mismatch: {n} steps, {len(dag.parents)} parent lists, {len(dag.actions)} actions"]
    if n == 0:
        return ["no steps"]
    if dag.parents[0] or dag.actions[0] != ROOT:
        problems.append("node 0 must be the root with no parents")
    for node in range(1, n):
        parents, action = dag.parents[node], dag.actions[node]
        if action not in ACTIONS:
            problems.append(f"node {node}: invalid action {action!r}")
        if not parents:
            problems.append(f"node {node}: no parent (unreachable from the root)")
        if any(not (0 <= p < node) for p in parents):
            problems.append(f"node {node}: parents {parents} must be earlier nodes")
        if len(set(parents)) != len(parents):
            problems.append(f"node {node}: repeated parents {parents}")
        if action == "continue" and parents != [node - 1]:
            problems.append(f"node {node}: continue must attach to the previous step, got {parents}")
        if action == "backtrack" and (len(parents) != 1 or parents[0] >= node - 1):
            problems.append(f"node {node}: backtrack needs one parent before the previous step, got {parents}")
        if action == "merge" and len(parents) < 2:
            problems.append(f"node {node}: merge needs two or more parents, got {parents}")
    reachable = _descendants(dag, 0)
    missing = [node for node in range(n) if node not in reachable]
    if missing:
        problems.append(f"nodes {missing} are not reachable from the root")
    return problems


def _descendants(dag: Dag, start: int) -> set[int]:
    children = dag.children
    seen = {start}
    stack = [start]
    while stack:
        for child in children[stack.pop()]:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


@dataclass
class SuperNode:
    """A maximal chain of continue steps collapsed into one node of the merged view."""

    id: int
    members: list[int]  # raw step ids, in order
    parents: list[int] = field(default_factory=list)  # super-node ids
    children: list[int] = field(default_factory=list)
    depth: int = 0
    role: str = "branch"  # root | merge | branch | leaf

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "members": self.members,
            "parents": self.parents,
            "children": self.children,
            "depth": self.depth,
            "role": self.role,
        }


def merged_view(dag: Dag) -> list[SuperNode]:
    """Collapse continue chains: a step joins its parent's super-node when it is a ``continue`` step, has that
    single parent, and is that parent's only child. All other edges are kept between super-nodes."""
    children = dag.children
    owner: list[int] = [0] * len(dag.steps)
    supers: list[SuperNode] = []
    for node in range(len(dag.steps)):
        parents = dag.parents[node]
        if node > 0 and dag.actions[node] == "continue" and len(parents) == 1 and len(children[parents[0]]) == 1:
            owner[node] = owner[parents[0]]
            supers[owner[node]].members.append(node)
        else:
            owner[node] = len(supers)
            supers.append(SuperNode(id=len(supers), members=[node]))
    for sup in supers:
        head = sup.members[0]
        sup.parents = sorted({owner[p] for p in dag.parents[head]})
        for parent in sup.parents:
            supers[parent].children.append(sup.id)
    for sup in supers:
        sup.children = sorted(set(sup.children))
        sup.depth = 1 + max(supers[p].depth for p in sup.parents) if sup.parents else 0
        if sup.id == 0:
            sup.role = "root"
        elif len(sup.parents) > 1:
            sup.role = "merge"
        elif not sup.children:
            sup.role = "leaf"
        else:
            sup.role = "branch"
    return supers


def validate_rules(dag: Dag, main_path_window: int = 8, max_open_leaves: int = 5) -> list[str]:
    """Replay the DAG step by step and report every attachment the rules would not have allowed."""
    problems = validate_dag(dag)
    if problems:
        return problems
    state = DagState()
    for node in range(1, len(dag.steps)):
        action = dag.actions[node]
        decision = Decision(action, () if action == "continue" else tuple(dag.parents[node]))
        problem = check_decision(decision, state.pool(main_path_window, max_open_leaves))
        if problem:
            problems.append(f"node {node}: {problem}")
            return problems
        if apply_decision(state, node, decision) != dag.parents[node]:
            problems.append(f"node {node}: replayed parents differ from {dag.parents[node]}")
    return problems
