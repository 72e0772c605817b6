"""Cut DejaVu Sans (regular and bold) to hepatoscan.report.CORE_FONT_RANGES.

    python scripts/subset_fonts.py

Writes hepatoscan/fonts/DejaVuSans-Core.ttf and DejaVuSans-Bold-Core.ttf from the full fonts beside
them (fontTools, which fpdf2 brings). The report embeds these unless a text needs the full fonts.
"""
from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hepatoscan.report import CORE_FONT_RANGES, FONT_DIR  # noqa: E402


def cut(name: str) -> Path:
    options = subset.Options(layout_features=["*"], glyph_names=True, notdef_outline=True,
                             name_IDs=["*"], name_legacy=True, drop_tables=["FFTM"])
    font = subset.load_font(str(FONT_DIR / f"{name}.ttf"), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[u for lo, hi in CORE_FONT_RANGES for u in range(lo, hi + 1)])
    subsetter.subset(font)
    out = FONT_DIR / f"{name}-Core.ttf"
    subset.save_font(font, str(out), options)
    return out


if __name__ == "__main__":
    for name in ("DejaVuSans", "DejaVuSans-Bold"):
        path = cut(name)
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size:,} bytes")
