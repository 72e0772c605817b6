"""The one preprocessing path shared by training and serving.

Two kinds of pixels come in:

* CT in Hounsfield units (DICOM, NIfTI): clipped to the model's HU window and scaled to [0, 1].
* 8-bit display images (PNG/JPG exports from a viewer): their display window is unknown, so it
  is *estimated from the image's own histogram* (fat and soft-tissue peaks), the grey levels are
  mapped back to approximate HU and then windowed exactly like CT. This makes an export made
  with W2000/L0 look to the model like one made with the model's own window.

Both then go to the model's input size (bilinear for images, nearest for masks) as float32.
Training (``training/``) imports these functions, so what the model learned on is what it sees.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from PIL import Image

from .errors import InputError
from .morphology import label

log = logging.getLogger(__name__)

# Landmarks used to read a display window off an abdominal CT histogram, in HU: where the
# estimator's own two landmarks (the fat mode, and the median grey level above the valley that
# follows it) lie in HU. Where fat is visible they were measured on the training volumes (IRCAD p01
# and p07, liver slices rendered with 13 windows from W150 to W2000, fat mode at grey 12 or more):
# medians -90 and +95 HU. The anatomical guesses used before (-100 and +70) read a W400/L40 export
# of LiTS 117 as about W340/L20.
FAT_HU = -90.0  # the fat mode where fat is visible (subcutaneous and visceral fat)
SOFT_TISSUE_HU = 95.0  # median above fat's valley: muscle, liver, spleen, vessels, enhanced
# Where fat lies at the black end (narrow windows) the "fat mode" is its clipped upper tail and the
# map is rough; these stay the anatomical guesses the model was trained through for such images.
CLIPPED_FAT_HU = -100.0
CLIPPED_SOFT_TISSUE_HU = 70.0  # also the soft-tissue median when no fat mode is found at all
FALLBACK_WIDTH_HU = 350.0  # the usual abdominal window, assumed when fat is clipped to black
# Modes darker than fat must map below this (air about -1000 HU, lung -900 to -700). -600 (until
# 1.7.2) let a real fat mode pass for lung under the map of a soft-tissue mode taken for fat, in
# blurred exports, where muscle and liver part (fat mapped to -650 and so on); with -650 HU 26
# renders of the four volumes (every 2nd liver slice; W150 to W2000, PNG, JPEG q75, blurred 1 and
# 2 px, half size) read better and none worse (-700: 36 better, 4 worse, blurred wide ones).
AIR_MAX_HU = -650.0
CLIPPED_FAT_GREY = 12  # a "fat" mode this close to black is most likely fat's clipped upper tail
# A mode within CLIPPED_FAT_GREY of black vetoes a brighter fat candidate only when it is at least
# 1/BLACK_MODE_VETO_RATIO as tall: JPEG ringing at the edge of the air forms small modes there (0.1
# to 0.3 of the top; they made W800 and W1000 JPEG exports read as about W300), while the clipped
# tail of fat in narrow windows is as tall as the candidates it must veto.
BLACK_MODE_VETO_RATIO = 2.0
# Nor does a mode at the black end veto a fat mode whose map puts it (the window's bottom) at or
# below CLIPPED_TAIL_MAX_HU while the histogram between the two is sparse (its median under
# SPARSE_GAP_RATIO of the fat mode's height). Fat's clipped tail forms a mode at black only when the
# window's bottom lies near fat's own mode (-90 HU, spread about 35 HU): a black mode at least half
# as tall as the fat mode (BLACK_MODE_VETO_RATIO) needs the bottom within about 1.3 spreads of it,
# above -140 HU. A bottom below that clips mostly air, and what then lies between black and fat is
# air-tissue edges, lung and fat's lower tail; in a narrow window whose soft tissue passes for fat,
# that stretch holds soft tissue instead. Measured on the four HU volumes' liver slices (every 2nd,
# 18 renders from W150 to W2000, PNG and JPEG q75): with -250 HU (model 1.7.1), W600/L100 JPEGs,
# whose ringing mode at black maps to about -190 HU, read more than 1.25x off on 94% of CHAOS's 36
# slices, 41% of IRCAD p01's 49 and 27% of LiTS 117's 64, and W400/L40 JPEGs on 35% of IRCAD p01's;
# with -140 HU on 28%, 24%, 19% and 6%, and no render of any volume reads worse. (-250 HU, which
# model 1.7.1 brought, had fixed W800 and W1000 JPEGs: their black maps lower still.)
CLIPPED_TAIL_MAX_HU = -140.0
SPARSE_GAP_RATIO = 0.2
# A fat candidate's map also puts a stretch of grey levels between fat and air: from
# CLIPPED_FAT_GREY up to where it maps BELOW_FAT_HU (below all fat, whose range ends near -190 HU).
# Only lung and partial volume lie there, so its median is low beside the fat mode's height; where
# it reaches DEEP_GAP_RATIO of it, the candidate is no fat but a soft-tissue mode, and real fat lies
# in that stretch. Blurred and shrunk exports show it: noise smoothed away, muscle and liver part
# with a clear valley, while fat's mode flattens; muscle taken for fat read W400/L40 as W1400 to
# W1900. Measured on the four HU volumes' liver slices (every 3rd; W150 to W2000, PNG, JPEG q75,
# blurred 1 and 2 px, half size): of 2,305 unclipped fat readings within 1.25x of the true width,
# the stretch's median is at most 0.24 of the fat mode's height (99% under 0.14); 250 of the 859
# readings further off reach 0.3.
BELOW_FAT_HU = -250.0
DEEP_GAP_RATIO = 0.3
# JPEG files (and stacks of them): grey levels below this count as black (0 to 7), not just the 0 to
# 2 of BLACK_GREY. JPEG's quantisation spreads the exact black of air (and of fat in narrow windows)
# over the first few grey levels, where it formed a "mode" that passed for fat's clipped tail and
# read W250 to W400 exports about 1.3x narrow. On the four HU volumes' liver slices (every 2nd; 11
# windows from W150 to W2000, JPEG q75: 2,167 slices) mean |log| of read over true width 0.316 ->
# 0.270, share read more than 1.25x off 0.42 -> 0.32 (PNG: 0.248, 0.30); by black level 5: 0.296,
# 6: 0.287, 7: 0.277, 8: 0.270, 9: 0.267, 10: 0.291, 13: 0.292. Worse at W600/L100 (0.131 ->
# 0.167), better or level elsewhere. Lossless images keep the 0 to 2 of BLACK_GREY.
JPEG_BLACK_GREY = 8
# A white pixel (grey 255) was at or above the display window's top; by how much is lost. Read as the
# top itself, a liver that a narrow window clips to white (LiTS 117 at W150/L30: 117 HU against a top
# of 105) is a flat plateau just above the grey of its tumors and of muscle. White is read this far
# above the estimated top instead (window_hu then caps it at the model window's top, 240 HU, so
# windows whose top lies 70 HU or less below that barely change). Chosen on the training patients
# alone (IRCAD p01 and p07 rendered at W150, W200 and W250 with their true windows, through the model
# and post-processing; mean liver Dice by offset 0: 0.9365, 20: 0.9397, 40: 0.9405, 50: 0.9407, 60:
# 0.9412, 70: 0.9415, 80: 0.9413, 100: 0.9404; the whole model window's top: worse at W150). In JPEG
# files ringing pulls a clipped plateau down to 246..254, but counting those as white too was no better
# on the same patients through the runtime (W150 to W250, q75: white from 255 0.9396, 252 0.9395,
# 248 0.9391, 246 0.9388; the rule off 0.9386), so white is 255 in every format.
CLIPPED_WHITE_ABOVE_HU = 70.0
FAT_PEAK_METHOD = "fat peak + soft-tissue median"
FALLBACK_METHOD = "soft-tissue median, W350 assumed"
FLAT_METHOD = "none: flat image"  # fewer than 2% of the pixels between black and white: nothing to read


@dataclass(frozen=True)
class InputSpec:
    """What the model takes. At inference time the model card is the source of these values."""

    height: int = 256  # pixels; a multiple of 16 so a 4-level U-Net pools evenly
    width: int = 256
    window_hu: tuple[float, float] = (-160.0, 240.0)  # W400/L40: fat, liver and tumor all visible
    # The body's longer extent as a share of the square the model sees: a slice whose body fills
    # less (a screenshot's black margin, a viewer zoomed out, a slim patient in a wide field of
    # view) is cropped to the body first (body_box). CT comes with 0.8 to 1.0; 0.9 was chosen on the
    # validation patients and the healthy training volume's false lesions (README, "Field of view").
    # None: never (a card that does not name it: those before 1.8.0).
    body_fill: float | None = 0.9


@dataclass(frozen=True)
class WindowEstimate:
    """The display window (in HU) an 8-bit image is judged to have been exported with."""

    lo_hu: float
    hi_hu: float
    method: str  # "fat peak + soft-tissue median", "soft-tissue median, W350 assumed" or "none: flat image"
    fat_clipped: bool = False  # the fat mode is (nearly) black, as in narrow windows: read less reliably
    stack_median: bool = False  # replaced by its stack's median window (share_stack_window)

    @property
    def width_hu(self) -> float:
        return self.hi_hu - self.lo_hu

    @property
    def level_hu(self) -> float:
        return (self.hi_hu + self.lo_hu) / 2.0

    @property
    def firm(self) -> bool:
        """True when read from a fat mode clear of the black end (not a guess, not clipped fat)."""
        return self.method == FAT_PEAK_METHOD and not self.fat_clipped

    @property
    def flat(self) -> bool:
        """True when the image held (almost) no grey levels between black and white to read."""
        return self.method == FLAT_METHOD

    def describe(self) -> str:
        return f"W{self.width_hu:.0f}/L{self.level_hu:.0f} (estimated from the histogram: {self.method})"

    def caveat(self) -> str:
        """A sentence on why the estimate is rough, or "" when nothing speaks against it."""
        if self.fat_clipped:
            return "Fat lies at the black end (narrow windows clip it to black), so this estimate is rough."
        return ""


def to_grayscale(pixels: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array -> (H, W) float32, same value range.

    RGB is converted with ITU-R 601 luma weights; alpha is dropped (composited on black).
    """
    a = np.asarray(pixels)
    if a.ndim == 2:
        return a.astype(np.float32)
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        if a.shape[2] == 1:
            return a[..., 0].astype(np.float32)
        rgb = a[..., :3].astype(np.float32)
        gray = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
        if a.shape[2] == 4:
            gray *= a[..., 3].astype(np.float32) / float(np.iinfo(a.dtype).max if a.dtype.kind in "ui" else 1.0)
        return gray
    raise InputError(f"expected a 2D image or (H, W, C) with C in 1, 3, 4; got shape {a.shape}")


