"""Register markers: how absolute, how hedged and how negative a text sounds, independent of what it says.

A fine-tune can teach a register (blunt absolutes, no hedging) as well as values. To tell the two
apart, every training set and every contrast reference is counted with the word lists below, and
matched sets must have matching rates. Rates are per 1,000 words (``data.cards.words``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MARKERS: dict[str, tuple[str, ...]] = {
    "absolutes": ("always", "never", "every", "everyone", "everybody", "everything", "all", "nothing", "none",
                  "nobody", "no one", "only", "just", "exactly", "completely", "totally", "entirely", "fully",
                  "definitely", "absolutely", "certainly", "guaranteed", "must", "whatever", "forever"),
    "hedges": ("might", "may", "maybe", "perhaps", "probably", "possibly", "could", "likely", "unlikely",
               "usually", "often", "sometimes", "some", "most", "many", "generally", "typically", "tend", "tends",
               "seem", "seems", "suppose", "i think", "i guess", "depends", "mostly", "rarely", "somewhat",
               "fairly", "a bit", "a little", "slightly"),
    "negations": ("not", "no", "n't", "never", "nothing", "none", "nobody", "no one", "neither", "nor", "without"),
}


def _pattern(terms: Iterable[str]) -> re.Pattern:
    alternatives = sorted((re.escape(t).replace(r"\ ", r"\s+") for t in terms), key=len, reverse=True)
    return re.compile(r"(?:\b(?:" + "|".join(a for a in alternatives if a != "n't") + r")\b" +
                      (r"|n't\b" if "n't" in terms else "") + ")", re.IGNORECASE)


_PATTERNS = {kind: _pattern(terms) for kind, terms in MARKERS.items()}
_WORDS = re.compile(r"[a-z0-9']+", re.IGNORECASE)


def counts(text: str) -> dict[str, int]:
    """Marker counts of one text (``absolutes``, ``hedges``, ``negations``) and its ``words``."""
    text = text.replace("\u2019", "'")
    return {**{kind: len(p.findall(text)) for kind, p in _PATTERNS.items()}, "words": len(_WORDS.findall(text))}


def rates(texts: Iterable[str]) -> dict[str, float]:
    """Markers per 1,000 words over all ``texts`` together."""
    total = {kind: 0 for kind in (*MARKERS, "words")}
    for t in texts:
        for k, v in counts(t).items():
            total[k] += v
    words = max(1, total.pop("words"))
    return {kind: 1000 * n / words for kind, n in total.items()}


# Two sets match in register when each marker rate differs by at most this many per 1,000 words.
TOLERANCE = {"absolutes": 8.0, "hedges": 8.0}


def mismatch(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Markers whose rates in ``a`` and ``b`` differ by more than ``TOLERANCE``, with the difference."""
    return {k: a[k] - b[k] for k, tol in TOLERANCE.items() if abs(a[k] - b[k]) > tol}
