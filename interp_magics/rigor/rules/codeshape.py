"""What a piece of notebook code does, read from its ``ast``: small readers the rules share.

Every reader walks iteratively (deep nesting cannot overflow the stack) and reads each node once.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator

#: Integers in strings: layer and head indices in hook names ("blocks.1.attn.hook_z").
NUMBER = re.compile(r"(?<![\w.])\d{1,4}(?![\w.])|(?<=[._])\d{1,4}(?=[._]|\b)")
GOOD_METRIC = frozenset({"log_softmax", "logprob", "log_prob", "logit_diff", "logsumexp", "kl_div"})
#: Names of a probability or accuracy score. ``argmax`` alone is not one: decoding the top
#: token to show it scores nothing.
PROB_METRIC = frozenset(
    {"softmax", "probs", "prob", "accuracy_score", "accuracy", "acc", "sigmoid", "correct"}
)


def walk(tree: ast.AST, parents: dict[ast.AST, ast.AST]) -> Iterator[ast.AST]:
    """Yield every node of ``tree`` (iteratively: deep nesting cannot overflow), noting parents."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            parents[child] = node
            todo.append(child)


def short(call: ast.Call) -> str:
    """Return the last name component of what ``call`` calls ("" for anything else)."""
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def names(node: ast.AST) -> set[str]:
    """Return the identifiers and attribute names used in ``node``."""
    out: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
    return out


def numbers(*nodes: ast.AST) -> set[int]:
    """Return the small integers in ``nodes``: literals, and digits in strings ("blocks.1.attn")."""
    out: set[int] = set()
    for node in nodes:
        for n in ast.walk(node):
            if isinstance(n, ast.Constant) and type(n.value) is int:  # not True / False
                out.add(int(n.value))
            elif isinstance(n, ast.Constant) and isinstance(n.value, str) and len(n.value) < 200:
                out |= {int(d) for d in NUMBER.findall(n.value)}
    return out


def text(node: ast.AST) -> str:
    """Return the names and short strings in ``node``, for patterns (no recursive unparse)."""
    words = []
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            words.append(n.id)
        elif isinstance(n, ast.Attribute):
            words.append(n.attr)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and len(n.value) < 200:
            words.append(n.value)
    return " ".join(words)


def metric_of(names: set[str]) -> str:
    """Return "good" or "prob" for a score computed with ``names``, else ""."""
    if GOOD_METRIC & names:
        return "good"
    return "prob" if PROB_METRIC & names else ""


def first(values: Iterable[str]) -> str:
    """Return the first of ``values``, or "" when there is none."""
    return next(iter(values), "")


def root(node: ast.AST) -> str:
    """Return the name a subscript / attribute chain starts from ("output" in output[0][:, 1])."""
    while isinstance(node, (ast.Subscript, ast.Attribute, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else ""


def writes_model_io(target: ast.AST) -> bool:
    """Whether an assignment target is a module's ``.output`` / ``.input`` (nnsight)."""
    node = target
    while isinstance(node, (ast.Subscript, ast.Attribute)):
        if isinstance(node, ast.Attribute) and node.attr in ("output", "input"):
            return root(node) != "self"  # self.input = x in a class is no intervention
        node = node.value
    return False


def variable_index(node: ast.AST) -> bool:
    """Whether ``node`` picks its module by a variable (``h[layer]``, ``f"blocks.{i}..."``)."""
    for n in ast.walk(node):
        if isinstance(n, ast.Subscript) and not isinstance(n.slice, (ast.Constant, ast.Slice)):
            return True
        if isinstance(n, ast.JoinedStr):
            return True
    return False


def own_nodes(fn: ast.AST) -> Iterator[ast.AST]:
    """Yield the nodes of ``fn``'s body, not those of functions or lambdas defined in it."""
    todo = list(ast.iter_child_nodes(fn))
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(node))


def edits(fn: ast.FunctionDef | ast.AsyncFunctionDef, params: set[str]) -> bool:
    """Whether ``fn`` returns a value or changes a parameter (or a name made from one) in place."""
    own = list(own_nodes(fn))
    touched = set(params)
    for node in own:
        if isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                return True
        elif (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and names(node.value) & touched
        ):
            touched.add(node.targets[0].id)  # h = untuple(output): h is the output
    for node in own:
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                in_place = not isinstance(t, ast.Name) or isinstance(node, ast.AugAssign)
                if in_place and root(t) in touched:
                    return True
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr.endswith("_")
            and not node.func.attr.startswith("_")
            and root(node.func.value) in touched
        ):
            return True  # output.add_(v), output[0].copy_(clean)
    return False


def sets_zero(node: ast.AST) -> bool:
    """Whether ``node`` writes zeros in place: ``x[...] = 0``, ``x *= 0``, ``x.fill_(0)``."""
    for n in ast.walk(node):
        value: ast.AST | None = None
        if (isinstance(n, ast.Assign) and not isinstance(n.targets[0], ast.Name)) or (
            isinstance(n, ast.AugAssign) and isinstance(n.op, ast.Mult)
        ):
            value = n.value
        elif isinstance(n, ast.Call) and short(n) in ("fill_", "mul_") and n.args:
            value = n.args[0]
        if isinstance(value, ast.Constant) and value.value == 0 and type(value.value) is not bool:
            return True
    return False
