"""Running a cell magic's body as the cell itself would run, inside the magic's context."""

from __future__ import annotations

from typing import Any


class CellBodyFailed(Exception):
    """The body of a cell magic raised; its traceback was already shown above."""

    # The body's own traceback is what explains the failure; this error adds one line of
    # consequence, without a type name (unlike core.errors' short tracebacks, which show it).
    def _render_traceback_(self) -> list[str]:
        return [str(self)]


def run_body(shell: Any, cell: str) -> Any:
    """Run ``cell`` like a normal cell in ``shell``; return its ExecutionResult."""
    hook = shell.displayhook
    outer = getattr(hook, "exec_result", None)
    try:
        return shell.run_cell(cell, store_history=False)
    finally:
        # The nested run resets the display hook's result; give the outer cell its own back
        # so what the magic returns displays as this cell's output.
        hook.exec_result = outer


def body_value(shell: Any, cell: str) -> Any:
    """Return the value of ``cell``'s last line, an expression, after running the lines above it.

    Raises UsageError when the last line is not an expression (nothing to return) and
    CellBodyFailed when the cell raises.
    """
    import ast

    from IPython.core.error import UsageError

    # IPython syntax (magics, !shell) is turned into Python first, as run_cell would.
    source = shell.transform_cell(cell)
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise UsageError(
            f"the cell body is not valid Python: {exc.msg} (line {exc.lineno})"
        ) from None
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        raise UsageError(
            "with --trace or --remote the cell's last line must be the model input (token ids or "
            "a tokenizer output), e.g. tokenizer(texts, return_tensors='pt', padding=True)"
        )
    last = tree.body.pop()
    if tree.body:
        result = run_body(shell, ast.unparse(tree))
        if not result.success:
            raise CellBodyFailed("the cell raised before its last line; nothing was captured")
    try:
        return shell.ev(ast.unparse(last.value))
    except Exception as exc:
        raise CellBodyFailed(f"the cell's last line raised {type(exc).__name__}: {exc}") from exc
