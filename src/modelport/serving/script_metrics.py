"""Custom metrics from scoring scripts: counters, gauges and histograms that a script's ``init``
and ``run`` update, and that ``serve`` exposes on ``/metrics`` next to its own series.

Azure ML scripts log metrics of their own (items scored, cache hits, what a model decided); here
a script writes ``from modelport.metrics import counter, gauge, histogram`` (see
:mod:`modelport.metrics`). Every series is exposed as ``modelport_script_<name>`` (counters with
``_total``), so a script can never shadow or corrupt the server's families, and carries the
server's labels — ``model`` (the registered model's name, else the script's file name), and
``endpoint``/``deployment`` when the server is a replica — before the script's own.

Names follow Prometheus' rules and are checked when the metric is made, so a bad name fails the
script's import (the server does not start) rather than a scrape. Defining a metric again with
the same kind and labels returns the same metric (a script imported twice keeps counting);
anything else under the same name is refused. A family holds at most :data:`MAX_SERIES` label
combinations: a label taking per-request values would grow without bound.

Values live in this process. With ``serve --workers N`` each worker's script counts its own
requests and a scrape adds the workers up (:func:`combine`), as for every other series: counters
and histograms sum; a gauge sums by default, or takes the workers' ``max``/``min`` when made so
(a value every worker holds alike, such as a loaded model's version, is not N times itself).
"""

from __future__ import annotations

import math
import numbers
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from modelport.core.errors import ValidationError

PREFIX = "modelport_script_"
MAX_SERIES = 1000
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SERVER_LABELS = ("model", "endpoint", "deployment")
_RESERVED_LABELS = frozenset({*SERVER_LABELS, "le", "quantile"})
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