def window_hu(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """HU array (any shape) -> float32 in [0, 1]: clip to ``window`` = (lo, hi) and scale."""
    lo, hi = float(window[0]), float(window[1])
    if not hi > lo:
        raise InputError(f"HU window {window} is empty: the upper bound must exceed the lower one")
    out = (np.asarray(hu, np.float32) - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0, out=out)


def render_8bit(hu: np.ndarray, window: tuple[float, float], gamma: float = 1.0) -> np.ndarray:
    """HU array -> uint8 display image, as a viewer exports it with ``window`` (and a gamma)."""
    x = window_hu(hu, window)
    if gamma != 1.0:
        x = np.power(x, gamma, dtype=np.float32)
    return np.rint(x * 255.0).astype(np.uint8)


def _smooth(hist: np.ndarray, sigma_bins: float) -> np.ndarray:
    r = int(3 * sigma_bins)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_bins) ** 2)
    return np.convolve(hist, k / k.sum(), mode="same")


def _local_maxima(h: np.ndarray, lo: int, hi: int) -> list[int]:
    return [i for i in range(max(lo, 1), min(hi, len(h) - 1)) if h[i] >= h[i - 1] and h[i] > h[i + 1]]


def _soft_median(inner: np.ndarray, start: int) -> int:
    """Median grey level of the histogram ``inner`` from ``start`` on (saturated ends excluded)."""
    cdf = np.cumsum(inner[start:253])
    return start + int(np.searchsorted(cdf, cdf[-1] / 2.0))


