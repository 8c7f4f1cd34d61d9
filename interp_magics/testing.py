"""Small real models for tests, benchmarks and examples, built offline.

Everything here builds from configs with random weights (no download): GPT-2, Llama
(grouped-query attention) and GPT-NeoX models, a byte-level BPE tokenizer trained on a few
sentences, and a TransformerLens ``TransformerBridge`` over a GPT-2. Requires ``transformers``
(and ``transformer_lens`` for the bridge).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

SENTENCES = (
    "the cat sat on the mat",
    "when mary and john went to the store, john gave a drink to mary",
    "attention is all you need",
    "the quick brown fox jumps over the lazy dog",
)


def gpt2(
    n_layer: int = 3, n_embd: int = 64, n_head: int = 4, vocab_size: int = 97, seed: int = 0
) -> Any:
    """Return a random-weight ``GPT2LMHeadModel`` in eval mode."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        vocab_size=vocab_size,
        n_positions=max(128, 2 * n_embd),
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPT2LMHeadModel(config).eval()


def llama(
    n_layer: int = 3, hidden: int = 64, heads: int = 4, kv_heads: int = 2, seed: int = 0
) -> Any:
    """Return a random-weight ``LlamaForCausalLM`` with grouped-query attention, in eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        num_hidden_layers=n_layer,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=2 * hidden,
        vocab_size=97,
        max_position_embeddings=128,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


def neox(n_layer: int = 3, hidden: int = 64, heads: int = 4, seed: int = 0) -> Any:
    """Return a random-weight ``GPTNeoXForCausalLM`` (Pythia layout), in eval mode."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    config = GPTNeoXConfig(
        num_hidden_layers=n_layer,
        hidden_size=hidden,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        vocab_size=97,
        max_position_embeddings=128,
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPTNeoXForCausalLM(config).eval()


def bpe_tokenizer(vocab_size: int = 400) -> Any:
    """Return a ``PreTrainedTokenizerFast`` (byte-level BPE) trained offline on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(SENTENCES), trainer)
    special = "<|endoftext|>"
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=special, eos_token=special, unk_token=special
    )


def transformer_bridge(hf_model: Any, directory: str | Path | None = None) -> Any:
    """Return a TransformerLens ``TransformerBridge`` over ``hf_model`` (a GPT-2), offline.

    The bridge needs a tokenizer and config on disk; both are written to ``directory`` (a new
    temporary folder by default). The tokenizer's vocabulary must not exceed the model's.
    """
    from transformer_lens.model_bridge import TransformerBridge

    folder = Path(directory or tempfile.mkdtemp(prefix="interp-magics-bridge-"))
    tok = bpe_tokenizer(vocab_size=min(400, int(hf_model.config.vocab_size)))
    tok.save_pretrained(folder)
    hf_model.save_pretrained(folder)
    return TransformerBridge.boot_transformers(str(folder), hf_model=hf_model, device="cpu")


# -- a real JupyterLab and a real browser, for end-to-end tests and benchmarks ------------------

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium_path() -> str:
    """Return the path of the system Chromium, or raise saying how to install it."""
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError(
            "Chromium is needed for the browser tests: install it with "
            "`apt-get install -y chromium` (scripts/setup.sh does this when run as root)"
        )
    return path


def launch_chromium(playwright: Any) -> Any:
    """Return a headless Chromium browser (the system one) started through Playwright."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_ARGS))


