"""IPython magics: parse the line, call the core, display the result.

Load with ``%load_ext interp_magics``. Every magic is ``@no_var_expand`` because the site
grammar uses braces (``transformer.h.{0-5}.attn``) that IPython would otherwise expand.

This module is a little over 400 lines because each magic's ``@argument`` list is its
``%name?`` help; the parsing helpers they share live in ``arguments.py``.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ..core.errors import CaptureError
from ..core.sites import PatternError
from .arguments import (
    comma_list,
    current_notebook,
    head_pair,
    int_or_text,
    layer_numbers,
    lookup,
    lookup_optional,
    output_name,
    stored,
    unquote,
)
from .bridge import cache_listing
from .cell_body import CellBodyFailed, body_value, run_body
from .state import get_ledger


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
    @argument(
        "--trace",
        action="store_true",
        help="capture through one nnsight trace (an nnsight model; a HuggingFace model is simply "
        "called): the cell's last line is the model input, token ids or a tokenizer output",
    )
    @argument(
        "--remote",
        action="store_true",
        help="like --trace, on NDIF (an nnsight model whose weights live there; set your key "
        "with nnsight.CONFIG.set_default_api_key)",
    )
    @argument(
        "--store",
        metavar="PATH",
        help="also append the capture to the activation store at PATH (a folder or an fsspec "
        "URL), as interp_magics.store.harvest writes them; one call of the model per cell",
    )
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
        from ..core.capturing import Capture

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
        out = output_name(args.out)
        model = lookup(self.shell, args.model)
        try:
            cap = Capture(
                model,
                [unquote(m) for m in args.modules],
                dtype=args.dtype,
                device=args.device,
                positions=unquote(args.positions) if args.positions else None,
                max_bytes=args.max_bytes,
                inputs=args.inputs,
                grad=args.grad,
                select=None if args.select is None else int_or_text(args.select),
            )
        except CaptureError as exc:
            raise UsageError(str(exc)) from None
        if args.trace or args.remote:
            if args.remote and cap.traced is None:
                raise UsageError(
                    f"--remote needs an nnsight model (nnsight.LanguageModel or NNsight(module)); "
                    f"{args.model} is a {type(model).__name__}, which runs here: drop --remote"
                )
            try:
                cache = cap.run(body_value(self.shell, cell), remote=args.remote)
            except CaptureError as exc:
                raise UsageError(str(exc)) from None
            self.shell.user_ns[out] = cache  # type: ignore[union-attr]
            return None if args.quiet else cache
        with cap as cache:
            result = run_body(self.shell, cell)
            if not result.success:
                raise CellBodyFailed(
                    f"the cell raised, so nothing was captured and {out!r} is unchanged"
                )
        if args.store:
            from ..store.harvesting import store_cache

            try:
                cache.notes.append(
                    store_cache(
                        cap.model,
                        cache,
                        unquote(args.store),
                        cap.patterns,
                        positions=unquote(args.positions) if args.positions else None,
                        dtype=args.dtype,
                    )
                )
            except CaptureError as exc:
                raise UsageError(f"{exc} ({out!r} holds the capture)") from None
            finally:
                self.shell.user_ns[out] = cache  # type: ignore[union-attr]
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
    @argument(
        "--trace",
        action="store_true",
        help="an nnsight model: run one trace (queries and keys saved, weights computed here)",
    )
    @argument("--remote", action="store_true", help="an nnsight model: run the trace on NDIF")
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
        from ..attention import (
            AttentionInputError,
            AttentionPatterns,
            attention_patterns,
            patterns_from_cache,
        )
        from ..core.cache import ActivationCache

        args = parse_argstring(self.attention, line)
        source = lookup(self.shell, args.source)
        tokenizer = lookup_optional(self.shell, args.tokenizer)
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
                layers = unquote(args.layers) if args.layers else None
                patterns = attention_patterns(
                    source,
                    lookup(self.shell, args.input),
                    tokenizer=tokenizer,
                    layers=layers,
                    trace=args.trace,
                    remote=args.remote,
                )
            selected = head_pair(args.head) if args.head else (0, 0)
            view = patterns.widget(selected=selected, batch_index=args.batch_index)
        except (CaptureError, AttentionInputError) as exc:
            raise UsageError(str(exc)) from None
        return stored(self.shell, args.out, view)

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
    @argument("--trace", action="store_true", help="an nnsight model: run the sweep through traces")
    @argument("--remote", action="store_true", help="an nnsight model: run the sweep on NDIF")
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
        from ..patching import activation_patch

        args = parse_argstring(self.patch, line)
        if args.corrupt is None and args.noise is None:
            raise UsageError("give --corrupt (counterfactual prompts) or --noise STD")
        model = lookup(self.shell, args.model)
        layers = layer_numbers(args.layers) if args.layers else None
        try:
            result = activation_patch(
                model,
                lookup(self.shell, args.clean),
                lookup_optional(self.shell, args.corrupt),
                lookup(self.shell, args.metric),
                site=args.site,
                by=tuple(a.strip() for a in unquote(args.by).split(",")),
                method=args.method,
                direction=args.direction,
                noise=args.noise,
                verify_top=args.verify_top,
                layers=layers,
                tokenizer=lookup_optional(self.shell, args.tokenizer),
                trace=args.trace,
                remote=args.remote,
            )
        except (CaptureError, PatternError) as exc:
            raise UsageError(str(exc)) from None
        return stored(self.shell, args.out, result)

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
        from ..core.cache import ActivationCache
        from ..probes import probe, probe_layers

        args = parse_argstring(self.probe, line)
        acts = lookup(self.shell, args.acts)
        labels = lookup(self.shell, args.labels)
        kwargs: dict[str, Any] = {
            "controls": tuple(comma_list(args.controls)),
            "n_permutations": args.permutations,
            "cv": args.cv,
            "seed": args.seed,
            "estimator": args.estimator,
            "mutual_info": args.mi,
        }
        if args.groups:
            kwargs["groups"] = lookup(self.shell, args.groups)
        if args.control_task:
            kwargs["control_task"] = lookup(self.shell, args.control_task)
        try:
            if isinstance(acts, ActivationCache):
                result: Any = probe_layers(
                    acts,
                    labels,
                    layers=unquote(args.layers) if args.layers else None,
                    position=int_or_text(unquote(args.position)),
                    correction=args.correction,
                    model=lookup_optional(self.shell, args.model),
                    inputs=lookup_optional(self.shell, args.inputs),
                    **kwargs,
                )
            else:
                if args.layers or args.model:
                    raise UsageError("--layers and --model need an ActivationCache as ACTS")
                result = probe(acts, labels, **kwargs)
        except CaptureError as exc:
            raise UsageError(str(exc)) from None
        return stored(self.shell, args.out, result)

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
        fix and a citation; ``interp-rigor --explain RULE`` prints a rule's page. Without a
        path, the notebook is the one the front end names or, under nbclient and nbconvert,
        the one in the kernel's working directory holding the code this kernel ran.
        ``interp-rigor`` runs the same checks from a terminal or CI.
        """
        from ..rigor import check
        from ..rigor.notebook import NotebookError

        args = parse_argstring(self.rigor, line)
        path = unquote(args.notebook) if args.notebook else current_notebook(self.shell)
        if path is None:
            raise UsageError(
                "cannot tell which notebook this kernel runs: the front end did not name it "
                "(nbclient and nbconvert do not) and no notebook in the working directory holds "
                "this cell; give its path, e.g. %rigor analysis.ipynb"
            )
        try:
            findings = check(
                path,
                ledger=get_ledger(self.shell),
                select=comma_list(args.select) if args.select else None,
                ignore=comma_list(args.ignore) if args.ignore else None,
                suppress=not args.no_suppress,
            )
        except NotebookError as exc:
            raise UsageError(str(exc)) from None
        findings.note = (
            f"checked the saved file {path} with this kernel's ledger; save to include recent edits"
        )
        return findings
