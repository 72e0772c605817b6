"""Files chosen together (several uploads, or files listed on the command line) as one input: a
folder of links to them, which the loader reads as it reads any folder (a DICOM series, or one
series' image slices)."""
from __future__ import annotations

import shutil
from pathlib import Path


def gather_files(paths: list[str | Path], folder: Path) -> Path:
    """Files -> ``folder`` (created) holding a link to each under its own name (a name met twice
    gets a number: IM0001, IM0001_2), or a copy where links cannot be made; -> ``folder``."""
    folder.mkdir(parents=True)
    for path in map(Path, paths):
        name, k = path.name, 2
        while (folder / name).exists():
            name, k = f"{path.stem}_{k}{path.suffix}", k + 1
        try:
            (folder / name).symlink_to(path.resolve())
        except OSError:  # no symbolic links here (some file systems): a copy does the same
            shutil.copyfile(path, folder / name)
    return folder