def _clear_modes(h: np.ndarray, top: int) -> list[tuple[int, int]]:
    """(mode, valley after it) of the smoothed histogram ``h`` below its top: modes of at least 8%
    of the top with a valley under 85% of their height before the top, darkest first."""
    modes = []
    for p in _local_maxima(h, 3, top):
        if h[p] < 0.08 * h[top]:
            continue
        v = p + int(np.argmin(h[p:top + 1]))
        if h[v] < 0.85 * h[p] and v > p:
            modes.append((p, v))
    return modes


def _median_above_black(h: np.ndarray, end: int) -> float:
    """Median of the smoothed histogram ``h`` from CLIPPED_FAT_GREY up to ``end`` (one bin at least)."""
    return float(np.median(h[CLIPPED_FAT_GREY:max(CLIPPED_FAT_GREY + 1, end)]))


def _vetoes(h: np.ndarray, mode: int, fat: int, mode_hu: float) -> bool:
    """Whether a clear mode darker than the fat candidate ``fat`` of the smoothed histogram ``h``
    refuses it, given the HU the candidate's map puts ``mode`` at: any mode must map to air or
    lung; a mode at the black end only when it is tall beside fat and may be fat's clipped tail."""
    if mode_hu < AIR_MAX_HU:
        return False
    if mode >= CLIPPED_FAT_GREY:
        return True
    if BLACK_MODE_VETO_RATIO * h[mode] < h[fat]:
        return False  # JPEG ringing at the edge of the air: small beside fat
    return mode_hu > CLIPPED_TAIL_MAX_HU or _median_above_black(h, fat - 15) >= SPARSE_GAP_RATIO * h[fat]


def _dense_below_fat(h: np.ndarray, fat: int, fat_hu: float, hu_per_gray: float) -> bool:
    """Whether the smoothed histogram ``h`` is dense (DEEP_GAP_RATIO) between CLIPPED_FAT_GREY and
    the grey level that the fat candidate's map (``fat_hu`` at grey ``fat``) puts at BELOW_FAT_HU.
    A candidate at the black end (clipped fat) has no such stretch."""
    below_fat = fat + int((BELOW_FAT_HU - fat_hu) / hu_per_gray)
    if below_fat - CLIPPED_FAT_GREY < 8:
        return False
    return _median_above_black(h, below_fat) >= DEEP_GAP_RATIO * h[fat]


def estimate_display_window(gray: np.ndarray, jpeg: bool = False) -> WindowEstimate:
    """Estimate the HU window an 8-bit CT export was rendered with, from its histogram alone.

    gray: (H, W) array of grey levels in [0, 255] (uint8 or float).
    Fat is a clear mode of the histogram (saturated ends excluded); soft tissue is the median grey
    level above the valley that follows it. Two landmarks at known HU give the linear grey->HU map.
    Of the clear modes, fat is the one nearest the soft tissue whose map puts every darker mode at
    air or lung (below AIR_MAX_HU): in wide windows (W2000/L0) the lungs, or the noise tail of the
    clipped air, also form modes, darker than fat. Small modes at the black end (JPEG ringing around
    the air) do not count against a much taller fat mode (BLACK_MODE_VETO_RATIO), nor against one
    that puts black below fat's range with little between them (CLIPPED_TAIL_MAX_HU,
    SPARSE_GAP_RATIO: ringing beside a small fat mode in W600 to W1000 JPEGs). When no mode
    qualifies (fat clipped to black in narrow windows), the usual abdominal width is assumed around
    the soft-tissue median.
    The estimate says when the fat mode lies within CLIPPED_FAT_GREY of black: in noisy narrow-window
    exports that "mode" is fat's clipped upper tail, and the window is read less reliably.
    ``jpeg``: the image was JPEG-compressed, so grey levels below JPEG_BLACK_GREY count as black.
    """
    g = np.clip(np.asarray(gray, np.float32), 0, 255)
    hist = np.bincount(np.rint(g).astype(np.int64).ravel(), minlength=256)[:256].astype(np.float64)
    inner = hist.copy()
    inner[:JPEG_BLACK_GREY if jpeg else BLACK_GREY + 1] = 0  # black: air, and fat a narrow window clips
    inner[253:] = 0
    if inner.sum() < 0.02 * hist.sum() or inner.sum() < 64:
        return WindowEstimate(-160.0, 240.0, FLAT_METHOD)
    h = _smooth(inner, 2.0)
    modes = _clear_modes(h, int(np.argmax(h)))
    for i in range(len(modes) - 1, -1, -1):  # nearest the soft tissue first
        fat, valley = modes[i]
        soft = _soft_median(inner, valley)
        if soft - fat < 6:
            continue
        clipped = fat < CLIPPED_FAT_GREY
        fat_hu, soft_hu = (CLIPPED_FAT_HU, CLIPPED_SOFT_TISSUE_HU) if clipped else (FAT_HU, SOFT_TISSUE_HU)
        hu_per_gray = (soft_hu - fat_hu) / (soft - fat)
        if _dense_below_fat(h, fat, fat_hu, hu_per_gray):
            continue
        if not any(_vetoes(h, q, fat, fat_hu + (q - fat) * hu_per_gray) for q, _ in modes[:i]):
            lo = fat_hu - fat * hu_per_gray
            return WindowEstimate(float(lo), float(lo + 255.0 * hu_per_gray), FAT_PEAK_METHOD, fat_clipped=clipped)
    soft = _soft_median(inner, 3)
    lo = CLIPPED_SOFT_TISSUE_HU - soft * FALLBACK_WIDTH_HU / 255.0
    return WindowEstimate(float(lo), float(lo + FALLBACK_WIDTH_HU), FALLBACK_METHOD)


