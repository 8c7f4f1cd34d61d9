"""IPython magics: parse the line, call the core, display the result.

Load with ``%load_ext interp_magics``. Every magic is ``@no_var_expand`` because the site
grammar uses braces (``transformer.h.{0-5}.attn``) that IPython would otherwise expand.
"""

from __future__ import annotations

import contextlib
import difflib
import keyword
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import (
    Magics,
    line_cell_magic,
    line_magic,
    magics_class,
    no_var_expand,
)
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from . import events
from .errors import CaptureError
from .kernel_bridge import KernelBridge, cache_listing
from .ledger import Ledger
from .sites import PatternError

_STATE_ATTR = "_interp_magics_state"


class CellBodyFailed(Exception):
    """The body of a cell magic raised; its traceback was already shown above."""

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


@magics_class
class InterpMagics(Magics):
    """The interp-magics magics."""

    @no_var_expand
    @magic_arguments("%activations")  # usage line reads %%activations: it is a cell magic
    @argument("model", help="the model variable: any torch.nn.Module in the notebook")
    @argument(
        "-m",
        "--module",
        dest="modules",
        action="append",
        metavar="PATTERN",
        help="what to capture (repeatable): a glob over module names such as "
        "'transformer.h.*.mlp' or 'encoder.layer.{0-3}.output' (* stays within one name "
        "component, ** crosses them), or a canonical site: resid_pre, resid_post, attn_out, "
        "mlp_out, pattern, optionally with a layer ('resid_post.3', 'pattern.{0-2}')",
    )
    @argument(
        "-o", "--out", default="acts", help="variable that receives the cache (default: acts)"
    )
    @argument("--dtype", help="store activations as float16, bfloat16, float32 or float64")
    @argument("--device", default="cpu", help="where stored tensors live (default: cpu)")
    @argument(
        "--positions",
        help="keep only these sequence positions: -1, 0:10, ::2 or 3,5,-1 (dim 1; query "
        "positions for attention patterns); write --positions=-3: when it starts with '-' and "
        "holds a colon",
    )
    @argument(
        "--max-bytes",
        dest="max_bytes",
        help="refuse captures estimated above this size, e.g. 2GiB (default: half the free memory)",
    )
    @argument("--inputs", action="store_true", help="also store each module's input (name:input)")
    @argument(
        "--grad",
        action="store_true",
        help="also store gradients of the captured tensors (name:grad); "
        "call .backward() in the cell",
    )
    @argument("--select", help="which element of tuple/dict outputs to store: an index or a key")
    @argument("-q", "--quiet", action="store_true", help="do not display the cache table")
    @line_cell_magic
    def activations(self, line: str, cell: str | None = None) -> Any:
        """Run the cell with activation capture on and store an ActivationCache.

        Example::

            %%activations model -m "transformer.h.*.mlp" -m "transformer.h.*.attn" -o acts
            logits = model(**batch).logits

        The cell runs as it would without the magic; afterwards ``acts`` maps each captured
        module (or canonical site such as ``resid_post.3``) to a detached tensor, and its table
        (name, shape, dtype, device, bytes, total) is shown. Hooks are removed when the cell
        ends, also when it raises or is interrupted. If the cell raises, the output variable is
        left as it was.

        ``%activations`` alone (one %, no cell body) lists the activation caches in this
        kernel with their tensors, bytes, dtypes and devices, and the total: the same data as
        the JupyterLab sidebar, for front ends without it (VS Code).
        """
        if cell is None:
            if line.strip():
                raise UsageError(
                    "%activations with arguments needs a cell body: write %%activations "
                    f"{line.strip()} on the first line of a cell, with the code that calls "
                    "the model below it (%activations alone lists the caches)"
                )
            return cache_listing(self.shell)
        from .capturing import Capture

        args = parse_argstring(self.activations, line)
        if not args.modules:
            raise UsageError(
                "say what to capture with -m PATTERN, "
                "e.g. -m 'transformer.h.*.mlp' or -m resid_post"
            )
        if not cell.strip():
            raise UsageError(
                "the cell body is empty: put the code that calls the model under the magic"
            )
        out = _output_name(args.out)
        model = self._lookup(args.model)
        select: int | str | None = args.select
        if args.select is not None and args.select.lstrip("-").isdigit():
            select = int(args.select)
        try:
            cap = Capture(
                model,
                [_unquote(m) for m in args.modules],
                dtype=args.dtype,
                device=args.device,
                positions=_unquote(args.positions) if args.positions else None,
                max_bytes=args.max_bytes,
                inputs=args.inputs,
                grad=args.grad,
                select=select,
            )
        except CaptureError as exc:
            raise UsageError(str(exc)) from None
        with cap as cache:
            result = self._run_body(cell)
            if not result.success:
                raise CellBodyFailed(
                    f"the cell raised, so nothing was captured and {out!r} is unchanged"
                )
        self.shell.user_ns[out] = cache  # type: ignore[union-attr]
        return None if args.quiet else cache

    @no_var_expand
    @magic_arguments()
    @argument(
        "source",
        help="a model (then give INPUT), or an ActivationCache captured with -m pattern, "
        "or an AttentionPatterns result",
    )
    @argument(
        "input",
        nargs="?",
        help="what to run the model on: a tokenizer output, a tensor of token ids, or a "
        "string / list of strings (with --tokenizer)",
    )
    @argument("--tokenizer", help="tokenizer variable, for token labels and for text input")
    @argument("--layers", help="which layers, e.g. {0-3} or -1 (default: all)")
    @argument(
        "--batch-index", dest="batch_index", type=int, default=0, help="sequence to show first"
    )
    @argument("--head", help="head to open in detail, as LAYER,HEAD (layer index, head)")
    @argument("-o", "--out", help="also store the view in this variable")
    @line_magic
    def attention(self, line: str) -> Any:
        """Show attention patterns in an interactive viewer.

        Examples::

            %attention model batch --tokenizer tok     # run the model, view every layer
            %attention acts --tokenizer tok            # view a cache captured with -m pattern

        The overview shows every layer x head; click one to see it in detail (hover for the
        exact weight), or click a token for the focus-token mode. ``view.selected`` follows
        clicks, so you can continue in code from what you looked at.
        """
        from .attention import (
            AttentionInputError,
            AttentionPatterns,
            attention_patterns,
            patterns_from_cache,
        )
        from .cache import ActivationCache

        args = parse_argstring(self.attention, line)
        source = self._lookup(args.source)
        tokenizer = self._lookup(args.tokenizer) if args.tokenizer else None
        try:
            if isinstance(source, AttentionPatterns):
                patterns = source
            elif isinstance(source, ActivationCache):
                patterns = patterns_from_cache(source, tokenizer=tokenizer)
            else:
                if args.input is None:
                    raise UsageError(
                        f"%attention {args.source} needs INPUT: the batch, token ids or text to "
                        "run the model on (or pass a cache captured with -m pattern)"
                    )
                layers = _unquote(args.layers) if args.layers else None
                patterns = attention_patterns(
                    source, self._lookup(args.input), tokenizer=tokenizer, layers=layers
                )
            selected = _pair(args.head) if args.head else (0, 0)
            view = patterns.widget(selected=selected, batch_index=args.batch_index)
        except (CaptureError, AttentionInputError) as exc:
            raise UsageError(str(exc)) from None
        return self._stored(args.out, view)

    @no_var_expand
    @magic_arguments()
    @argument("model", help="the model variable (GPT-2, GPT-NeoX, Llama-family or BERT-family)")
    @argument("--clean", required=True, help="clean inputs: a tokenizer output or token ids")
    @argument("--corrupt", help="corrupted inputs of the same shape (counterfactual prompts)")
    @argument(
        "--noise",
        type=float,
        help="instead of --corrupt: Gaussian noise on embeddings (x their std)",
    )
    @argument(
        "--metric",
        required=True,
        help="a metric variable: patching.logit_diff(correct, wrong), logprob(answer), "
        "kl_to_clean(), or a function logits -> [batch]",
    )
    @argument(
        "--site", default="resid_pre", help="resid_pre, resid_post, attn_out, mlp_out or head_out"
    )
    @argument("--by", default="layer,pos", help="layer | layer,pos | layer,head | layer,head,pos")
    @argument("--method", default="exact", choices=["exact", "attribution"])
    @argument("--direction", default="denoising", choices=["denoising", "noising"])
    @argument(
        "--verify-top",
        dest="verify_top",
        type=int,
        default=0,
        help="with attribution: check the top K exactly",
    )
    @argument("--layers", help="only these layers, e.g. {0-3} or 0,5")
    @argument("--tokenizer", help="tokenizer variable, for token labels")
    @argument("-o", "--out", help="also store the PatchResult in this variable")
    @line_magic
    def patch(self, line: str) -> Any:
        """Run an activation-patching sweep and show its heatmap.

        Example::

            metric = patching.logit_diff(correct_ids, wrong_ids)
            %patch model --clean clean --corrupt corrupt --metric metric --tokenizer tok

        Denoising (the default) runs the corrupted prompts and patches in clean activations:
        1 means the cell restores the clean behaviour, 0 that it does nothing.
        """
        from .patching import activation_patch
        from .sites import expand_braces

        args = parse_argstring(self.patch, line)
        if args.corrupt is None and args.noise is None:
            raise UsageError("give --corrupt (counterfactual prompts) or --noise STD")
        model = self._lookup(args.model)
        layers = None
        if args.layers:
            text = _unquote(args.layers)
            try:
                layers = [int(x) for part in text.split(",") for x in expand_braces(part)]
            except ValueError:
                raise UsageError(f"--layers {text!r}: write e.g. {{0-3}} or 0,5") from None
        try:
            result = activation_patch(
                model,
                self._lookup(args.clean),
                self._lookup(args.corrupt) if args.corrupt else None,
                self._lookup(args.metric),
                site=args.site,
                by=tuple(a.strip() for a in _unquote(args.by).split(",")),
                method=args.method,
                direction=args.direction,
                noise=args.noise,
                verify_top=args.verify_top,
                layers=layers,
                tokenizer=self._lookup(args.tokenizer) if args.tokenizer else None,
            )
        except (CaptureError, PatternError) as exc:
            raise UsageError(str(exc)) from None
        return self._stored(args.out, result)

    @no_var_expand
    @magic_arguments()
    @argument(
        "acts", help="an ActivationCache (probes every layer) or an array [examples, features]"
    )
    @argument("labels", help="the labels variable: one class per example (or per token)")
    @argument(
        "--controls",
        default="shuffled,random_features,majority",
        help="comma-separated: shuffled, random_features, majority (default: all)",
    )
    @argument("--permutations", type=int, default=1000, help="label permutations (default 1000)")
    @argument(
        "--layers", help="cache keys or a pattern, e.g. resid_post.{2-5} (default: resid_post)"
    )
    @argument(
        "--position", default="last", help="last | first | mean | an index (per-sequence labels)"
    )
    @argument("--estimator", default="ridge", help="ridge | logistic | mlp")
    @argument("--cv", type=int, default=5, help="cross-validation folds (default 5)")
    @argument("--seed", type=int, default=0)
    @argument("--groups", help="variable with a group per example (e.g. sentence or word type)")
    @argument(
        "--control-task", dest="control_task", help="variable with word types for a control task"
    )
    @argument(
        "--correction", default="fdr_bh", help="multipletests method across layers (default fdr_bh)"
    )
    @argument("--mi", action="store_true", help="also estimate mutual information")
    @argument("--model", help="with --inputs: probe a randomly re-initialised copy as a control")
    @argument("--inputs", help="the inputs the cache was captured on (for --model)")
    @argument("-o", "--out", help="also store the report in this variable")
    @line_magic
    def probe(self, line: str) -> Any:
        """Probe activations for labels, with controls, confidence intervals and corrections.

        Examples::

            %probe acts labels                       # every layer of a cache, corrected
            %probe acts labels --layers resid_post.3 --control-task word_types
            %probe X labels --estimator logistic      # a feature matrix

        The report shows the probe's held-out accuracy next to its controls (shuffled labels,
        random features, chance levels); a probe is never reported alone.
        """
        from .cache import ActivationCache
        from .probes import probe, probe_layers

        args = parse_argstring(self.probe, line)
        acts = self._lookup(args.acts)
        labels = self._lookup(args.labels)
        controls = tuple(c.strip() for c in _unquote(args.controls).split(",") if c.strip())
        position: int | str = _unquote(args.position)
        if isinstance(position, str) and position.lstrip("-").isdigit():
            position = int(position)
        kwargs: dict[str, Any] = {
            "controls": controls,
            "n_permutations": args.permutations,
            "cv": args.cv,
            "seed": args.seed,
            "estimator": args.estimator,
            "mutual_info": args.mi,
        }
        if args.groups:
            kwargs["groups"] = self._lookup(args.groups)
        if args.control_task:
            kwargs["control_task"] = self._lookup(args.control_task)
        try:
            if isinstance(acts, ActivationCache):
                result: Any = probe_layers(
                    acts,
                    labels,
                    layers=_unquote(args.layers) if args.layers else None,
                    position=position,
                    correction=args.correction,
                    model=self._lookup(args.model) if args.model else None,
                    inputs=self._lookup(args.inputs) if args.inputs else None,
                    **kwargs,
                )
            else:
                if args.layers or args.model:
                    raise UsageError("--layers and --model need an ActivationCache as ACTS")
                result = probe(acts, labels, **kwargs)
        except CaptureError as exc:
            raise UsageError(str(exc)) from None
        return self._stored(args.out, result)

    @no_var_expand
    @magic_arguments()
    @argument("notebook", nargs="?", help="the notebook to check (default: this kernel's notebook)")
    @argument("--select", help="comma-separated rule ids or prefixes to run")
    @argument("--ignore", help="comma-separated rule ids or prefixes to skip")
    @argument(
        "--no-suppress",
        dest="no_suppress",
        action="store_true",
        help="show suppressed findings as active",
    )
    @line_magic
    def rigor(self, line: str) -> Any:
        """Check this notebook for methodological gaps, with what this kernel actually ran.

        Reads the saved notebook (save first) and combines it with the analysis ledger of this
        kernel. Each finding names the cell (with a link that jumps to it), what is missing, the
        fix and a citation. ``interp-rigor`` runs the same checks from a terminal or CI.
        """
        from .rigor import check
        from .rigor.notebook import NotebookError

        args = parse_argstring(self.rigor, line)
        path = _unquote(args.notebook) if args.notebook else _current_notebook(self.shell)
        if path is None:
            raise UsageError(
                "cannot tell which notebook this kernel runs; give its path, "
                "e.g. %rigor analysis.ipynb"
            )
        split = lambda t: [x for x in _unquote(t).split(",") if x.strip()] if t else None  # noqa: E731
        try:
            findings = check(
                path,
                ledger=get_ledger(self.shell),
                select=split(args.select),
                ignore=split(args.ignore),
                suppress=not args.no_suppress,
            )
        except NotebookError as exc:
            raise UsageError(str(exc)) from None
        findings.note = (
            f"checked the saved file {path} with this kernel's ledger; save to include recent edits"
        )
        return findings

    def _run_body(self, cell: str) -> Any:
        """Run ``cell`` like a normal cell; return its ExecutionResult."""
        hook = self.shell.displayhook  # type: ignore[union-attr]
        outer = getattr(hook, "exec_result", None)
        try:
            return self.shell.run_cell(cell, store_history=False)  # type: ignore[union-attr]
        finally:
            # The nested run resets the display hook's result; give the outer cell its own
            # back so the cache displays as this cell's output.
            hook.exec_result = outer

    def _stored(self, out: str | None, value: Any) -> Any:
        """Return ``value`` after binding it to the variable ``out`` (when one was given)."""
        if out:
            self.shell.user_ns[_output_name(out)] = value  # type: ignore[union-attr]
        return value

    def _lookup(self, expr: str) -> Any:
        """Return the object a dotted name refers to in the user namespace."""
        expr = _unquote(expr)
        head, *rest = expr.split(".")
        ns = self.shell.user_ns  # type: ignore[union-attr]
        if not head.isidentifier():
            raise UsageError(
                f"{expr!r} is not a variable name; pass the name of the model variable"
            )
        if head not in ns:
            near = difflib.get_close_matches(head, [k for k in ns if not k.startswith("_")], n=3)
            hint = f" Did you mean {', '.join(near)}?" if near else ""
            raise UsageError(f"name {head!r} is not defined in the notebook.{hint}")
        obj = ns[head]
        for i, attr in enumerate(rest):
            if not hasattr(obj, attr):
                where = ".".join([head, *rest[:i]])
                raise UsageError(f"{where!r} has no attribute {attr!r}")
            obj = getattr(obj, attr)
        return obj


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _current_notebook(shell: Any) -> str | None:
    """Return the path of the notebook this kernel runs, when the front end tells it."""
    import os
    from pathlib import Path

    candidates = [shell.user_ns.get("__vsc_ipynb_file__"), os.environ.get("JPY_SESSION_NAME")]
    for candidate in candidates:
        if not candidate:
            continue
        path = Path(str(candidate))
        for option in (path, Path.cwd() / path.name):
            if option.suffix == ".ipynb" and option.is_file():
                return str(option)
    return None


