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
