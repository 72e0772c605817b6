"""Training samples: geometry, synthetic tumors, and display-window augmentation.

Every sample reaches the model through ``hepatoscan.preprocessing``: HU slices either through the
model's own HU window (the CT path) or rendered to an 8-bit export with a random window, gamma
and JPEG, then standardised exactly as the runtime standardises PNG/JPG uploads.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, fields, replace

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from hepatoscan.preprocessing import InputSpec, render_8bit, resize_image, standardize_8bit, window_hu

from .data import Case
from .pseudo import UNKNOWN as PSEUDO_UNKNOWN
from .synth import paste_tumor


@dataclass(frozen=True)
class AugmentConfig:
    crop_fraction: tuple[float, float] = (0.45, 1.0)  # side of a random crop / image side
    p_liver_crop: float = 0.5  # crops centred on the liver: zoomed views like liver-centred exports
    liver_crop_fraction: tuple[float, float] = (0.3, 0.8)
    rotation_deg: float = 10.0
    p_hu_window: float = 0.35  # HU slices fed through the model's own window (the CT path)
    width_hu: tuple[float, float] = (120.0, 2500.0)  # random export windows, log-uniform
    level_hu: tuple[float, float] = (-120.0, 150.0)
    # Narrow "liver" windows (W150/L30 and the like) clip fat to black and enhanced liver to white,
    # so the model must find the liver by shape; a share of the 8-bit renders is drawn from them.
    # (runs/v2 used 0.0; v3 to v5 0.3.)
    p_narrow_window: float = 0.3
    narrow_width_hu: tuple[float, float] = (100.0, 250.0)
    narrow_level_hu: tuple[float, float] = (0.0, 120.0)
    # Windows placed on the sample's own liver: the window's top falls just below or at the liver's
    # median HU, so an enhanced liver saturates to white as in a W150/L30 export of a bright liver.
    # HU slices are rendered so; 8-bit slices are re-windowed so. (v2 and v3 used 0.0; v4 and v5
    # 0.2; v6 0.35.)
    p_liver_clip_window: float = 0.35
    liver_clip_offset_hu: tuple[float, float] = (-40.0, 10.0)  # window top minus the liver's median HU
    p_gamma: float = 0.25
    gamma: tuple[float, float] = (0.6, 1.6)
    p_jpeg: float = 0.3
    jpeg_quality: tuple[int, int] = (50, 95)
    # Image quality, as nnU-Net varies it: scanners, reconstruction kernels and exports differ in
    # noise, its grain and sharpness. (Up to 1.4.0: white noise up to 15 HU, 2x low resolution
    # at p 0.15, no blur; that model lost liver on blurred or small, enlarged slices. runs/v9:
    # p_lowres 0.25 at zoom 0.35 to 0.8, p_blur 0.2 at sigma 0.5 to 2 px.)
    p_lowres: float = 0.3  # shrink and enlarge back, like small crops or thumbnails upscaled
    lowres_zoom: tuple[float, float] = (0.2, 0.8)  # the shrink factor
    p_blur: float = 0.25  # Gaussian blur: smooth kernels, thick slices, resampled exports
    blur_sigma_px: tuple[float, float] = (0.5, 4.0)  # at the model's input size
    p_synthetic_tumor: float = 0.5  # on liver slices with no real tumor
    noise_hu: float = 25.0  # HU slices: Gaussian noise, its standard deviation drawn up to this
    noise_grain_px: tuple[float, float] = (0.0, 1.5)  # the noise's correlation length (Gaussian sigma)


def augment_overrides(items: list[str], base: AugmentConfig = AugmentConfig()) -> AugmentConfig:
    """["name=value", ...] -> ``base`` with those fields replaced, each value read as the field's
    default is typed (a float, an int, or a comma-separated pair such as ``-70,10``), so a run's
    recipe is set on the command line and recorded in its config.json instead of edited defaults."""
    known = [f.name for f in fields(base)]
    changes = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or name not in known:
            raise ValueError(f"--aug {item!r}: expected NAME=VALUE with NAME one of {', '.join(known)}")
        default = getattr(base, name)
        try:
            if isinstance(default, tuple):
                parts = [p.strip() for p in text.split(",")]
                if len(parts) != len(default):
                    raise ValueError(f"{len(default)} comma-separated numbers expected")
                changes[name] = tuple(type(d)(float(p)) for d, p in zip(default, parts))
            else:
                changes[name] = type(default)(float(text))
        except ValueError as e:
            raise ValueError(f"--aug {item!r}: {e}; the default is {default!r}") from None
    return replace(base, **changes)


@dataclass
class LoadedCase:
    case: Case
    images: np.ndarray  # (Z, H, W) float32 HU or uint8 grey
    labels: np.ndarray  # (Z, H, W) uint8 in {0, 1, 2}
    liver_slices: np.ndarray
    tumor_slices: np.ndarray
    other_slices: np.ndarray
    # (Z, H, W) uint8 for sources without tumor labels: a teacher's confident tumor labels (1 tumor,
    # 0 none, 255 not taught; training.pseudo), or None
    pseudo_tumor: np.ndarray | None = None

    @classmethod
    def from_case(cls, case: Case) -> "LoadedCase":
        images, labels = case.load()
        liver_px = (labels > 0).sum((1, 2))
        tumor_px = (labels == 2).sum((1, 2)) if case.tumor_labeled else np.zeros(len(labels))
        return cls(case, images, labels, np.nonzero(liver_px > 0)[0], np.nonzero(tumor_px > 20)[0],
                   np.nonzero(liver_px == 0)[0])

    def pixel_mm(self) -> float:
        """In-plane pixel size in mm; a typical value where it is unknown."""
        if self.case.spacing_yx_mm:
            return float(self.case.spacing_yx_mm[0])
        return 1.5 if self.images.shape[-1] <= 256 else 0.75

    def units_per_hu(self) -> float:
        """Grey levels per HU of this case's intensities (1 for HU)."""
        if self.case.kind == "hu":
            return 1.0
        if self.case.window_hu:
            return 255.0 / (self.case.window_hu[1] - self.case.window_hu[0])
        return 255.0 / 350.0


