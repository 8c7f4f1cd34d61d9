"""Where a model's weights live and where its modules run: plain, dispatched or offloaded.

A model loaded with ``device_map="auto"`` (or passed through accelerate's ``dispatch_model``,
``cpu_offload``, ``disk_offload``) carries accelerate's hooks (``AlignDevicesHook``) on its
modules. They are not ours: this module only reads them. Each hook names the module's execution
device and whether its weights are offloaded (kept on the CPU or on disk, loaded into a ``meta``
parameter for each forward). Everything that must know where a tensor goes (the patching runner,
the memory guard, the Activations panel) asks here instead of reading the first parameter's
device, which is ``meta`` for an offloaded embedding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import CaptureError


@dataclass(frozen=True)
class Placement:
    """A model's weights by where they live, and the devices its modules run on.

    ``resident`` maps a device (``"cpu"``, ``"cuda:0"``) to the bytes of weights held there;
    ``offloaded`` maps ``"cpu"``/``"disk"`` (or ``"offloaded"`` when accelerate does not say
    which) to the bytes loaded only while their module runs; ``largest_load`` is the most bytes
    one offloaded module brings onto its execution device at a time; ``devices`` lists execution
    devices in module order; ``device_map`` is accelerate's map when the model has one.
    """

    devices: tuple[torch.device, ...]
    resident: dict[str, int] = field(default_factory=dict)
    offloaded: dict[str, int] = field(default_factory=dict)
    largest_load: int = 0
    device_map: dict[str, str] | None = None

    @property
    def dispatched(self) -> bool:
        """Return whether accelerate placed the model (several devices or offloaded weights)."""
        return self.device_map is not None or bool(self.offloaded) or len(self.devices) > 1

    def describe(self) -> str:
        """Return one line: the bytes on each device and offloaded (what is not resident)."""
        from .units import format_bytes

        parts = [f"{format_bytes(b)} on {d}" for d, b in self.resident.items()]
        parts += [
            f"{format_bytes(b)} offloaded to {w} (not resident)" for w, b in self.offloaded.items()
        ]
        return "weights: " + ", ".join(parts) if parts else "weights: none"

    def to_dict(self) -> dict[str, Any]:
        """Return the placement as plain data (for the Activations panel)."""
        return {
            "devices": [str(d) for d in self.devices],
            "resident": dict(self.resident),
            "offloaded": dict(self.offloaded),
            "dispatched": self.dispatched,
            "device_map": dict(self.device_map) if self.device_map else None,
        }


def _hooks(module: nn.Module) -> Iterator[Any]:
    """Yield accelerate's hooks on ``module`` (a ``SequentialHook`` holds several)."""
    hook = getattr(module, "_hf_hook", None)
    if hook is None:
        return
    yield from getattr(hook, "hooks", None) or (hook,)


def _hook_device(module: nn.Module) -> torch.device | None:
    for hook in _hooks(module):
        device = getattr(hook, "execution_device", None)
        if device is not None:
            if isinstance(device, int):  # accelerate names a GPU by its index
                return torch.device("cuda", device)
            return torch.device(device)
    return None


def _offloads(module: nn.Module) -> bool:
    return any(getattr(hook, "offload", False) for hook in _hooks(module))


def execution_device(module: nn.Module) -> torch.device | None:
    """Return the device ``module`` runs on: accelerate's execution device, else its weights'.

    None for a module without weights or a hook (it runs wherever its inputs are).
    """
    device = _hook_device(module)
    if device is not None:
        return device
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.device.type != "meta":
            return tensor.device
    return None


def input_device(model: nn.Module) -> torch.device:
    """Return the device the model's token inputs should be on (its input embedding's)."""
    get = getattr(model, "get_input_embeddings", None)
    embed = get() if callable(get) else None
    for module in (embed, model):
        if isinstance(module, nn.Module):
            device = execution_device(module)
            if device is not None:
                return device
    return torch.device("cpu")