class LabServer:
    """A ``jupyter lab`` started for one test session, on 127.0.0.1 with a random token.

    Use as a context manager; ``url(path)`` gives an address with the token. The server runs
    with its own settings and workspace folders (so no earlier layout or news toast appears)
    and exposes ``window.jupyterapp`` to the page for tests.
    """

    def __init__(self, root: str | Path, *, timeout: float = 90.0) -> None:
        import secrets

        self.root = Path(root)
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.timeout = timeout
        self.process: Any = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """Return the address of ``path`` on this server, with the token."""
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def __enter__(self) -> LabServer:
        import json
        import subprocess
        import sys
        import time

        state = self.root / ".lab-state"
        settings = state / "settings" / "@jupyterlab"
        (settings / "apputils-extension").mkdir(parents=True, exist_ok=True)
        (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        (settings / "notebook-extension").mkdir(parents=True, exist_ok=True)
        (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
            json.dumps({"windowingMode": "none"})
        )
        self._log = open(state / "server.log", "w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}",
                f"--LabApp.workspaces_dir={state / 'ws'}",
                f"--LabApp.user_settings_dir={state / 'settings'}",
                "--LabApp.expose_app_in_browser=True",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + self.timeout
        while True:
            try:
                self.get("api/status")
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"jupyter lab exited; see {state / 'server.log'}") from None
                if time.time() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError(
                        f"jupyter lab did not start in {self.timeout:.0f} s"
                    ) from None
                time.sleep(0.3)

    def get(self, path: str) -> Any:
        """Return the JSON answer of a GET to the server's REST API."""
        import json
        import urllib.request

        req = urllib.request.Request(
            f"{self.base}/{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def stop_kernels(self) -> int:
        """Shut down every session and kernel on this server; return how many kernels ran.

        Browser tests share one server: each stops its kernels so that later tests do not
        run beside earlier kernels' models (several torch kernels can exhaust a small machine).
        """
        for session in self.get("api/sessions"):
            self._send("DELETE", f"api/sessions/{session['id']}", timeout=30)
        kernels = self.get("api/kernels")
        for kernel in kernels:
            self._send("DELETE", f"api/kernels/{kernel['id']}", timeout=30)
        return len(kernels)

    def _send(self, method: str, path: str, *, timeout: float) -> None:
        """Send a bodiless request to the REST API; a server already gone is not an error."""
        import contextlib
        import urllib.request

        req = urllib.request.Request(
            f"{self.base}/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with contextlib.suppress(OSError):
            urllib.request.urlopen(req, timeout=timeout)

    def __exit__(self, *exc: object) -> None:
        import subprocess

        self._send("POST", "api/shutdown", timeout=5)
        if self.process is not None:
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cells(page: Any, count: int, *, timeout: float = 120.0) -> None:
    """Run the first ``count`` code cells of the open notebook, one by one, from the keyboard.

    Works alike in JupyterLab and Notebook 7. Each cell is run and waited for (its prompt shows
    an execution count); a request sent while the kernel connection was still settling can be
    lost without a trace, so a cell that does not start is run again.
    """
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=90_000)
    for i in range(count):
        cell = page.locator(".jp-CodeCell").nth(i)
        prompt = cell.locator(".jp-InputPrompt")
        for attempt in range(3):
            raise_on_dialog(page)
            prompt.click()
            page.keyboard.press("Escape")
            page.keyboard.press("Control+Enter")
            try:
                page.wait_for_function(
                    "el => /\\[\\d+\\]/.test(el.innerText)",
                    arg=prompt.element_handle(),
                    timeout=timeout * 1000 if attempt else 15_000,
                )
                break
            except Exception:
                if "*" in prompt.inner_text():
                    page.wait_for_function(
                        "el => /\\[\\d+\\]/.test(el.innerText)",
                        arg=prompt.element_handle(),
                        timeout=timeout * 1000,
                    )
                    break
        else:
            raise RuntimeError(f"cell {i} did not run after 3 attempts")


def raise_on_dialog(page: Any) -> None:
    """Raise with its text when JupyterLab shows a modal dialog (e.g. "Kernel Restarting").

    A dialog would otherwise only block clicks until a timeout that does not say why.
    """
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        text = " ".join(dialog.first.inner_text().split())
        raise RuntimeError(f"JupyterLab shows a dialog: {text!r}")


def write_notebook(path: str | Path, cells: list[str]) -> Path:
    """Return the path of a new Python notebook with ``cells`` (``#md\\n`` starts markdown)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for source in cells:
        if source.startswith("#md\n"):
            nb.cells.append(nbformat.v4.new_markdown_cell(source[4:]))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source))
    path = Path(path)
    nbformat.write(nb, path)
    return path
