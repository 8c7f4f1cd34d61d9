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
