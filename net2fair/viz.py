"""Image grids with captions (sample sheets, projection strips)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw

from net2fair.data.images import tensor_to_pil


def as_pil(x: torch.Tensor | Image.Image) -> Image.Image:
    return x if isinstance(x, Image.Image) else tensor_to_pil(x)


def image_grid(
    rows: Sequence[Sequence[torch.Tensor | Image.Image | None]],
    *,
    col_labels: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    pad: int = 2,
    label_height: int = 14,
    label_width: int = 64,
    scale: int = 1,
) -> Image.Image:
    """Lay images out in rows; ``None`` leaves a cell empty. Labels are drawn in the margins.
    ``scale`` enlarges every cell by an integer factor without smoothing (small models)."""
    cells = [as_pil(c) for r in rows for c in r if c is not None]
    if not cells:
        raise ValueError("image_grid needs at least one image")
    w = max(c.width for c in cells) * scale
    h = max(c.height for c in cells) * scale
    ncol = max(len(r) for r in rows)
    top = label_height if col_labels else 0
    left = label_width if row_labels else 0
    sheet = Image.new(
        "RGB", (left + ncol * (w + pad) + pad, top + len(rows) * (h + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for j, text in enumerate(col_labels or []):
        draw.text((left + pad + j * (w + pad), 1), str(text)[: max(1, w // 6)], fill="black")
    for i, row in enumerate(rows):
        y = top + pad + i * (h + pad)
        if row_labels:
            draw.text((2, y + h // 2 - 5), str(row_labels[i])[:10], fill="black")
        for j, cell in enumerate(row):
            if cell is not None:
                img = as_pil(cell).resize((w, h), Image.NEAREST if scale > 1 else Image.BICUBIC)
                sheet.paste(img, (left + pad + j * (w + pad), y))
    return sheet