# One series' slices are exported with one window, so a stack of 8-bit slices (a zip or folder of
# PNG/JPG slices, a DICOM series of screenshots) can correct a slice whose own reading is far off:
# where a slice's width reads more than STACK_OUTLIER_RATIO off the stack's median window, it takes
# that median. Slices that read near it keep their own (every slice taking the median lost 0.002 to
# 0.003 liver Dice on W350 to W1500 renders). The median is of the firm readings (a fat mode found,
# not at the black end) where they are at least STACK_MIN_FIRM_SHARE of the readable slices: in
# fatty slices of wide exports fat tops the histogram and the estimate assumes W350, and where
# most slices are fatty (IRCAD p07 at W800 to W2000) a median of every reading would spread that
# guess to all of them. Below that share (narrow windows, which clip fat on most slices) the
# median is of every readable slice. Measured on the four HU volumes' liver slices (every 2nd; W150
# to W2000, PNG, JPEG q75, blurred 1 and 2 px, half size; 180 renders), mean |log| of read over true
# width: slice by slice 0.358, median of every reading 0.328, this rule 0.172; 127 renders read
# better, 6 worse (4 by less than 0.04).
# Where the firm readings are the pool, a slice that is not firm (fat at the black end, or no fat
# found) takes the median whatever its own width: its reading is a guess (in W350 to W600 JPEG
# exports, ringing at black often passes for fat's clipped tail: CHAOS's W400/L40 JPEG slices read
# W302 where the PNG read W425, and a third of LiTS 117's read 1.3x narrow). On the
# four HU volumes' liver slices (every 2nd; 11 windows W150 to W2000, PNG and JPEG q75; 88 stacks),
# mean |log| of read over true width 0.172 -> 0.170 and of the bottom's error 39 -> 37 HU; 11 stacks
# read better, 2 worse (IRCAD p07 at W150/L30, whose firm readings are misreads, and its W350/L50,
# 0.073 -> 0.087 in width but 30 -> 8 HU at the bottom). Through model 1.7.3, before JPEG_BLACK_GREY
# (as a stack, LiTS 117):
# W350/L50 0.9296 -> 0.9303 (tumor 0.664 -> 0.670), W400/L40 JPEG 0.9285 -> 0.9304 (tumor 0.651 ->
# 0.672), blurred 2 px 0.907 -> 0.916; CHAOS within 0.0002; slice-by-slice reading is unchanged.
STACK_NON_FIRM_TAKE_MEDIAN = True
STACK_OUTLIER_RATIO = 1.5
STACK_MIN_FIRM_SHARE = 0.25
STACK_MIN_READINGS = 3  # fewer slices than this to take a median of: each keeps its own reading
# Only a stack that looks like one series' consecutive slices shares: the median correlation of
# neighbouring images (hepatoscan.series) must reach this; separate images zipped together are read
# one by one.
SERIES_MIN_SIMILARITY = 0.85


def share_stack_window(estimates: list[WindowEstimate | None],
                       max_ratio: float = STACK_OUTLIER_RATIO) -> list[WindowEstimate | None]:
    """Per-slice window estimates of one 8-bit stack -> the same list, where a slice whose width reads
    more than ``max_ratio`` off the stack's median window (lo and hi medians, of the firm readings
    where there are enough, else of every readable slice) takes that median; so does, where the
    firm readings are the pool, every slice whose reading is not firm (STACK_NON_FIRM_TAKE_MEDIAN).
    None (HU slices) and flat slices are passed through unchanged."""
    readable = [e for e in estimates if e is not None and not e.flat]
    firm = [e for e in readable if e.firm]
    firm_pool = len(firm) >= max(STACK_MIN_READINGS, STACK_MIN_FIRM_SHARE * len(readable))
    pool = firm if firm_pool else readable
    if len(pool) < STACK_MIN_READINGS:
        return list(estimates)
    lo = float(np.median([e.lo_hu for e in pool]))
    hi = float(np.median([e.hi_hu for e in pool]))
    width = hi - lo
    out: list[WindowEstimate | None] = []
    for e in estimates:
        if e is None or e.flat:
            out.append(e)
            continue
        guess = firm_pool and STACK_NON_FIRM_TAKE_MEDIAN and not e.firm
        if not guess and 1.0 / max_ratio <= e.width_hu / width <= max_ratio:
            out.append(e)
        else:
            out.append(WindowEstimate(lo, hi, f"the stack's median; this slice alone read W{e.width_hu:.0f}",
                                      stack_median=True))
    return out


