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

# Peak RSS in the core install (the edge-board case), with the benchmark's own script.
echo "core install, peak RSS:"
"$tmp/venv/bin/python" benchmarks/run_all.py --peak-rss-only | grep peak_rss
