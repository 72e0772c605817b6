"""Fetch LiTS case 117 from the PyPI package liver-ct-segmentation-package and write samples/.

    python scripts/fetch_samples.py [--out samples]

The wheel carries data/img_117.mrc (128^3 float32 HU) and data/lab_117.mrc (uint16 labels
0/1/2), MRC files with a 1024-byte header. Writes the volume and labels as NIfTI (display axes
as in the shared data: LPS affine), a few display-windowed PNG slices with their masks, and a
.zip of 64 PNG slices (a series exported from a viewer).
"""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hepatoscan.preprocessing import render_8bit  # noqa: E402

PACKAGE = "liver-ct-segmentation-package==1.6.0"
MODE_DTYPES = {2: np.float32, 6: np.uint16, 1: np.int16, 0: np.int8}
# (slice, window (lo, hi) HU): slices with tumor, shown with the usual abdominal window and
# one wide-window export, as users upload them.
PNG_SLICES = [(64, (-125, 225)), (80, (-125, 225)), (40, (-160, 240)), (96, (-750, 750))]
# A series exported slice by slice as a viewer does (IM32.png ... IM95.png, W350/L50), zipped: the
# app's and CLI's stack-of-images input.
STACK_SLICES, STACK_WINDOW, STACK_NAME = range(32, 96), (-125, 225), "lits117_w350_slices.zip"

log = logging.getLogger("fetch_samples")


def read_mrc(data: bytes) -> np.ndarray:
    """MRC bytes -> (Z, H, W) array in display axes (anterior up, patient right on the left)."""
    header = np.frombuffer(data[:1024], np.int32)
    nx, ny, nz, mode = (int(v) for v in header[:4])
    extended = int(header[23])
    dtype = MODE_DTYPES[mode]
    arr = np.frombuffer(data[1024 + extended:], dtype)[: nx * ny * nz].reshape(nz, ny, nx)
    return np.ascontiguousarray(arr.transpose(2, 1, 0))


def fetch_wheel(tmp: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), PACKAGE], check=True)
    return next(tmp.glob("*.whl"))


def main(argv=None):
    import nibabel as nib
    from PIL import Image

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "samples")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    a.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = zipfile.ZipFile(fetch_wheel(Path(tmp)))
        hu = read_mrc(wheel.read("liver_ct_segmentation_package/data/img_117.mrc"))
        lab = read_mrc(wheel.read("liver_ct_segmentation_package/data/lab_117.mrc"))
    hu = np.rint(hu).astype(np.int16)
    lab = lab.astype(np.uint8)
    # Spacing is unknown for this preprocessed cube (2x the original LiTS spacing); 1 mm is a
    # placeholder, as in the shared data.
    # Display axes (z, y, x) stored as (x, y, z) with an LPS affine, like the shared data.
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    nib.save(nib.Nifti1Image(hu.transpose(2, 1, 0), affine), str(a.out / "lits117_volume.nii.gz"))
    nib.save(nib.Nifti1Image(lab.transpose(2, 1, 0), affine), str(a.out / "lits117_segmentation.nii.gz"))
    for z, window in PNG_SLICES:
        tag = f"lits117_z{z:03d}_w{int(window[1] - window[0])}"
        Image.fromarray(render_8bit(hu[z].astype(np.float32), window)).save(a.out / f"{tag}.png")
        Image.fromarray(lab[z]).save(a.out / f"{tag}_mask.png")
        log.info("%s: liver %d px, tumor %d px", tag, int((lab[z] > 0).sum()), int((lab[z] == 2).sum()))
    write_stack(hu, a.out / STACK_NAME)
    log.info("wrote samples to %s", a.out)


def write_stack(hu: np.ndarray, path: Path, slices=STACK_SLICES, window=STACK_WINDOW,
                folder: str = "lits117_w350/") -> None:
    """(Z, H, W) HU -> a .zip of one PNG per slice of ``slices`` (``folder``IM<k>.png), rendered
    with ``window`` (lo, hi) HU, as a viewer exports a series; with ``window`` None, 16-bit PNGs of
    the CT numbers as CT stores them (HU + 1024), as research pipelines export them."""
    import io

    from PIL import Image

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:  # PNGs are compressed already
        for k in slices:
            buf = io.BytesIO()
            if window is None:
                pixels = (np.clip(hu[k].astype(np.int32), -1024, 64511) + 1024).astype(np.uint16)
            else:
                pixels = render_8bit(hu[k].astype(np.float32), window)
            Image.fromarray(pixels).save(buf, format="PNG")
            info = zipfile.ZipInfo(f"{folder}IM{k}.png", date_time=(2024, 1, 1, 0, 0, 0))
            z.writestr(info, buf.getvalue())  # a fixed date: the same bytes on every run
    log.info("%s: %d slices", path.name, len(slices))


if __name__ == "__main__":
    main()
