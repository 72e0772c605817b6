#!/usr/bin/env bash
# Size of the core install (no TensorFlow, no Gradio) in a fresh virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
${PYTHON:-python3.11} -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip >/dev/null
"$tmp/venv/bin/pip" install -q . >/dev/null
base=$(du -sm "$tmp/venv" | cut -f1)
echo "core install (pip install .): ${base} MB in a fresh venv (target <= 250 MB)"
"$tmp/venv/bin/python" -c "import hepatoscan.pipeline, sys; bad=[m for m in sys.modules if m.startswith(('tensorflow','gradio'))]; print('imports TensorFlow/Gradio:', bad or 'none')"
"$tmp/venv/bin/hepatoscan" --version