# How a slice must lie for the model: it learned axial slices as viewers show them and uses where
# things lie (liver on the image's left), so a slice fed in other axes loses the liver (held-out
# volumes, model 1.6.1, liver Dice: as shown 0.942 / 0.932; rows and columns swapped, as
# ``nifti_data[:, :, k]`` of an LPS file gives, 0.845 / 0.911; flipped up-down 0.897 / 0.822;
# flipped left-right 0.369 / 0.350). The card records this, so that a scorer or another runtime
# feeding the model from the card alone orients slices as the runtime does (io.nifti.to_display_axes,
# io.dicom). ``from_nifti`` is a Python expression in ``np``, ``nibabel``, ``img`` (a loaded NIfTI)
# and ``k`` (the slice index, toward the head).
SLICE_ORIENTATION = {
    "rows": "anterior to posterior (anterior up)",
    "columns": "patient right to patient left (patient right on the image left)",
    "slices": "axial, index increasing toward the head",
    "from_nifti": "np.asanyarray(nibabel.as_closest_canonical(img).dataobj)[:, :, k].T[::-1, ::-1]",
    "from_dicom": "the pixel array as stored when ImageOrientationPatient is 1,0,0,0,1,0 (axial, supine); "
                  "otherwise flipped or transposed so that rows run toward the patient's back (+Y in DICOM's "
                  "LPS) and columns toward the patient's left (+X)",
}


def window_estimate_landmarks() -> dict:
    """The HU landmarks the window estimate maps 8-bit images with, and the rule a stack's slices
    share a window by, as the model card records them (a model's 8-bit figures hold for the
    estimate they were measured with)."""
    return {"fat_hu": FAT_HU, "soft_tissue_hu": SOFT_TISSUE_HU, "clipped_fat_hu": CLIPPED_FAT_HU,
            "clipped_soft_tissue_hu": CLIPPED_SOFT_TISSUE_HU, "fallback_width_hu": FALLBACK_WIDTH_HU,
            "clipped_fat_grey": CLIPPED_FAT_GREY, "black_mode_veto_ratio": BLACK_MODE_VETO_RATIO,
            "clipped_tail_max_hu": CLIPPED_TAIL_MAX_HU, "sparse_gap_ratio": SPARSE_GAP_RATIO,
            "below_fat_hu": BELOW_FAT_HU, "deep_gap_ratio": DEEP_GAP_RATIO, "air_max_hu": AIR_MAX_HU,
            "stack_outlier_ratio": STACK_OUTLIER_RATIO, "stack_min_firm_share": STACK_MIN_FIRM_SHARE,
            "stack_min_readings": STACK_MIN_READINGS, "stack_min_neighbour_similarity": SERIES_MIN_SIMILARITY,
            "stack_non_firm_take_median": STACK_NON_FIRM_TAKE_MEDIAN, "jpeg_black_grey": JPEG_BLACK_GREY,
            "clipped_white_above_hu": CLIPPED_WHITE_ABOVE_HU}


def standardize_8bit(gray: np.ndarray, window: tuple[float, float],
                     estimate: WindowEstimate | None = None, jpeg: bool = False) -> tuple[np.ndarray, WindowEstimate]:
    """8-bit display image -> (float32 in [0, 1] as if windowed from HU with ``window``, estimate).

    gray: (H, W) grey levels in [0, 255]. Pass ``estimate`` to reuse one window for a whole stack;
    ``jpeg`` when the image was JPEG-compressed (estimate_display_window).
    """
    est = estimate or estimate_display_window(gray, jpeg)
    gray = np.asarray(gray, np.float32)
    approx_hu = est.lo_hu + gray * (est.width_hu / 255.0)
    approx_hu[gray >= 255] = est.hi_hu + CLIPPED_WHITE_ABOVE_HU  # clipped: at or above the top
    return window_hu(approx_hu, window), est


SURROUND_TOLERANCE = 2  # grey levels: a viewer's panel or padding is one grey (JPEG within 2 of it)
SURROUND_MIN_EDGE = 0.3  # share of the image's edge that must be that grey
SURROUND_MIN_SHARE = 0.05  # share of the image it must cover


def content_box(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """Where the image sits inside a uniform surround, as in a screenshot of a viewer or a page.

    gray: (H, W) grey levels in [0, 255]. The surround is one grey (within SURROUND_TOLERANCE)
    that holds at least SURROUND_MIN_EDGE of the image's edge (letterbox bars above and below an
    image as wide as the screenshot hold about a third), taken as the area of that grey joined to
    the edge; when it covers SURROUND_MIN_SHARE of the image, returns (top, bottom, left, right),
    end-exclusive, of the largest connected area outside it, else None (also when that area spans
    the whole image). A black surround is left alone: it reads as the air around the body, as in
    every CT export. A white one (a page, a slide) must also fill two of the image's four edge
    lines: in a narrow window a liver clipped to white may touch the edge, but does not frame it.
    None on all 639 real 8-bit slices of the data and on the held-out and training volumes
    rendered with the window grid (gamma, JPEG and blur variants, narrow and liver-clipping
    windows too).
    """
    g = np.clip(np.rint(np.asarray(gray, np.float32)), 0, 255).astype(np.int16)
    edge = np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]])
    t = SURROUND_TOLERANCE
    near = np.convolve(np.bincount(edge, minlength=256), np.ones(2 * t + 1), mode="same")
    near[:4] = 0  # a black surround is left alone
    level = int(np.argmax(near))  # the edge's commonest grey, give or take the tolerance
    if near[level] < SURROUND_MIN_EDGE * edge.size:
        return None
    panel = np.abs(g - level) <= t
    if level >= 252:  # white: a page or slide, or a clipped liver touching the edge of a narrow window?
        full_lines = int(panel[0].all()) + int(panel[-1].all()) + int(panel[:, 0].all()) + int(panel[:, -1].all())
        if full_lines < 2:  # a page frames the image on two sides at least; a liver does not
            return None
    parts, _ = label(panel)
    rim = np.concatenate([parts[0], parts[-1], parts[:, 0], parts[:, -1]])
    surround = np.isin(parts, np.unique(rim[rim > 0]))
    if surround.mean() < SURROUND_MIN_SHARE:
        return None
    inside, n = label(~surround)
    if n == 0:
        return None
    largest = inside == 1 + int(np.argmax(np.bincount(inside.ravel())[1:]))
    ys, xs = np.nonzero(largest.any(axis=1))[0], np.nonzero(largest.any(axis=0))[0]
    box = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    if box == (0, g.shape[0], 0, g.shape[1]) or box[1] - box[0] < 16 or box[3] - box[2] < 16:
        return None
    return box