def placement(model: nn.Module) -> Placement:
    """Return where ``model``'s weights live and which devices its modules run on.

    Raises :class:`CaptureError` when a weight is on the ``meta`` device and nothing loads it
    (a model built with ``init_empty_weights`` or a partial device map without offload), before
    any forward would fail deep inside the model.
    """
    resident: dict[str, int] = {}
    offloaded: dict[str, int] = {}
    devices: list[torch.device] = []
    device_map = getattr(model, "hf_device_map", None)
    missing: list[str] = []
    loads: dict[str, int] = {}
    seen = _tied_copies(model)  # tied weights (embedding and unembedding) count once
    for name, module, loader in _walk(model, "", None):
        device = _hook_device(module)
        if device is not None and device not in devices:
            devices.append(device)
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            size = p.numel() * p.element_size()
            if p.device.type != "meta":
                resident[str(p.device)] = resident.get(str(p.device), 0) + size
                if device is None and p.device not in devices:
                    devices.append(p.device)
            elif loader is not None:
                where = _offload_kind(device_map, loader)
                offloaded[where] = offloaded.get(where, 0) + size
                loads[loader] = loads.get(loader, 0) + size
            else:
                missing.append(f"{name}.{pname}" if name else pname)
    if missing:
        raise CaptureError(
            f"{len(missing)} weights of {type(model).__name__} are on the meta device and nothing "
            f"loads them (first: {missing[0]}): the model was built empty or dispatched without "
            "offload. Load it with from_pretrained(..., device_map='auto', offload_folder=...) or "
            "dispatch_model(model, device_map, offload_dir=...), or load the missing weights"
        )
    return Placement(
        tuple(devices),
        resident,
        offloaded,
        max(loads.values(), default=0),
        dict(device_map) if isinstance(device_map, dict) else None,
    )


def _tied_copies(model: nn.Module) -> set[int]:
    """Return ids of parameters that repeat a tied one (the unembedding of a tied model).

    Once dispatched, a tied unembedding is a separate ``meta`` parameter loaded from the same
    stored tensor, so identity no longer shows the tie; the model's config still does.
    """
    config = getattr(model, "config", None)
    get_in = getattr(model, "get_input_embeddings", None)
    get_out = getattr(model, "get_output_embeddings", None)
    if not getattr(config, "tie_word_embeddings", False) or not callable(get_out):
        return set()
    embed = get_in() if callable(get_in) else None
    unembed = get_out()
    w_in, w_out = getattr(embed, "weight", None), getattr(unembed, "weight", None)
    if not (isinstance(w_in, torch.Tensor) and isinstance(w_out, torch.Tensor)):
        return set()
    return {id(w_out)} if w_in is not w_out and w_in.shape == w_out.shape else set()


def _walk(
    module: nn.Module, name: str, loader: str | None
) -> Iterator[tuple[str, nn.Module, str | None]]:
    """Yield ``(name, module, loader)``: loader is the name of the nearest offloading module."""
    if _offloads(module):
        loader = name
    yield name, module, loader
    for child_name, child in module.named_children():
        yield from _walk(child, f"{name}.{child_name}" if name else child_name, loader)


def _offload_kind(device_map: Any, loader: str) -> str:
    """Return "disk" or "cpu" from accelerate's device map entry covering ``loader``."""
    if isinstance(device_map, dict):
        best = ""
        for key in device_map:
            covers = key == "" or loader == key or loader.startswith(key + ".")
            if covers and len(key) >= len(best):
                best = key
        value = device_map.get(best)
        if value in ("disk", "cpu"):
            return str(value)
    return "offloaded"


@contextlib.contextmanager
def weights_present(module: nn.Module) -> Iterator[None]:
    """While active, ``module``'s own weights are real tensors (offloaded ones loaded).

    A plain accelerate hook goes through ``align_module_device``. A module that accelerate
    hooked twice (a device map naming a block and its parent) carries a ``SequentialHook``,
    which ``align_module_device`` does not look into: its offloading hooks are run the same
    way (``pre_forward`` loads, ``post_forward`` drops).
    """
    hook = getattr(module, "_hf_hook", None)
    inner = getattr(hook, "hooks", None)
    if hook is None or (inner is None and not getattr(hook, "offload", False)):
        yield
        return
    if inner is None:
        from accelerate.utils import align_module_device

        with align_module_device(module):
            yield
        return
    loaders = [h for h in inner if getattr(h, "offload", False)]
    done = []
    try:
        for h in loaders:
            h.pre_forward(module)
            done.append(h)
        yield
    finally:
        for h in reversed(done):
            h.post_forward(module, None)
