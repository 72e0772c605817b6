"""Logging set-up shared by the CLI and the app (the library itself configures no logging)."""
from __future__ import annotations

import logging

# Dependencies that log at INFO what a user has no use for.
CHATTY_LOGGERS = {
    "fontTools": "font subsetting, for every PDF",
    "highdicom": "each attribute module it copies into a DICOM SEG (a dozen lines a series)",
}


def configure(level: int, fmt: str, **kwargs) -> None:
    """logging.basicConfig(level, fmt), with CHATTY_LOGGERS held to warnings and errors."""
    logging.basicConfig(level=level, format=fmt, **kwargs)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
