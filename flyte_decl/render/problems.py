"""Render configuration problems as text lines, JSON, or GitHub Actions annotations."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from flyte_decl import masking
from flyte_decl.problems import Problem
from flyte_decl.words import counted


def _escape(text: str, *, prop: bool = False) -> str:
    # GitHub's workflow-command escaping; properties also escape ':' and ','.
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def render_problems(problems: Sequence[Problem], fmt: str, *, summary: str = "") -> str:
    """All problems in one format; `summary` is the last text line (text format only).

    Values of declared secrets in messages and hints show as `****`, masked before the format's own
    escaping (JSON, GitHub's workflow commands).
    """
    masker = masking.current()
    if masker:
        problems = [
            dataclasses.replace(p, message=masker.text(p.message), hint=masker.text(p.hint)) for p in problems
        ]
    if fmt == "json":
        errors = sum(p.severity == "error" for p in problems)
        return json.dumps(
            {"valid": errors == 0, "errors": errors, "problems": [p.as_dict() for p in problems]}, indent=2
        )
    if fmt == "github":
        lines = []
        for p in problems:
            where = f"file={_escape(p.mark.file, prop=True)}"
            if p.mark.line:
                where += f",line={p.mark.line},col={p.mark.col}"
            message = f"{p.path}: {p.message}" if p.path else p.message
            if p.hint:
                message += f" ({p.hint})"
            lines.append(f"::{p.severity} {where}::{_escape(message)}")
        return "\n".join(lines)
    lines = [str(p) for p in problems]
    if summary:
        lines.append(summary)
    return "\n".join(lines)


def count_summary(problems: Sequence[Problem]) -> str:
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    parts = [counted(errors, "error")] if errors else []
    if warnings:
        parts.append(counted(warnings, "warning"))
    return ", ".join(parts)