def _affine_crop(rng, label, out_hw, cfg: AugmentConfig):
    h, w = label.shape
    ys, xs = np.nonzero(label) if rng.random() < cfg.p_liver_crop else ((), ())
    if len(ys):
        side = rng.uniform(*cfg.liver_crop_fraction) * min(h, w)
        cy = ys.mean() + rng.uniform(-0.15, 0.15) * side
        cx = xs.mean() + rng.uniform(-0.15, 0.15) * side
    else:
        side = rng.uniform(*cfg.crop_fraction) * min(h, w)
        cy = h / 2 + rng.uniform(-1, 1) * (h - side) / 2
        cx = w / 2 + rng.uniform(-1, 1) * (w - side) / 2
    a = np.deg2rad(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg))
    scale = side / out_hw[0]
    m = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    offset = np.array([cy, cx]) - m @ (np.array(out_hw) / 2.0)
    return m, offset


def jpeg_roundtrip(gray: np.ndarray, quality: int) -> np.ndarray:
    """(H, W) uint8 grey image -> the same saved as a JPEG of ``quality`` and decoded, (H, W) uint8."""
    buf = io.BytesIO()
    Image.fromarray(gray, "L").save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())), np.uint8)


def _to_model_input(img: np.ndarray, is_hu: bool, rng, spec: InputSpec, cfg: AugmentConfig,
                    liver_level: float | None = None, units_per_hu: float = 1.0) -> np.ndarray:
    """(H, W) HU or grey -> (H, W) float32 in [0, 1] through the runtime's preprocessing.
    liver_level: median value (HU or grey) of the slice's liver, or None, for liver-clipping
    windows; units_per_hu: grey levels per HU of an 8-bit source (1 for HU)."""
    clip_liver = liver_level is not None and rng.random() < cfg.p_liver_clip_window
    top_minus_liver_hu = rng.uniform(*cfg.liver_clip_offset_hu)
    if is_hu:
        if rng.random() < cfg.p_hu_window:
            return window_hu(img, spec.window_hu)
        if clip_liver:
            width = rng.uniform(*cfg.narrow_width_hu)
            level = liver_level + top_minus_liver_hu - width / 2
        elif rng.random() < cfg.p_narrow_window:
            width, level = rng.uniform(*cfg.narrow_width_hu), rng.uniform(*cfg.narrow_level_hu)
        else:
            width = float(np.exp(rng.uniform(*np.log(cfg.width_hu))))
            level = rng.uniform(*cfg.level_hu)
        gamma = rng.uniform(*cfg.gamma) if rng.random() < cfg.p_gamma else 1.0
        gray = render_8bit(img, (level - width / 2, level + width / 2), gamma)
    else:
        g = img.astype(np.float32)
        if clip_liver:  # re-window the export narrowly, its top at the liver: g -> 255 (1 - d / W)
            width = rng.uniform(*cfg.narrow_width_hu)
            stretch = (255.0 / units_per_hu) / width  # source window width / new width
            g = (g - liver_level) * stretch + 255.0 * (1.0 - top_minus_liver_hu / width)
        elif rng.random() < 0.6:  # re-window the export: contrast and brightness change
            s = float(np.exp(rng.uniform(np.log(0.25), np.log(1.8))))
            g = (g - 128.0) * s + 128.0 + rng.uniform(-40, 40)
        g = np.clip(g, 0, 255) / 255.0
        if rng.random() < cfg.p_gamma:
            g = g ** rng.uniform(*cfg.gamma)
        gray = np.rint(g * 255).astype(np.uint8)
    jpeg = rng.random() < cfg.p_jpeg
    if jpeg:
        gray = jpeg_roundtrip(gray, rng.integers(*cfg.jpeg_quality))
    return standardize_8bit(gray, spec.window_hu, jpeg=jpeg)[0]


