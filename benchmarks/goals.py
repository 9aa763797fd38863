"""How every benchmark states its goal and whether this run met it, in the same words.

    from goals import at_least, summary
    print(f"merge K=16 … ratio {at_least(1.13, 0.7)}")   # ratio 1.13 (goal >= 0.7: met)
    summary()                                            # goals: all 3 met

Each benchmark's docstring says where its goals come from (an issue, or why it was chosen).
"""

from __future__ import annotations

_results: list[bool] = []


def _verdict(met: bool) -> str:
    _results.append(met)
    return "met" if met else "NOT met"


def at_least(value: float, goal: float, digits: int = 2) -> str:
    """``value (goal >= goal: met)``."""
    return f"{value:.{digits}f} (goal >= {goal}: {_verdict(value >= goal)})"


def at_most(value: float, goal: float, digits: int = 2) -> str:
    """``value (goal <= goal: met)``."""
    return f"{value:.{digits}f} (goal <= {goal}: {_verdict(value <= goal)})"


def summary() -> None:
    """The last line: how many of the goals printed above were met."""
    missed = _results.count(False)
    if missed:
        print(f"goals: {missed} of {len(_results)} NOT met")
    else:
        print(f"goals: all {len(_results)} met")