class Kind(str, Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Combine(str, Enum):
    """How a gauge's values from several worker processes become one."""

    SUM = "sum"
    MAX = "max"
    MIN = "min"


@dataclass(frozen=True)
class Definition:
    """What a family is: its exposed name (prefix and, for counters, ``_total`` included)."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]
    combine: Combine = Combine.SUM
    buckets: tuple[float, ...] = ()


class _Family:
    """One family's series: label values → value (counter, gauge) or [bucket counts..., sum]."""

    def __init__(self, definition: Definition) -> None:
        self.definition = definition
        self.lock = threading.Lock()
        self.series: dict[tuple[str, ...], list[float]] = {}

    def cell(self, key: tuple[str, ...]) -> list[float]:
        """The series of ``key``, made on first use (call with the lock held)."""
        found = self.series.get(key)
        if found is None:
            if len(self.series) >= MAX_SERIES:
                raise ValidationError(
                    f"metric {self.definition.name}: over {MAX_SERIES} label combinations; "
                    "a label must not take a new value per request"
                )
            found = self.series[key] = [0.0] * (len(self.definition.buckets) + 2 if self._histogram else 1)
        return found

    @property
    def _histogram(self) -> bool:
        return self.definition.kind is Kind.HISTOGRAM

    def key(self, values: Sequence[object], named: Mapping[str, object]) -> tuple[str, ...]:
        labels = self.definition.labels
        if values and named:
            raise ValidationError(f"metric {self.definition.name}: give label values by position or by name, not both")
        if named:
            if set(named) != set(labels):
                raise ValidationError(
                    f"metric {self.definition.name}: labels are ({', '.join(labels)}), not ({', '.join(named)})"
                )
            values = [named[label] for label in labels]
        if len(values) != len(labels):
            raise ValidationError(
                f"metric {self.definition.name}: takes {len(labels)} label value(s) "
                f"({', '.join(labels)}), got {len(values)}"
            )
        return tuple(str(value) for value in values)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            series = [[list(key), list(cell)] for key, cell in self.series.items()]
        return {**asdict(self.definition), "series": series}


class _Metric:
    """A family, or one series of it once its label values are chosen (``.labels(...)``)."""

    def __init__(self, family: _Family, key: tuple[str, ...] | None) -> None:
        self._family = family
        self._key = key

    def labels(self, *values: object, **named: object) -> Any:  # the same class as self
        """The series with these label values (by position or by name), made on first use."""
        if self._key is not None:
            raise ValidationError(f"metric {self._family.definition.name}: its label values are chosen already")
        return type(self)(self._family, self._family.key(values, named))

    def _update(self, change: Any) -> None:
        if self._key is None:
            labels = ", ".join(self._family.definition.labels)
            raise ValidationError(
                f"metric {self._family.definition.name}: has labels ({labels}); choose a series with .labels(...) first"
            )
        with self._family.lock:
            change(self._family.cell(self._key))


class Counter(_Metric):
    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (not negative: a counter only goes up)."""
        amount = _finite(self._family.definition.name, amount)
        if amount < 0:
            raise ValidationError(f"metric {self._family.definition.name}: a counter only goes up, not by {amount}")
        self._update(lambda cell: cell.__setitem__(0, cell[0] + amount))


class Gauge(_Metric):
    def set(self, value: float) -> None:
        value = _finite(self._family.definition.name, value)
        self._update(lambda cell: cell.__setitem__(0, value))

    def inc(self, amount: float = 1.0) -> None:
        amount = _finite(self._family.definition.name, amount)
        self._update(lambda cell: cell.__setitem__(0, cell[0] + amount))

    def dec(self, amount: float = 1.0) -> None:
        self.inc(-amount)


class Histogram(_Metric):
    def observe(self, value: float) -> None:
        """Count ``value`` in its bucket (cumulated when exposed) and add it to the sum."""
        value = _finite(self._family.definition.name, value)
        buckets = self._family.definition.buckets

        def count(cell: list[float]) -> None:
            index = next((i for i, bound in enumerate(buckets) if value <= bound), len(buckets))
            cell[index] += 1
            cell[-1] += value

        self._update(count)


class Registry:
    """The metrics of this process's scoring script, and the name of the model it serves."""

    def __init__(self) -> None:
        self.model = ""
        self._families: dict[str, _Family] = {}
        self._lock = threading.Lock()

    def define(self, definition: Definition) -> _Family:
        with self._lock:
            family = self._families.get(definition.name)
            if family is None:
                family = self._families[definition.name] = _Family(definition)
            elif family.definition != definition:
                raise ValidationError(
                    f"metric {definition.name}: already defined differently "
                    f"({family.definition.kind.value} with labels {family.definition.labels})"
                )
            return family

    def exposed(self, endpoint: str | None = None, deployment: str | None = None) -> dict[str, Any] | None:
        """What ``/metrics`` shows of the script: the server's labels and every family's series
        (JSON-ready, for worker snapshots); None when the script defined no metric."""
        with self._lock:
            families = list(self._families.values())
        if not families:
            return None
        labels = {"model": self.model, "endpoint": endpoint, "deployment": deployment}
        return {
            "labels": {key: value for key, value in labels.items() if value},
            "families": [family.snapshot() for family in families],
        }


REGISTRY = Registry()


def combine(parts: Iterable[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Several workers' :meth:`Registry.exposed` as one: series with the same labels add up
    (a gauge as its family says). A family another worker defined differently is left out of
    that worker's share."""
    present = [part for part in parts if part is not None]
    if not present:
        return None
    families: dict[str, dict[str, Any]] = {}
    for part in present:
        for family in part["families"]:
            merged = families.setdefault(family["name"], {**family, "series": {}})
            if any(merged[key] != family[key] for key in ("kind", "labels", "buckets", "combine")):
                continue
            for key, cell in family["series"]:
                known = merged["series"].get(tuple(key))
                merged["series"][tuple(key)] = cell if known is None else _merge(family, known, cell)
    return {
        "labels": present[0]["labels"],
        "families": [
            {**family, "series": [[list(key), cell] for key, cell in family["series"].items()]}
            for family in families.values()
        ],
    }


def _merge(family: dict[str, Any], known: list[float], cell: list[float]) -> list[float]:
    if family["kind"] == Kind.GAUGE and family["combine"] != Combine.SUM:
        return [(max if family["combine"] == Combine.MAX else min)(known[0], cell[0])]
    return [a + b for a, b in zip(known, cell)]


# -- making metrics (the API modelport.metrics re-exports) ----------------------------------------


def counter(name: str, documentation: str = "", labels: Sequence[str] = ()) -> Counter:
    """A counter exposed as ``modelport_script_<name>_total`` (a ``_total`` already in ``name`` is kept once)."""
    base = _name(name)
    base = base[: -len("_total")] if base.endswith("_total") else base
    family = REGISTRY.define(Definition(f"{PREFIX}{base}_total", Kind.COUNTER, documentation, _labels(name, labels)))
    return Counter(family, None if family.definition.labels else ())


def gauge(name: str, documentation: str = "", labels: Sequence[str] = (), combine: str = "sum") -> Gauge:
    """A gauge exposed as ``modelport_script_<name>``; ``combine`` (sum, max, min) says how the
    values of ``serve --workers N``'s processes become one."""
    try:
        how = Combine(combine)
    except ValueError:
        raise ValidationError(
            f"metric {name}: combine must be one of {', '.join(c.value for c in Combine)}, not {combine!r}"
        ) from None
    family = REGISTRY.define(Definition(PREFIX + _name(name), Kind.GAUGE, documentation, _labels(name, labels), how))
    return Gauge(family, None if family.definition.labels else ())


def histogram(
    name: str, documentation: str = "", labels: Sequence[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS
) -> Histogram:
    """A histogram exposed as ``modelport_script_<name>_bucket|_sum|_count``; ``buckets`` are the
    upper bounds, increasing (``+Inf`` is added)."""
    base = _name(name)
    if base.endswith(_HISTOGRAM_SUFFIXES):
        raise ValidationError(f"metric {name}: a histogram's name may not end in {', '.join(_HISTOGRAM_SUFFIXES)}")
    bounds = tuple(_finite(name, bound) for bound in buckets)
    if not bounds or any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise ValidationError(f"metric {name}: buckets must be one or more increasing finite numbers")
    family = REGISTRY.define(
        Definition(PREFIX + base, Kind.HISTOGRAM, documentation, _labels(name, labels), buckets=bounds)
    )
    return Histogram(family, None if family.definition.labels else ())


def _name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(f"metric {name!r}: a name is letters, digits and underscores, not starting with a digit")
    return name


def _labels(metric: str, labels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(labels, str):
        labels = (labels,)
    for label in labels:
        if not isinstance(label, str) or not _NAME.fullmatch(label) or label.startswith("__"):
            raise ValidationError(f"metric {metric}: label {label!r} is not a valid label name")
        if label in _RESERVED_LABELS:
            raise ValidationError(f"metric {metric}: label {label!r} is the server's; choose another name")
    if len(set(labels)) != len(labels):
        raise ValidationError(f"metric {metric}: labels {tuple(labels)} repeat a name")
    return tuple(labels)


def _finite(metric: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValidationError(f"metric {metric}: {value!r} is not a finite number")
    return float(value)
