"""IPython magics for lenses and circuits: ``%lens``, ``%path_patch``, ``%eap``.

Thin like every magic: parse the line, call :mod:`interp_magics.lens` or
:mod:`interp_magics.circuits`, return the result (which displays itself). Kept apart from
``magics.py`` so each module stays one screenful of argument lists.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ..core.errors import CaptureError
from .arguments import comma_list, int_or_text, layer_numbers, lookup, lookup_optional, stored


def _layers(text: str | None) -> list[int] | None:
    return layer_numbers(text) if text else None


@magics_class
class CircuitMagics(Magics):
    """Lens and circuit magics."""

    @no_var_expand
    @magic_arguments()
    @argument("model", help="the model variable (GPT-2, GPT-NeoX/Pythia or Llama-family LM)")
    @argument("inputs", help="token ids, a tokenizer output, or a list of texts (with --tokenizer)")
    @argument("--answer", help="variable with the answer token id(s): one, or one per example")
    @argument("-k", type=int, default=5, help="top tokens kept per cell (default 5)")
    @argument("--layers", help="residual streams to read: 0 is the embeddings, e.g. {0-6}")
    @argument("--positions", help="positions to keep: an index, a slice '0:10' or a list")
    @argument(
        "--tuned",
        help="a tuned lens: a variable holding one (lens.train_tuned_lens, load_tuned_lens) or "
        "a quoted folder with a published checkpoint (config.json + params.pt)",
    )
    @argument(
        "--dla",
        metavar="METRIC",
        help="instead of a lens: direct logit attribution of this logit difference "
        "(patching.logit_diff(correct, wrong)) to embeddings, heads, biases and MLPs",
    )
    @argument("--tokenizer", help="tokenizer variable, for texts and token labels")
    @argument("-o", "--out", help="also store the result in this variable")
    @line_magic
    def lens(self, line: str) -> Any:
        """Show what every layer predicts (logit or tuned lens), or each part's direct logit
        attribution.

        Example::

            %lens model ids --answer answer_id --tokenizer tok
            %lens model ids --tuned my_tuned_lens
            %lens model ids --dla metric
        """
        from .. import lens

        args = parse_argstring(self.lens, line)
        model = lookup(self.shell, args.model)
        inputs = lookup(self.shell, args.inputs)
        tokenizer = lookup_optional(self.shell, args.tokenizer)
        try:
            if args.dla:
                if args.tuned or args.answer:
                    raise UsageError(
                        "--dla takes its answers from the metric: drop --tuned/--answer"
                    )
                result: Any = lens.dla(
                    model, inputs, lookup(self.shell, args.dla), tokenizer=tokenizer
                )
                return stored(self.shell, args.out, result)
            common: dict[str, Any] = dict(
                layers=_layers(args.layers),
                positions=_positions(args.positions),
                k=args.k,
                answer=lookup_optional(self.shell, args.answer),
                tokenizer=tokenizer,
            )
            if args.tuned:
                tuned = args.tuned.strip()
                chosen = tuned.strip("'\"") if tuned[:1] in "'\"" else lookup(self.shell, tuned)
                result = lens.tuned_lens(model, inputs, lens=chosen, **common)
            else:
                result = lens.logit_lens(model, inputs, **common)
        except CaptureError as exc:
            raise UsageError(str(exc)) from None
        return stored(self.shell, args.out, result)

    @no_var_expand
    @magic_arguments()
    @argument("model", help="the model variable (GPT-2, GPT-NeoX/Pythia or Llama-family LM)")
    @argument("--clean", required=True, help="clean inputs: a tokenizer output or token ids")
    @argument("--corrupt", required=True, help="corrupted inputs of the same shape")
    @argument(
        "--metric",
        required=True,
        help="a metric variable: patching.logit_diff(correct, wrong), logprob(answer), "
        "kl_to_clean(), or a function logits -> [batch]",
    )
    @argument(
        "--senders",
        help="comma-separated senders or globs: embed, L0H2, 'L0H*', MLP3 (default: all)",
    )
    @argument(
        "--receivers",
        help="comma-separated receiver sets, one column each: L1H0.q, 'L1H*.k' (a glob is one "
        "set), L1H0 (its q, k and v), MLP2, logits (default: every head, MLP and the logits)",
    )
    @argument("--direction", default="noising", choices=["noising", "denoising"])
    @argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bars (e.g. in notebooks saved with their outputs)",
    )
    @argument("-o", "--out", help="also store the PathPatchResult in this variable")
    @line_magic
    def path_patch(self, line: str) -> Any:
        """Run path patching: each sender's corrupted output sent to chosen receivers only.

        Example::

            %path_patch model --clean clean --corrupt corrupt --metric metric \\
                --senders L0H2 --receivers 'L1H*.k,L1H*.q'
        """
        from ..circuits import path_patch

        args = parse_argstring(self.path_patch, line)
        try:
            result = path_patch(
                lookup(self.shell, args.model),
                lookup(self.shell, args.clean),
                lookup(self.shell, args.corrupt),
                lookup(self.shell, args.metric),
                senders=comma_list(args.senders) if args.senders else None,
                receivers=comma_list(args.receivers) if args.receivers else None,
                direction=args.direction,
                progress=args.progress,
            )
        except CaptureError as exc:
            raise UsageError(str(exc)) from None
        return stored(self.shell, args.out, result)

    @no_var_expand
    @magic_arguments()
    @argument("model", help="the model variable (GPT-2, GPT-NeoX/Pythia or Llama-family LM)")
    @argument("--clean", required=True, help="clean inputs: a tokenizer output or token ids")
    @argument("--corrupt", required=True, help="corrupted inputs of the same shape")
    @argument("--metric", required=True, help="a metric variable, as for %%patch")
    @argument("--method", default="eap", choices=["eap", "eap-ig"])
    @argument("--steps", type=int, default=5, help="EAP-IG: points on the path (default 5)")
    @argument(
        "--verify",
        type=int,
        default=0,
        metavar="K",
        help="check the top K edges and K random others by exact edge patching",
    )
    @argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bars (e.g. in notebooks saved with their outputs)",
    )
    @argument("-o", "--out", help="also store the EdgeScores in this variable")
    @line_magic
    def eap(self, line: str) -> Any:
        """Score every edge of the model's graph by edge attribution patching (EAP, EAP-IG).

        Example::

            %eap model --clean clean --corrupt corrupt --metric metric --method eap-ig --verify 10
        """
        from ..circuits import eap

        args = parse_argstring(self.eap, line)
        if args.verify < 0:
            raise UsageError("--verify takes a number of edges (0 or more)")
        try:
            scores = eap(
                lookup(self.shell, args.model),
                lookup(self.shell, args.clean),
                lookup(self.shell, args.corrupt),
                lookup(self.shell, args.metric),
                method=args.method,
                steps=args.steps,
                progress=args.progress,
            )
            if args.verify:
                scores.verify(top=args.verify, random=args.verify)
        except CaptureError as exc:
            raise UsageError(str(exc)) from None
        return stored(self.shell, args.out, scores)


def _positions(text: str | None) -> Any:
    """Return a ``--positions`` option as the lens takes it: an int, a list, or a slice text."""
    if text is None:
        return None
    items = comma_list(text)
    if len(items) > 1:
        return [int(x) for x in items]
    value = int_or_text(items[0]) if items else text
    return value
