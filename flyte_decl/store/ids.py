"""How users name runs and actions: short ids (`r12`, `a3`), and what a mistyped one meant.

Run ids count up in each store (`r1`, `r2`, ...), so they stay short enough to type and say; `last`
names the newest run. An action is named by its id in the run (`a3`), its label
(`env2.square[3]`) or a task name (`say_hello`, `env1.say_hello`) that has exactly one action.

Example::

    run_id(12)                                   # "r12"
    pick_action("square[3]", actions)            # the action labelled env2.square[3]
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from typing import Protocol

from flyte_decl.problems import UsageError

LAST = "last"


def run_id(seq: int) -> str:
    """The id of the store's `seq`-th run."""
    return f"r{seq}"


def unknown_run(word: str, recent: Sequence[str], home: str) -> UsageError:
    """The error for a run id the store does not have, with a did-you-mean over `recent` ids."""
    if not recent:
        return UsageError(
            f"unknown run {word!r}: no runs recorded in {home} yet "
            "(hint: start one with 'flyte-decl run TASK', or set FLYTE_DECL_HOME)"
        )
    close = _normalized(word, "r", recent) or difflib.get_close_matches(word, recent, n=1, cutoff=0.75)
    if close:
        return UsageError(f"unknown run {word!r} (did you mean {close[0]!r}? see 'flyte-decl runs list')")
    shown = ", ".join(recent[:5])
    return UsageError(f"unknown run {word!r} (recent runs: {shown}; see 'flyte-decl runs list')")


def _normalized(word: str, letter: str, known: Collection[str]) -> list[str]:
    """`12`, `R12` or `r012` for `r12` (`letter` "r"), `A3` for `a3`: an id written another way."""
    digits = word.strip().lower().removeprefix(letter).lstrip("0")
    candidate = f"{letter}{digits}"
    return [candidate] if digits.isdigit() and candidate in known else []


class Labelled(Protocol):
    """What `pick_action` needs of an action."""

    @property
    def id(self) -> str: ...

    @property
    def task(self) -> str: ...

    @property
    def label(self) -> str: ...


def pick_action(word: str, actions: Sequence[Labelled], run: str) -> str:
    """The id of the action `word` names in run `run`; a usage error says what would have matched."""
    ids = {action.id for action in actions}
    if word in ids:
        return word
    for action in actions:
        if word in (action.label, action.label.partition(".")[2]):
            return action.id
    named = list(dict.fromkeys(a.id for a in actions if word in (a.task, a.task.partition(".")[2])))
    if len(named) == 1:
        return named[0]
    if named:
        listed = ", ".join(_labels(actions, named[:5])) + (", ..." if len(named) > 5 else "")
        raise UsageError(
            f"{word!r} names {len(named)} actions of run {run}: {listed} (hint: give one of them)"
        )
    labels = {action.label for action in actions}
    choices = sorted(ids) + sorted(labels | {label.partition(".")[2] for label in labels})
    close = _normalized(word, "a", ids) or difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    hint = (
        f"did you mean {close[0]!r}?" if close else "hint: an action id like a1, or a label like env.task[0];"
    )
    raise UsageError(f"run {run} has no action {word!r} ({hint} see 'flyte-decl runs show {run}')")


def _labels(actions: Sequence[Labelled], ids: Sequence[str]) -> list[str]:
    by_id = {action.id: action.label for action in actions}
    return [f"{action_id} ({by_id[action_id]})" for action_id in ids]