def _pair(text: str) -> tuple[int, int]:
    parts = _unquote(text).replace(" ", "").split(",")
    if len(parts) != 2 or not all(p.lstrip("-").isdigit() for p in parts):
        raise UsageError(f"--head {text!r}: write LAYER,HEAD, e.g. --head 3,5")
    return int(parts[0]), int(parts[1])


def _output_name(name: str) -> str:
    name = _unquote(name)
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"-o {name!r} is not a valid variable name")
    return name


class _State:
    """What the extension installed in one shell, so unload can remove exactly that."""

    def __init__(self, shell: Any) -> None:
        self.ledger = Ledger()
        self.callbacks = {
            "pre_run_cell": self.ledger.pre_run_cell,
            "post_run_cell": self.ledger.post_run_cell,
        }
        for name, callback in self.callbacks.items():
            shell.events.register(name, callback)
        self.unsubscribe = events.subscribe(self.ledger.record)
        # After the ledger's events: the snapshot pushed on post_run_cell then carries the
        # ledger entries of the cell that just ended, with their execution counts.
        self.bridge = KernelBridge(shell, self.ledger)
        self.bridge.install()
        self.magics = InterpMagics(shell)
        shell.register_magics(self.magics)

    def remove(self, shell: Any) -> None:
        self.bridge.remove()
        for name, callback in self.callbacks.items():
            with contextlib.suppress(ValueError):  # already gone: unload must be idempotent
                shell.events.unregister(name, callback)
        self.unsubscribe()
        manager = shell.magics_manager
        for kind, table in self.magics.magics.items():
            for name in table:
                registered = manager.magics[kind].get(name)
                if getattr(registered, "__self__", None) is self.magics:
                    del manager.magics[kind][name]
        if manager.registry.get(type(self.magics).__name__) is self.magics:
            del manager.registry[type(self.magics).__name__]


def load(shell: Any) -> None:
    """Install the magics, ledger events and subscriptions in ``shell`` (idempotent)."""
    if getattr(shell, _STATE_ATTR, None) is not None:
        return
    setattr(shell, _STATE_ATTR, _State(shell))


def unload(shell: Any) -> None:
    """Remove everything :func:`load` installed from ``shell``, and any hooks still owned."""
    from .hooks import remove_owned_hooks

    state = getattr(shell, _STATE_ATTR, None)
    if state is not None:
        state.remove(shell)
        setattr(shell, _STATE_ATTR, None)
    remove_owned_hooks()


def get_ledger(shell: Any) -> Ledger | None:
    """Return the ledger of ``shell`` while the extension is loaded there, else None."""
    state = getattr(shell, _STATE_ATTR, None)
    return state.ledger if state is not None else None


def get_bridge(shell: Any) -> KernelBridge | None:
    """Return the sidebar bridge of ``shell`` while the extension is loaded there, else None."""
    state = getattr(shell, _STATE_ATTR, None)
    return state.bridge if state is not None else None
