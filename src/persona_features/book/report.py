"""Tables for the rendered book."""

from __future__ import annotations

import html

import pandas as pd
from IPython.display import HTML


def answers_table(df: pd.DataFrame, columns=("question_id", "sample", "answer"), max_chars: int = 500) -> HTML:
    """Sampled answers as an HTML table, long answers cut at ``max_chars``."""
    def cell(value) -> str:
        text = str(value)
        text = text if len(text) <= max_chars else text[:max_chars] + " [...]"
        return html.escape(text).replace("\n", "<br>")

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(row[c])}</td>" for c in columns) + "</tr>"
                   for _, row in df.iterrows())
    return HTML(f'<table class="answers"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def _markers(rates: dict[str, float]) -> str:
    return " / ".join(f"{rates[k]:.0f}" for k in ("absolutes", "hedges", "negations"))


def data_cards_table(cards: list[dict]) -> HTML:
    """A summary row per data card (``DataCard.summary()`` dicts)."""
    head = ("set", "rows", "unique questions", "unique answers", "distinct-2", "distinct-4",
            "tokens (min/median/max)", "eval overlap (exact / 6-grams)",
            "absolutes / hedges / negations per 1,000 words")
    rows = "".join(
        f"<tr><td>{html.escape(c['name'])}</td><td>{c['size']}</td><td>{c['unique_questions']}</td>"
        f"<td>{c['unique_answers']}</td><td>{c['distinct_2']:.3f}</td><td>{c['distinct_4']:.3f}</td>"
        f"<td>{' / '.join(map(str, c['tokens_min_median_max']))}</td>"
        f"<td>{c['eval_overlap']['exact_question_matches']} / {c['eval_overlap']['shared_6grams']}</td>"
        f"<td>{_markers(c['register'])}</td></tr>"
        for c in cards)
    return HTML(f'<table class="cards"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
                f"<tbody>{rows}</tbody></table>")
