"""Which inbound messages jump the queue: a keyword classifier for message priority."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

#: The priority levels the ingress hands to the engine, highest first.
PriorityLevel = Literal["high", "normal", "low"]


class KeywordClassifier:
    """Classifies a message as "high" when it contains one of ``keywords`` as a whole word.

    Matching is case-insensitive and on word boundaries, so "LEAK!" and "gas smell" match
    while "gasket" and "leakproof" do not. Inflections must be listed ("leak", "leaking").

    Example::

        classify = KeywordClassifier(["emergency", "leak", "fire"])
        classify("There is a LEAK in 4B")    # "high"
        classify("Is 4B available?")          # "normal"

    Warning: a keyword list cannot read intent: "is the gas bill included?" is HIGH for a
    list containing "gas". A false HIGH costs only queue position; a missed emergency costs
    more, so the default list errs on the side of matching.
    """

    def __init__(self, keywords: Iterable[str]) -> None:
        words = sorted({word.strip().lower() for word in keywords if word.strip()}, key=len, reverse=True)
        self.keywords = tuple(words)
        self._pattern = (
            re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE) if words else None
        )

    def __call__(self, text: str) -> PriorityLevel:
        if self._pattern is not None and self._pattern.search(text):
            return "high"
        return "normal"
