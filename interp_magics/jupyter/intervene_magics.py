"""IPython magic for interventions: ``%%intervene``.

Thin like every magic: parse the line, build the edits with
:func:`interp_magics.intervene.parse.parse_edits` (names come from the notebook), run the cell
body inside :func:`interp_magics.intervene.intervene`, which owns the hooks and records the
intervention in the ledger.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ..core.errors import CaptureError
from .arguments import lookup, unquote
from .cell_body import CellBodyFailed, run_body


@magics_class
class InterveneMagics(Magics):
    """The intervention magic."""

    @no_var_expand
    @magic_arguments()
    @argument("model", help="the model variable (HuggingFace, dispatched or nnsight)")
    @argument(
        "edits",
        nargs="*",
        help="edits, each quoted: 'OPERATION SITE [VALUE] [@ POSITIONS] [heads=..] [units=..] "
        "[during=..] [coef=..]', e.g. 'add resid_post.1 steer*4 @ -1' or 'zero head_out.1 heads=2'",
    )
    @argument(
        "--edits", dest="edit_list", help="a variable holding a list of edits (intervene.edit)"
    )
    @argument(
        "--during",
        default="all",
        choices=["all", "prompt", "new"],
        help="which forwards of a generate the edits apply to (default all; an edit's own "
        "during= wins)",
    )
    @argument("-o", "--out", help="store the intervention (its edits and forward count) here")
    @cell_magic
    def intervene(self, line: str, cell: str) -> Any:
        """Run the cell with activations edited: set, add, scale, zero, mean, project out or
        onto a direction, or any function, at any site, in forwards and during ``generate``.

        Example::

            %%intervene model 'add resid_post.3 steer*4 @ -1' 'zero head_out.1 heads=2'
            out = model.generate(ids, max_new_tokens=20)

        Names in the edits (``steer``, a cache, a function) are the notebook's variables. No
        hook stays on the model after the cell, whatever happens in it.
        """
        from ..intervene import intervene
        from ..intervene.parse import parse_edits

        args = parse_argstring(self.intervene, line)
        model = lookup(self.shell, args.model)
        if not cell.strip():
            raise UsageError("the cell body is empty: put the code that runs the model under it")
        namespace = self.shell.user_ns  # type: ignore[union-attr]
        try:
            edits = parse_edits([unquote(e) for e in args.edits], namespace)
            if args.edit_list:
                extra = lookup(self.shell, args.edit_list)
                edits += list(extra) if isinstance(extra, (list, tuple)) else [extra]
            if not edits:
                raise UsageError(
                    "give at least one edit, quoted, e.g. %%intervene model 'zero attn_out.0', "
                    "or --edits NAME with a list of intervene.edit edits"
                )
            session = intervene(model, edits, during=args.during)
            with session:
                result = run_body(self.shell, cell)
        except CaptureError as exc:
            raise UsageError(str(exc)) from None
        if not result.success:
            raise CellBodyFailed("the cell raised; the edits were removed from the model")
        if args.out:
            namespace[args.out] = session
        return None
