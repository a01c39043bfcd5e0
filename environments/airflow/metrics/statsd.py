"""The statsd wire format, as Airflow's statsd client sends it.

One datagram holds one or more lines (`name:value|type[|@rate][|#tags]`, separated by new
lines when the client pipelines). Types: `c` counter, `g` gauge (a leading sign on the value
makes it a delta), `ms` and `h` timers, `s` sets. Anything else is dropped, line by line:
a malformed line never costs the rest of the datagram.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = {"c": "counter", "g": "gauge", "ms": "timer", "h": "timer", "s": "set"}
MAX_NAME = 250


@dataclass(frozen=True)
class Sample:
    name: str
    value: float
    kind: str  # a value of KINDS
    rate: float = 1.0
    delta: bool = False  # a gauge given as "+n" / "-n": added to the last value


def parse_line(line: str) -> Sample | None:
    name, sep, rest = line.strip().partition(":")
    if not sep or not name or len(name) > MAX_NAME or any(c.isspace() for c in name):
        return None
    fields = rest.split("|")
    if len(fields) < 2:
        return None
    raw, kind = fields[0], KINDS.get(fields[1])
    if kind is None or kind == "set":
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    rate = 1.0
    for extra in fields[2:]:
        if extra.startswith("@"):
            try:
                rate = float(extra[1:])
            except ValueError:
                return None
            if not 0.0 < rate <= 1.0:
                return None
    delta = kind == "gauge" and raw[:1] in "+-"
    return Sample(name, value, kind, rate, delta)


def parse_datagram(data: bytes) -> list[Sample]:
    text = data.decode("utf-8", errors="replace")
    found = (parse_line(line) for line in text.splitlines() if line.strip())
    return [sample for sample in found if sample is not None]
