"""Binary encodings for arrays sent to the browser: uint8 codes with a scale, never JSON lists.

A weight ``w`` travels as ``code = round(w / scale * 255)`` (one byte) and is read back as
``code / 255 * scale``, so the error is at most ``scale / 510``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def quantize(values: torch.Tensor, scale: float | None = None) -> tuple[bytes, float]:
    """Return ``(uint8 codes as bytes, scale)``; the scale defaults to the largest value."""
    v = values.detach().float()
    top = float(v.max()) if v.numel() else 0.0
    s = float(scale) if scale is not None else top
    s = s if s > 0 else 1.0
    codes = torch.round(v / s * 255).clamp_(0, 255).to(torch.uint8)
    return codes.contiguous().numpy().tobytes(), s


def dequantize(data: bytes, scale: float, shape: tuple[int, ...]) -> torch.Tensor:
    """Return the float values that ``quantize`` encoded (for tests and fallbacks)."""
    codes = torch.frombuffer(bytearray(data), dtype=torch.uint8).reshape(shape)
    return codes.float() / 255 * scale


def max_error(scale: float) -> float:
    """Return the largest absolute error ``quantize`` can make at ``scale``."""
    return scale / 510


#: Side of a head's thumbnail in the overview, in CSS pixels (the browser draws it at this size).
THUMBNAIL = 40


def thumbnail_size(length: int, limit: int = THUMBNAIL) -> int:
    """Return the side of a head's thumbnail: the sequence length, at most ``limit``.

    Pooling in Python to the size the browser shows means no weight is lost to resampling:
    a single strong weight always reaches a pixel.
    """
    return min(length, limit)


def thumbnails(heads: torch.Tensor, size: int) -> torch.Tensor:
    """Return ``[..., size, size]`` block maxima of ``[..., T, T]`` heads.

    Max pooling keeps thin structure (a previous-token diagonal, an induction stripe) visible
    where averaging would wash it out.
    """
    if heads.shape[-1] == size:
        return heads
    lead = heads.shape[:-2]
    flat = heads.reshape(-1, 1, heads.shape[-2], heads.shape[-1]).float()
    pooled = F.adaptive_max_pool2d(flat, size)
    return pooled.reshape(*lead, size, size)


def pooled_pad(pad: torch.Tensor, size: int) -> torch.Tensor:
    """Return ``[size]`` flags: a thumbnail row/column is pad when every position under it is."""
    if pad.shape[-1] == size:
        return pad.bool()
    # A block is pad when its minimum "is pad" flag is 1, i.e. -max(-flag).
    flags = pad.float().reshape(1, 1, -1)
    return (-F.adaptive_max_pool1d(-flags, size)).reshape(size) > 0.5
