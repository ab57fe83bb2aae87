"""Counted nouns for user-facing messages: `counted(1, "action")` is "1 action", `counted(2, "action")`
"2 actions"; a noun with an irregular plural gives it (`counted(n, "entry", "entries")`)."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and the noun, singular for exactly 1 (as "1 action", "0 actions", "2 actions")."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