def _grainy_noise(rng: np.random.Generator, shape: tuple[int, int], std: float, grain_px: float) -> np.ndarray:
    """(H, W) float32 Gaussian noise of standard deviation ``std``, correlated over ``grain_px``."""
    noise = rng.normal(0.0, 1.0, shape).astype(np.float32)
    if grain_px > 0.3:
        noise = ndi.gaussian_filter(noise, grain_px)
        noise /= max(float(noise.std()), 1e-6)
    return noise * std


def soften(img: np.ndarray, blur_px: float = 0.0, shrink: float = 1.0) -> np.ndarray:
    """(H, W) HU or grey -> (H, W) float32 blurred by ``blur_px`` (Gaussian sigma, 0 for none), then
    shrunk by ``shrink`` and enlarged back (1 for none), as soft kernels and thumbnails look."""
    out = np.asarray(img, np.float32)
    if blur_px:
        out = ndi.gaussian_filter(out, blur_px)
    if shrink != 1.0:
        h, w = out.shape
        out = resize_image(resize_image(out, max(8, round(h * shrink)), max(8, round(w * shrink))), h, w)
    return out


def degrade(img: np.ndarray, is_hu: bool, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """(H, W) float32 HU or grey -> the same with noise (HU only: 8-bit exports carry their own),
    blur and low resolution, each drawn by ``cfg``."""
    if is_hu and cfg.noise_hu > 0:
        img = img + _grainy_noise(rng, img.shape, rng.uniform(0, cfg.noise_hu), rng.uniform(*cfg.noise_grain_px))
    blur_px = rng.uniform(*cfg.blur_sigma_px) if rng.random() < cfg.p_blur else 0.0
    shrink = rng.uniform(*cfg.lowres_zoom) if rng.random() < cfg.p_lowres else 1.0
    return soften(img, blur_px, shrink)


def make_sample(lc: LoadedCase, z: int, rng: np.random.Generator, spec: InputSpec,
                cfg: AugmentConfig, teacher: bool = False) -> tuple[np.ndarray, ...]:
    """-> (x (H, W, 1) float32 in [0, 1], y (H, W, 4) float32: liver, tumor, liver weight, tumor weight);
    with ``teacher``, also the same slice (same crop, noise and blur) through the teacher's view
    (training.distill.teacher_view), (H, W, 1) float32 in [0, 1]. It draws nothing from ``rng``, so
    x and y are the same either way."""
    is_hu = lc.case.kind == "hu"
    img = lc.images[z].astype(np.float32)
    lab = lc.labels[z]
    known = np.ones(lab.shape, bool) if lc.case.tumor_labeled else np.zeros(lab.shape, bool)
    if lc.pseudo_tumor is not None:  # a teacher's confident labels where none were given
        pseudo = lc.pseudo_tumor[z]
        lab = np.where((pseudo == 1) & (lab >= 1), np.uint8(2), lab)
        known = pseudo != PSEUDO_UNKNOWN
    if not (lab == 2).any() and rng.random() < cfg.p_synthetic_tumor:
        pasted = paste_tumor(img, lab, rng, lc.pixel_mm(), lc.units_per_hu())
        if pasted is not None:
            img, lab, region = pasted
            known |= region
    out_hw = (spec.height, spec.width)
    m, off = _affine_crop(rng, lab, out_hw, cfg)
    background = -1024.0 if is_hu else 0.0
    img = ndi.affine_transform(img, m, off, output_shape=out_hw, order=1, mode="constant", cval=background)
    lab = ndi.affine_transform(lab, m, off, output_shape=out_hw, order=0, mode="constant", cval=0)
    known = ndi.affine_transform(known.astype(np.uint8), m, off, output_shape=out_hw, order=0) > 0
    img = degrade(img, is_hu, rng, cfg)
    liver = lab == 1
    liver_level = float(np.median(img[liver])) if liver.sum() > 50 else None
    x = _to_model_input(img.astype(np.float32), is_hu, rng, spec, cfg, liver_level, lc.units_per_hu())
    y = np.stack([lab >= 1, lab == 2, np.ones(out_hw, bool), known], -1).astype(np.float32)
    if teacher:
        from .distill import teacher_view

        return x[..., None], y, teacher_view(img.astype(np.float32), is_hu, spec)[..., None]
    return x[..., None], y


def eval_input(lc: LoadedCase, z: int, spec: InputSpec) -> np.ndarray:
    """Deterministic model input of one slice (no augmentation): the runtime's own path."""
    from hepatoscan.preprocessing import prepare_slice

    return prepare_slice(lc.images[z], lc.case.kind == "hu", spec)[0]
