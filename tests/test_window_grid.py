"""8-bit exports of LiTS 117 with any display window: a floor so that regressions show."""
import pytest

from training.evaluate import VARIANTS, WINDOW_GRID, _render_volume

from conftest import dice
from hepatoscan.scan import Scan

FLOOR_LIVER_DICE = 0.85
# Known gap, measured: at W150/L30 this contrast-enhanced liver (117 HU) lies above the window and
# is clipped to a noisy white. Liver Dice 0.84 (model 1.3.0; 0.75 with 1.0.0). The window estimate is
# off (about W250/L15); given the true window, model 1.2.0 reached 0.89, short of the 0.93 target.
# strict=True: if it starts passing, this marker must go.
KNOWN_GAPS = {"W150/L30": "enhanced liver clipped to white at W150/L30: liver Dice 0.84 (issue 5 target not met)"}


def _cases():
    for n, w, g, j in [(n, w, 1.0, None) for n, w in WINDOW_GRID] + VARIANTS:
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[n])] if n in KNOWN_GAPS else []
        yield pytest.param(n, w, g, j, marks=marks, id=n)


@pytest.mark.parametrize("name,window,gamma,jpeg", list(_cases()))
def test_window_grid_floor(predictor, sample_volume, name, window, gamma, jpeg):
    _, hu, labels = sample_volume
    grey = _render_volume(hu, window, gamma, jpeg)
    seg = predictor.segment(Scan(grey, False, None, "png", "grid"))
    assert dice(seg.liver, labels >= 1) >= FLOOR_LIVER_DICE, name
    assert seg.window_summary() is not None
