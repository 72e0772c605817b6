"""Compare candidate models side by side on the figures a model is chosen on.

    python -m training.compare models runs/v19/screen/eval.json runs/v19avg/screen/eval.json

Each argument is an evaluation (the JSON ``training.evaluate --windows --json`` writes) or a model
folder, whose card carries its own (``metrics``). Prints one column per candidate: the validation
patients' pooled 8-bit liver Dice (where the choice is made), the held-out volumes' HU paths and
lesions (false lesions on the healthy CHAOS liver among them), every row of the display-window
grid, and how many grid rows miss the issue's targets (liver Dice >= 0.93, tumor Dice within 0.05
of the HU path).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from hepatoscan.model_card import find_card

from .evaluate import STACK_SUFFIX

LIVER_TARGET = 0.93  # liver Dice on every window of the grid
TUMOR_GAP_TARGET = 0.05  # tumor Dice on every window within this of the HU path


def load_eval(path: Path) -> dict:
    """An evaluation JSON, or a model folder's card metrics -> the evaluation dict."""
    if path.is_dir():
        metrics = find_card(path).raw.get("metrics") or {}
        if not metrics:
            raise ValueError(f"{path}: its card holds no metrics; evaluate it with training.evaluate --json")
        return metrics
    return json.loads(path.read_text())


def _volume(ev: dict, case: str) -> dict:
    return next((v for v in ev.get("volumes", []) if v["case"] == case), {})


def target_misses(ev: dict, stack: bool = False) -> list[str]:
    """-> the 'case window' rows of the grid that miss the liver or the tumor target, of the grid
    read slice by slice or (``stack``) as one stack."""
    misses = []
    for case, rows in ev.get("window_grid", {}).items():
        if case.endswith(STACK_SUFFIX) != stack:
            continue
        hu_tumor = rows.get("HU path", {}).get("tumor_dice")
        for name, r in rows.items():
            if name == "HU path":
                continue
            if r["liver_dice"] is not None and r["liver_dice"] < LIVER_TARGET:
                misses.append(f"{case} {name} liver")
            # Figures carry 4 decimals: a gap of exactly 0.05 meets the target.
            gap = None if hu_tumor is None or r.get("tumor_dice") is None else round(hu_tumor - r["tumor_dice"], 4)
            if gap is not None and gap > TUMOR_GAP_TARGET:
                misses.append(f"{case} {name} tumor")
    return misses


def rows_of(ev: dict) -> dict[str, str]:
    """-> {row label: formatted figure} for one evaluation."""
    f = lambda x: "-" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)  # noqa: E731
    s = ev.get("summary", {})
    lits, chaos = _volume(ev, "lits_117"), _volume(ev, "chaos_ct_set3")
    les = lits.get("lesions", {})
    rows = {
        "thresholds (liver / tumor)": "/".join(f(v) for v in ev.get("thresholds", {}).values()) or "card",
        "validation 8-bit liver, pooled": f(s.get("liver_dice_8bit_pooled_mean")),
        "LiTS 117 HU liver / tumor": f"{f(lits.get('liver_dice'))} / {f(lits.get('tumor_dice'))}",
        "tumor Dice, global": f(ev.get("tumor_dice_global")),
        "LiTS 117 lesions found / recall / precision": f"{f(les.get('pred_lesions'))} / {f(les.get('recall'))} / "
                                                       f"{f(les.get('precision'))}",
        "LiTS 117 recall >= 10 mm": f(les.get("recall_10mm")),
        "CHAOS HU liver": f(chaos.get("liver_dice")),
        "CHAOS false lesions": f(chaos.get("lesions", {}).get("pred_lesions")),
    }
    for key in ("window_grid", "image_quality"):
        for case, grid in ev.get(key, {}).items():
            for name, r in grid.items():
                tumor = "" if r.get("tumor_dice") is None else f" / {f(r['tumor_dice'])}"
                rows[f"{case} {name}"] = f"{f(r['liver_dice'])}{tumor}"
    rows["grid rows missing a target"] = str(len(target_misses(ev))) if "window_grid" in ev else "-"
    if any(case.endswith(STACK_SUFFIX) for case in ev.get("window_grid", {})):
        rows["grid rows missing a target, as a stack"] = str(len(target_misses(ev, stack=True)))
    return rows


def table(named: dict[str, dict]) -> str:
    """{candidate name: evaluation} -> a Markdown table, one column per candidate."""
    per = {name: rows_of(ev) for name, ev in named.items()}
    labels = list(dict.fromkeys(label for rows in per.values() for label in rows))
    lines = ["| figure | " + " | ".join(named) + " |", "|---" * (len(named) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(per[n].get(label, "-") for n in named) + " |" for label in labels]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("evals", nargs="+", type=Path, help="eval JSON files or model folders")
    a = p.parse_args(argv)
    named = {}
    for path in a.evals:
        try:
            named[str(path)] = load_eval(path)
        except (OSError, ValueError) as e:
            p.error(f"{path}: {e}")
    print(table(named))
    for name, ev in named.items():
        misses = target_misses(ev)
        print(f"\n{name}: {len(misses)} grid rows miss a target" + (": " + ", ".join(misses) if misses else ""))


if __name__ == "__main__":
    main()
