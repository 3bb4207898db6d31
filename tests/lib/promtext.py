# SPDX-License-Identifier: MIT
"""A strict reader of the Prometheus text exposition format (0.0.4).

parse(text) returns {family: Family}; it raises ValueError on anything a
Prometheus server would refuse or that the format's rules forbid: a
sample before its TYPE, a TYPE given twice, a name or label that is not
valid, a label given twice, a value that is not a float, a histogram
without its +Inf bucket or with buckets that go down, a counter whose
name does not end in _total.
"""
import math
import re

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*$")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class Family:
    def __init__(self, name, type_):
        self.name = name
        self.type = type_
        self.help = None
        self.samples = []  # (name, {label: value}, float)

    def values(self, **labels):
        """The samples named like the family whose labels include these."""
        return [v for n, ls, v in self.samples
                if n == self.name and all(ls.get(k) == w for k, w in labels.items())]

    def value(self, **labels):
        vs = self.values(**labels)
        if len(vs) != 1:
            raise KeyError("%s%s: %d samples" % (self.name, labels, len(vs)))
        return vs[0]


def _labels(s, line):
    out = {}
    i = 0
    while i < len(s):
        m = re.match(r"\s*([^=\s]+)\s*=\s*\"", s[i:])
        if not m:
            raise ValueError("bad labels: %r" % line)
        key = m.group(1)
        if not LABEL.match(key) or key.startswith("__"):
            raise ValueError("bad label name %r: %r" % (key, line))
        if key in out:
            raise ValueError("label %r twice: %r" % (key, line))
        i += m.end()
        val = []
        while True:
            if i >= len(s):
                raise ValueError("unterminated label value: %r" % line)
            c = s[i]
            if c == "\\":
                nxt = s[i + 1:i + 2]
                if nxt not in ('"', "\\", "n"):
                    raise ValueError("bad escape in %r" % line)
                val.append("\n" if nxt == "n" else nxt)
                i += 2
                continue
            if c == '"':
                i += 1
                break
            val.append(c)
            i += 1
        out[key] = "".join(val)
        m = re.match(r"\s*,?\s*", s[i:])
        i += m.end()
    return out


def _float(s, line):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    try:
        return float(s)
    except ValueError:
        raise ValueError("bad value %r: %r" % (s, line))


def _family_of(name, families):
    if name in families:
        return families[name]
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            base = families.get(name[:-len(suffix)])
            if base and base.type in ("histogram", "summary"):
                return base
    return None


def parse(text):
    if text and not text.endswith("\n"):
        raise ValueError("the exposition does not end with a newline")
    families = {}
    for line in text.split("\n"):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.match(name):
                    raise ValueError("bad metric name %r" % name)
                rest = parts[3] if len(parts) > 3 else ""
                if parts[1] == "TYPE":
                    if rest not in TYPES:
                        raise ValueError("bad type %r: %r" % (rest, line))
                    f = families.get(name)
                    if f and f.type is not None:
                        raise ValueError("TYPE of %s twice" % name)
                    if f and f.samples:
                        raise ValueError("TYPE of %s after its samples" % name)
                    f = families.setdefault(name, Family(name, rest))
                    f.type = rest
                else:
                    f = families.setdefault(name, Family(name, None))
                    if f.help is not None:
                        raise ValueError("HELP of %s twice" % name)
                    f.help = rest
            continue
        m = re.match(r"([^{\s]+)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?\s*$", line)
        if not m:
            raise ValueError("bad sample line %r" % line)
        name = m.group(1)
        if not NAME.match(name):
            raise ValueError("bad metric name %r" % name)
        labels = _labels(m.group(2) or "", line)
        fam = _family_of(name, families)
        if fam is None or fam.type is None:
            raise ValueError("sample of %s without a TYPE before it" % name)
        fam.samples.append((name, labels, _float(m.group(3), line)))
    for f in families.values():
        if f.type is None:
            raise ValueError("%s has a HELP but no TYPE" % f.name)
        if f.type == "counter" and not f.name.endswith("_total"):
            raise ValueError("counter %s does not end in _total" % f.name)
        if f.type == "histogram":
            _check_histogram(f)
        seen = set()
        for n, ls, _ in f.samples:
            key = (n, tuple(sorted(ls.items())))
            if key in seen:
                raise ValueError("sample %s%s twice" % (n, ls))
            seen.add(key)
    return families


def _check_histogram(f):
    series = {}
    for n, ls, v in f.samples:
        rest = tuple(sorted((k, w) for k, w in ls.items() if k != "le"))
        s = series.setdefault(rest, {"buckets": [], "count": None, "sum": None})
        if n == f.name + "_bucket":
            if "le" not in ls:
                raise ValueError("%s bucket without le" % f.name)
            s["buckets"].append((_float(ls["le"], n), v))
        elif n == f.name + "_count":
            s["count"] = v
        elif n == f.name + "_sum":
            s["sum"] = v
        else:
            raise ValueError("%s: stray sample %s" % (f.name, n))
    for rest, s in series.items():
        b = s["buckets"]
        if not b or b[-1][0] != math.inf:
            raise ValueError("%s%s: no +Inf bucket last" % (f.name, dict(rest)))
        for (le0, v0), (le1, v1) in zip(b, b[1:]):
            if le1 <= le0 or v1 < v0:
                raise ValueError("%s%s: buckets out of order or going down" % (f.name, dict(rest)))
        if s["count"] is None or s["sum"] is None or s["count"] != b[-1][1]:
            raise ValueError("%s%s: _count missing or not the +Inf bucket" % (f.name, dict(rest)))


def sample_names(families):
    """Every series name the exposition holds (histograms: their _bucket,
    _sum and _count)."""
    return {n for f in families.values() for n, _, _ in f.samples} | set(families)
