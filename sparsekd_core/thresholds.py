"""Score thresholds of a detector as one immutable value: a default, and per-class values that replace it.

A detector reads its :class:`ScoreThresholds` once per frame, and a change (a ROS parameter, a command-line
flag) builds a new value and swaps it in with one assignment, so a frame never mixes old and new settings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["ScoreThresholds", "parse_class_thresholds", "NO_CLASS_THRESHOLDS", "parse_class_setting",
           "class_thresholds_for"]


def _check_score(what: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{what} must be a number in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ScoreThresholds:
    """Minimum score of a kept box: ``default`` for every class, except the classes ``per_class`` names,
    whose own value replaces the default (lower or higher). ``per_class`` is kept as sorted
    ``(name, threshold)`` pairs so the value is hashable and cannot be changed in place."""

    default: float
    per_class: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "default", _check_score("score_threshold", self.default))
        items = self.per_class.items() if isinstance(self.per_class, Mapping) else self.per_class
        pairs = {}
        for name, value in items:
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"a class threshold needs a class name, got {name!r}")
            pairs[name.strip()] = _check_score(f"the threshold of class {name!r}", value)
        object.__setattr__(self, "per_class", tuple(sorted(pairs.items())))

    @classmethod
    def parse(cls, default: float, per_class: str | Sequence[str] = "") -> "ScoreThresholds":
        """``ScoreThresholds.parse(0.3, "Pedestrian:0.25,Cyclist:0.25")`` (or a list of 'Name:value' items)."""
        return cls(default, tuple(parse_class_thresholds(per_class).items()))

    def of(self, class_name: str) -> float:
        """The threshold that applies to ``class_name``."""
        return dict(self.per_class).get(class_name, self.default)

    def for_classes(self, class_names: Iterable[str]) -> list[float]:
        """The threshold of each class, in the order given (a model's class order)."""
        per_class = dict(self.per_class)
        return [per_class.get(name, self.default) for name in class_names]

    def passing(self, names: Sequence[str], scores) -> np.ndarray:
        """(N,) bool: which boxes of classes ``names`` scoring ``scores`` these thresholds keep (score >= its
        class's threshold), e.g. to cut boxes kept at a lower threshold down to what a node publishes."""
        limits = np.array(self.for_classes(names), np.float64).reshape(-1)
        return np.asarray(scores, np.float64).reshape(-1) >= limits

    def unknown(self, class_names: Iterable[str]) -> list[str]:
        """Class names with a threshold here that are not among ``class_names``."""
        known = set(class_names)
        return [name for name, _ in self.per_class if name not in known]

    def restricted_to(self, class_names: Iterable[str]) -> "ScoreThresholds":
        """The same thresholds without the classes that are not among ``class_names``."""
        known = set(class_names)
        return replace(self, per_class=tuple((n, v) for n, v in self.per_class if n in known))

    def with_default(self, default: float) -> "ScoreThresholds":
        return replace(self, default=default)

    def with_per_class(self, per_class: Mapping[str, float] | Iterable[tuple[str, float]]) -> "ScoreThresholds":
        pairs = per_class.items() if isinstance(per_class, Mapping) else per_class
        return replace(self, per_class=tuple(pairs))

    def describe(self) -> str:
        """'0.3 (Pedestrian 0.25, Cyclist 0.25)' for logs."""
        if not self.per_class:
            return f"{self.default:g}"
        return f"{self.default:g} ({', '.join(f'{n} {v:g}' for n, v in self.per_class)})"


def parse_class_thresholds(value: str | Sequence[str]) -> dict[str, float]:
    """'Car:0.5,Pedestrian:0.3' or ['Car:0.5', 'Pedestrian:0.3'] -> {'Car': 0.5, 'Pedestrian': 0.3}.

    Empty string / list -> {}. Raises ValueError for items without ':' or with a non-number, or a
    threshold outside [0, 1].
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    out: dict[str, float] = {}
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        name, sep, thr = item.rpartition(":")
        try:
            score = float(thr)
        except ValueError:
            score = math.nan
        if not sep or not name.strip() or not 0.0 <= score <= 1.0:
            raise ValueError(
                f"class_score_thresholds item {item!r} is not 'ClassName:threshold' with a threshold in [0, 1], "
                f"e.g. 'Pedestrian:0.25'"
            )
        out[name.strip()] = score
    return out


#: The class_score_thresholds value that asks for no per-class thresholds at all, not even the model's operating
#: point (every class then uses score_threshold).
NO_CLASS_THRESHOLDS = "none"


def parse_class_setting(value: str | Sequence[str]) -> tuple[tuple[str, float], ...] | None:
    """A class_score_thresholds setting of the node and the tools: ``None`` for an empty value (the model's own
    operating point applies), ``()`` for ``"none"``, else the parsed ``(name, threshold)`` pairs."""
    if isinstance(value, str) and value.strip().lower() == NO_CLASS_THRESHOLDS:
        return ()
    pairs = tuple(parse_class_thresholds(value).items())
    return pairs or None


def class_thresholds_for(setting: tuple[tuple[str, float], ...] | None,
                         operating: Mapping[str, float]) -> dict[str, float]:
    """The per-class thresholds a ``parse_class_setting`` result asks for, given the model's operating point
    (its checkpoint's ``head.post.operating_thresholds``; {} when it records none)."""
    return dict(operating) if setting is None else dict(setting)
