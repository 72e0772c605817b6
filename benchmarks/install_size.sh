#!/usr/bin/env bash
# Size of the core install (no TensorFlow, no Gradio) in a fresh virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
${PYTHON:-python3.11} -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip >/dev/null
"$tmp/venv/bin/pip" install -q . >/dev/null
total=$(du -sm "$tmp/venv" | cut -f1)
site=$("$tmp/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
tooling=$(du -smc "$site"/pip "$site"/setuptools "$site"/_distutils_hack 2>/dev/null | tail -1 | cut -f1)
echo "core install (pip install .): $((total - tooling)) MB for HepatoScan and its dependencies (target <= 250 MB); ${total} MB with the venv's own pip/setuptools"
"$tmp/venv/bin/python" -c "import hepatoscan.pipeline, sys; bad=[m for m in sys.modules if m.startswith(('tensorflow','gradio'))]; print('imports TensorFlow/Gradio:', bad or 'none')"
"$tmp/venv/bin/hepatoscan" --version

# Peak RSS of the core profile's CLI (the edge-board case) on a 512 x 512 x 150 volume, with the PDF.
"$tmp/venv/bin/python" - "$tmp" <<'PY'
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from hepatoscan.cli import main
from hepatoscan.io import load_scan

tmp = Path(sys.argv[1])
hu = np.asarray(load_scan("samples/lits117_volume.nii.gz").pixels)  # (128, 128, 128)
big = np.concatenate([np.repeat(np.repeat(hu, 4, axis=1), 4, axis=2)] * 2)[:150]  # (150, 512, 512)
nib.save(nib.Nifti1Image(big.astype(np.int16).transpose(2, 1, 0), np.diag([-0.7, -0.7, 1.5, 1])),
         str(tmp / "big.nii.gz"))
del big, hu
# The measurement starts after the volume is written: reset the high-water mark.
Path("/proc/self/clear_refs").write_text("5")
main(["segment", str(tmp / "big.nii.gz"), "--out", str(tmp / "out"), "--pdf"])
hwm_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(f"core profile, CLI on a 512 x 512 x 150 .nii.gz with every output and the PDF: peak RSS {hwm_kb / 1024:.0f} MB")
PY