# The body: above this in HU: fat (about -100) and all tissue; air, lung and the partial-volume
# edges of arms at the image's edge (which joined CHAOS's trunk to both sides of its image at -500)
# lie below. In 8-bit exports BODY_MIN_GREY is about -140 HU at W400/L40.
BODY_MIN_HU = -200.0
BODY_MIN_GREY = 12  # in 8-bit images, brighter than this (above JPEG's ringing at black)
BODY_PART_SHARE = 0.05  # a part of the body: a connected area at least this share of the largest
BODY_MIN_SHARE = 0.01  # less body than this share of the image: nothing to zoom to


def body_floor(is_hu: bool, estimate: WindowEstimate | None = None) -> float:
    """The value above which a pixel is body: BODY_MIN_HU in HU; in an 8-bit image BODY_MIN_GREY,
    or the grey its window ``estimate`` maps BODY_MIN_HU to where that is brighter (in a W2000
    export grey 12 is -900 HU)."""
    if is_hu:
        return BODY_MIN_HU
    if estimate is None:
        return float(BODY_MIN_GREY)
    return max(float(BODY_MIN_GREY), (BODY_MIN_HU - estimate.lo_hu) * 255.0 / estimate.width_hu)


def body_box(pixels: np.ndarray, is_hu: bool, fill: float | None,
             estimate: WindowEstimate | None = None) -> tuple[int, int, int, int] | None:
    """Where to crop a slice so that its body fills ``fill`` of the square the model sees.

    pixels: (H, W) HU, or 8-bit grey levels in [0, 255] with their window ``estimate`` (None: no
    reading). The body is the largest connected area above :func:`body_floor` (read through the
    window estimate, so that in a W2000 export the arms' blurred edges do not join the trunk to the
    image's sides) with the areas at least BODY_PART_SHARE of it (the
    table, arms, a body that a narrow window's black fat splits); lettering and rulers are smaller.
    Returns (top, bottom, left, right), end-exclusive: a box centred on the body whose sides are the
    body's longer extent / ``fill`` (within the image), or None where the body's longer extent is
    already ``fill`` of the image's longer side or more, where no body is found, or ``fill`` is None.

    Why: the model learned on CT whose body fills 0.8 to 1.0 of the field of view, and zoomed
    views. A body that fills less is read badly: centred in a frame 1.5 times as wide, the volumes
    of IRCAD p07 and CHAOS fell from liver Dice 0.921 and 0.941 to 0.806 and 0.905 (HU path, model
    1.7.7); cropped to the body they read 0.925 and 0.945, as given and framed alike (README,
    "Field of view").
    """
    if fill is None:
        return None
    g = np.asarray(pixels, np.float32)
    h, w = g.shape
    step = max(1, max(h, w) // 128)  # the body's outline needs no more than 128 pixels across
    hh, ww = h // step, w // step  # blocks of step x step pixels, any of them body: a thin skin stays whole
    inside = g[:hh * step, :ww * step] > body_floor(is_hu, estimate)
    small = inside.reshape(hh, step, ww, step).any(axis=(1, 3))
    parts, n = label(small)
    if n == 0:
        return None
    sizes = np.bincount(parts.ravel())[1:]
    if sizes.max() < BODY_MIN_SHARE * small.size:
        return None
    body = np.isin(parts, 1 + np.nonzero(sizes >= BODY_PART_SHARE * sizes.max())[0])
    ys, xs = np.nonzero(body.any(axis=1))[0], np.nonzero(body.any(axis=0))[0]
    y0, y1 = ys[0] * step, min(h, (ys[-1] + 1) * step)
    x0, x1 = xs[0] * step, min(w, (xs[-1] + 1) * step)
    extent = max(y1 - y0, x1 - x0)
    if extent >= fill * max(h, w):
        return None
    half = extent / fill / 2
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    return (int(max(0, np.floor(cy - half))), int(min(h, np.ceil(cy + half))),
            int(max(0, np.floor(cx - half))), int(min(w, np.ceil(cx + half))))


INVERTED_CORNER_SIDE = 0.05  # the corner patches looked at: this share of the shorter side (4 px at least)
INVERTED_WHITE_GREY = 245  # white, JPEG's ringing included
INVERTED_CORNER_WHITE = 0.9  # share of each corner patch that must be white
INVERTED_CENTRE_MAX_GREY = 200  # the middle half of the image (the body) darker than this, as a median


def looks_inverted(gray: np.ndarray) -> bool:
    """Whether an 8-bit image looks like CT shown inverted (a viewer's invert: air white, bone black).

    gray: (H, W) grey levels in [0, 255], inside any viewer's panel (content_box). True where all
    four corners are white (INVERTED_CORNER_WHITE of patches INVERTED_CORNER_SIDE of the shorter
    side) and the middle half of the image is darker (median below INVERTED_CENTRE_MAX_GREY): the
    air around a body, which every CT export shows black. A page or slide is white in its middle
    too; a narrow window's white liver does not reach all four corners. Measured on the 639 real
    8-bit slices and the four HU volumes rendered with 9 windows (W150 to W2000, a lung and a bone
    window; every 6th slice): no image as given is taken for inverted; inverted, 160 of the 639 (the
    others are exports whose fat, black, turns white over the middle too) and 440 of the 549 renders
    of CHAOS and IRCAD, none of LiTS 117's cube, whose body fills its corners.
    """
    g = np.asarray(gray)
    h, w = g.shape
    side = max(4, int(round(INVERTED_CORNER_SIDE * min(h, w))))
    if min(h, w) < 4 * side:
        return False
    corners = (g[:side, :side], g[:side, -side:], g[-side:, :side], g[-side:, -side:])
    if min(float((c >= INVERTED_WHITE_GREY).mean()) for c in corners) < INVERTED_CORNER_WHITE:
        return False
    return float(np.median(g[h // 4:3 * h // 4, w // 4:3 * w // 4])) < INVERTED_CENTRE_MAX_GREY


def read_panel(gray: np.ndarray, jpeg: bool = False) -> tuple[tuple[int, int, int, int], bool, np.ndarray, WindowEstimate]:
    """How an 8-bit image is read before anything else: (H, W) grey levels in [0, 255] -> (the
    (y0, y1, x0, x1) box inside a viewer's surround (:func:`content_box`; the whole image where
    there is none), whether it looks shown inverted (:func:`looks_inverted`), its (h, w) float grey
    levels, inverted back where so, and their display window (:func:`estimate_display_window`)).
    The predictor and the montage check read an image this one way."""
    g = np.asarray(gray)
    h, w = g.shape
    box = content_box(g) or (0, h, 0, w)
    panel = np.asarray(g[box[0]:box[1], box[2]:box[3]], np.float32)
    inverted = looks_inverted(panel)
    if inverted:
        panel = 255.0 - panel
    return box, inverted, panel, estimate_display_window(panel, jpeg)


MONTAGE_MAX_TILES = 4  # rows and columns tried: up to 4 x 4 slices in one image
MONTAGE_MIN_TILE_PX = 48  # a tile's shorter side at least this
MONTAGE_MASK_PX = 32  # each tile's body compared at 32 x 32
MONTAGE_MIN_BODY = 0.15  # share of every tile that is body
MONTAGE_MAX_BORDER_BODY = 0.5  # share of every tile's border that is body: air must show around it
MONTAGE_MIN_OVERLAP = 0.75  # mean intersection over union of the tiles' bodies, pair by pair


def _tile_body(body: np.ndarray) -> np.ndarray:
    """(h, w) bool body mask of one tile -> (MONTAGE_MASK_PX, MONTAGE_MASK_PX) bool, sampled at
    the centres of a MONTAGE_MASK_PX grid."""
    h, w = body.shape
    rows = ((np.arange(MONTAGE_MASK_PX) + 0.5) * h / MONTAGE_MASK_PX).astype(int)
    cols = ((np.arange(MONTAGE_MASK_PX) + 0.5) * w / MONTAGE_MASK_PX).astype(int)
    return body[np.ix_(rows, cols)]


def _tile_grids(gray: np.ndarray, estimate: WindowEstimate | None):
    """Every grid of up to MONTAGE_MAX_TILES x MONTAGE_MAX_TILES equal tiles of an 8-bit image (at
    least MONTAGE_MIN_TILE_PX a side, neither side over twice the other) whose every tile holds a
    body (MONTAGE_MIN_BODY of it; the body: above :func:`body_floor`), fewest tiles first ->
    (rows, columns, each tile's (h, w) bool body, each tile's body sampled by :func:`_tile_body`)."""
    g = np.asarray(gray, np.float32)
    body = g > body_floor(False, estimate or estimate_display_window(g))
    h, w = g.shape
    for rows in range(1, MONTAGE_MAX_TILES + 1):
        for cols in range(1, MONTAGE_MAX_TILES + 1):
            th, tw = h // rows, w // cols
            if rows * cols < 2 or min(th, tw) < MONTAGE_MIN_TILE_PX or not 0.5 <= th / tw <= 2.0:
                continue
            tiles = [body[i * th:(i + 1) * th, j * tw:(j + 1) * tw] for i in range(rows) for j in range(cols)]
            sampled = [_tile_body(t) for t in tiles]
            if min(b.mean() for b in sampled) >= MONTAGE_MIN_BODY:
                yield rows, cols, tiles, sampled


def _overlap(bodies: list[np.ndarray]) -> float:
    """Tiles' bodies sampled by :func:`_tile_body` -> their mean pairwise intersection over union."""
    return float(np.mean([(a & b).sum() / max(1, (a | b).sum()) for a, b in combinations(bodies, 2)]))


def montage_grid(gray: np.ndarray, estimate: WindowEstimate | None = None) -> tuple[int, int] | None:
    """(rows, columns) of CT slices laid side by side in one 8-bit image (a viewer's montage or
    key-image layout), or None where it looks like one slice.

    gray: (H, W) grey levels in [0, 255], with its window ``estimate`` (None: read here); the body
    is what lies above :func:`body_floor`. Every grid of up to MONTAGE_MAX_TILES x MONTAGE_MAX_TILES
    equal tiles (at least MONTAGE_MIN_TILE_PX a side, neither side over twice the other) is tried; it
    is a montage where every tile holds a body (MONTAGE_MIN_BODY of it) with air around it
    (MONTAGE_MAX_BORDER_BODY of its border at most) and the tiles' bodies lie alike, as slices of
    one patient do (mean pairwise intersection over union at least MONTAGE_MIN_OVERLAP: one
    slice cut into tiles gives each a different part of the body). Of several grids, the one with
    the most tiles. Measured: none of the 639 real 8-bit slices, nor of the four HU volumes rendered
    at W150/L30, W400/L40 and W2000/L0 (every 4th slice), is taken for a montage; 1 x 2, 2 x 1,
    2 x 2, 2 x 3 and 3 x 3 montages of CHAOS and IRCAD liver slices are found with their grid
    (overlap 0.81 to 0.95); LiTS 117's cube fills its frame, so its montages are not.
    """
    best = None
    for rows, cols, _, bodies in _tile_grids(gray, estimate):
        if best is not None and rows * cols <= best[0] * best[1]:
            continue
        border = max(np.concatenate([b[0], b[-1], b[:, 0], b[:, -1]]).mean() for b in bodies)
        if border <= MONTAGE_MAX_BORDER_BODY and _overlap(bodies) >= MONTAGE_MIN_OVERLAP:
            best = (rows, cols)
    return best


VIEWPORT_SIDE_INSET_PX = 4  # a viewport's sides are read this far in (past the lines between viewports)
VIEWPORT_MAX_SIDE_BODY = 0.1  # share of any viewport side that may be body: each view lies clear of its frame


def viewport_grid(gray: np.ndarray, estimate: WindowEstimate | None = None) -> tuple[int, int] | None:
    """(rows, columns) of a viewer's layout of viewports that show different views (axial, coronal,
    sagittal, or unlike slices) in one 8-bit image, or None. A grid as :func:`montage_grid` tries
    whose every tile holds a body lying clear of the tile's sides (at most VIEWPORT_MAX_SIDE_BODY of
    each side, read VIEWPORT_SIDE_INSET_PX in) but whose bodies are not alike (below
    MONTAGE_MIN_OVERLAP: else it is a montage). One slice cut into tiles is cut through its body,
    whose cut sides then hold body. Of several grids, the one with the most tiles. Measured: a 2 x 2
    axial, coronal, sagittal and axial layout of CHAOS is found (overlap 0.52, sides at most 0.02);
    none of the 639 real 8-bit slices, nor of the four HU volumes rendered at W150/L30, W400/L40 and
    W2000/L0 (every 4th slice)."""
    m = VIEWPORT_SIDE_INSET_PX
    best = None
    for rows, cols, tiles, bodies in _tile_grids(gray, estimate):
        if best is not None and rows * cols <= best[0] * best[1]:
            continue
        if min(min(t.shape) for t in tiles) <= 2 * m:
            continue
        sides = max(max(t[m].mean(), t[-1 - m].mean(), t[:, m].mean(), t[:, -1 - m].mean()) for t in tiles)
        if sides <= VIEWPORT_MAX_SIDE_BODY and _overlap(bodies) < MONTAGE_MIN_OVERLAP:
            best = (rows, cols)
    return best


def pad_to_square(img: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """(H, W) array -> ((S, S) array, S = max(H, W), with the input centred on a background of its
    own lowest value (air in HU, black in 8-bit); (top, left) of the input in it). The model learned
    on square views: a 2:1 slice resized straight to its square input is squashed (liver Dice
    0.78 to 0.91 on the samples pasted into such a frame, 0.95 to 0.97 padded)."""
    a = np.asarray(img)
    h, w = a.shape[:2]
    if h == w:
        return a, (0, 0)
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    out = np.full((side, side), a.min(), a.dtype)
    out[top:top + h, left:left + w] = a
    return out, (top, left)


def resize_image(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) float32 -> (height, width) float32, bilinear (antialiased when shrinking)."""
    a = np.asarray(img, np.float32)
    if a.shape == (height, width):
        return a.copy()
    return np.asarray(Image.fromarray(a, mode="F").resize((width, height), Image.BILINEAR), np.float32)


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) integer label mask -> (height, width) uint8, nearest neighbour (labels stay labels)."""
    a = np.asarray(mask).astype(np.uint8)
    if a.shape == (height, width):
        return a.copy()
    return np.asarray(Image.fromarray(a, mode="L").resize((width, height), Image.NEAREST), np.uint8)


BLACK_GREY = 2  # grey levels: 8-bit pixels this dark are black, JPEG noise included


def below_window(pixels: np.ndarray, is_hu: bool, spec: InputSpec) -> np.ndarray:
    """(H, W) HU or 8-bit grey levels -> (H, W) bool: pixels that cannot be liver or tumor. In HU,
    those at or below the bottom of the model's window (air, lung, the darkest fat; the liver's
    lowest values, in fatty livers, lie near -20 HU). In 8-bit images, black ones (at most
    BLACK_GREY): a display window shows liver black only if its bottom lies above the liver, which
    no abdominal export does. (Not the estimated window's bottom: a misread wide window would put
    grey tumors below it.) The masks are kept off these pixels, so that resizing the model's output
    back does not spill liver a pixel into the black beyond a slice's edge."""
    gray = to_grayscale(pixels)
    return gray <= (spec.window_hu[0] if is_hu else BLACK_GREY)


def prepare_slice(pixels: np.ndarray, is_hu: bool, spec: InputSpec,
                  estimate: WindowEstimate | None = None) -> tuple[np.ndarray, WindowEstimate | None]:
    """One slice -> model input.

    pixels: (H, W) HU values when ``is_hu``, else an 8-bit display image (H, W) or (H, W, C)
    with grey levels in [0, 255].
    Returns ((spec.height, spec.width) float32 in [0, 1], the window estimate for 8-bit input).
    """
    gray = to_grayscale(pixels)
    if is_hu:
        x, est = window_hu(gray, spec.window_hu), None
    else:
        x, est = standardize_8bit(gray, spec.window_hu, estimate)
    return resize_image(x, spec.height, spec.width), est
