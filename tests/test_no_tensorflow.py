"""The runtime never loads TensorFlow or Keras, even while predicting."""
import subprocess
import sys

from conftest import ROOT

SCRIPT = """
import sys
import hepatoscan
from hepatoscan.pipeline import analyze
from hepatoscan.predictor import Predictor
p = Predictor.from_model_dir()
r = analyze(p, "samples/lits117_z080_w350.png", reference="samples/lits117_z080_w350_mask.png")
r.report_pdf()
assert r.agreement.liver_dice > 0.9
bad = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "torch")]
print("LOADED:", bad)
assert r.summary()["liver_area_px"] > 0
"""


def test_runtime_loads_no_tensorflow():
    r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "LOADED: []" in r.stdout


def test_runtime_sources_do_not_import_tensorflow():
    for path in (ROOT / "hepatoscan").rglob("*.py"):
        text = path.read_text()
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")):
                assert "tensorflow" not in stripped and "keras" not in stripped, f"{path}: {line}"
