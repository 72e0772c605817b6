"""Small helpers for the sentences users read (app, CLI, PDF, warnings)."""
from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """n and the noun in the right number: count(1, "lesion") -> "1 lesion", count(3, "slice") ->
    "3 slices", count(2, "image") -> "2 images"; ``plural`` for irregular nouns."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def agree(n: int, singular: str, plural: str) -> str:
    """The form that agrees with n: agree(1, "was", "were") -> "was"; agree(3, "was", "were") -> "were"."""
    return singular if n == 1 else plural
