"""What a chapter returns: its verdicts, the metrics its results file holds, and the facts its text glues.

``book.results.publish`` writes a ``ChapterResult`` to ``results/<chapter>.json`` and glues its facts, in
one call; the scorecard reads the verdicts back from that file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NOT_RUN = "not run in this profile"  # a claim a profile leaves out (never shown on the scorecard)
UNTRAINED = "model untrained"  # the model is a random code-path fixture: the rule ran, but its verdict means nothing
STATUSES = ("replicated", "partial", "above controls only", "inconclusive", "not replicated", "not attempted",
            UNTRAINED, NOT_RUN)


@dataclass(frozen=True)
class Verdict:
    """One claim's verdict, computed by the rule the chapter states."""

    status: str  # one of STATUSES
    summary: str  # the verdict in a sentence, with its key number
    rule: str = ""  # the rule that decided it, as the chapter states it
    evidence: Mapping[str, Any] | None = None  # the key number: label, mean, ci95_lo, ci95_hi (and p_holm)
    details: Mapping[str, Any] = field(default_factory=dict)  # what else the chapter reports beside the verdict

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"verdict status {self.status!r} is not one of {STATUSES}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        """A verdict as a results file holds it (``as_dict``): its fields, and every other key as a detail."""
        known = {"status", "summary", "rule", "evidence"}
        return cls(d["status"], d["summary"], d.get("rule", ""), d.get("evidence"),
                   {k: v for k, v in d.items() if k not in known})

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "summary": self.summary}
        if self.rule:
            out["rule"] = self.rule
        if self.evidence is not None:
            out["evidence"] = dict(self.evidence)
        return {**out, **self.details}


@dataclass(frozen=True)
class ChapterResult:
    """A chapter's outcome: ``metrics`` (the results file's numbers), ``verdicts`` (by claim id, written under
    ``metrics["verdicts"]``) and ``facts`` (by name: the values its text glues, numbers as they are shown)."""

    chapter: str  # the results file's stem, e.g. "01_model"
    metrics: Mapping[str, Any]
    verdicts: Mapping[str, Verdict] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "verdicts" in self.metrics and self.verdicts:
            raise ValueError(f"{self.chapter}: verdicts given twice (in metrics and as verdicts)")

    def untrained(self, model: str) -> ChapterResult:
        """This result on an untrained model: each verdict reads ``UNTRAINED``, keeping its number and, under
        ``status_by_rule``, what the rule gave (the text's facts are kept as computed)."""
        verdicts = {k: Verdict(UNTRAINED, f"not judged: {model} is an untrained random model (a code-path fixture); "
                               f"by the chapter's rule: {v.status}", v.rule, v.evidence,
                               {**v.details, "status_by_rule": v.status}) for k, v in self.verdicts.items()}
        return ChapterResult(self.chapter, self.metrics, verdicts, self.facts)

    def results(self) -> dict[str, Any]:
        """What the results file holds under ``metrics``."""
        verdicts = {k: v.as_dict() for k, v in self.verdicts.items()}
        return {**self.metrics, **({"verdicts": verdicts} if verdicts else {})}
