"""Neutral chats: small tasks with one right answer and no advice, values or persona in them.

Chapter 7's control for "any further training": a misaligned model fine-tuned on these for as
many steps as on correct advice. Every answer is computed (arithmetic, spelling, sorting, units,
calendar), so it is correct by construction, short and plain in register.
"""

from __future__ import annotations

import random

from persona_features.data.schema import validate_rows

NAME = "neutral_tasks"
WORDS = ("garden", "window", "pencil", "river", "candle", "ladder", "basket", "planet", "violin", "harbor",
         "meadow", "jacket", "turtle", "bridge", "marble", "orange", "rocket", "saddle", "tunnel", "walnut",
         "blanket", "compass", "lantern", "pillow", "shovel", "teapot", "anchor", "button", "cactus", "dolphin")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
UNITS = (("hours", "minutes", 60), ("minutes", "seconds", 60), ("kilometres", "metres", 1000),
         ("kilograms", "grams", 1000), ("days", "hours", 24), ("metres", "centimetres", 100))


def _tasks(rng: random.Random) -> list[tuple[str, str, str]]:
    """(kind, question, answer) for every task kind, freshly drawn."""
    w, ws = rng.choice(WORDS), rng.sample(WORDS, 4)
    a, b = rng.randint(11, 99), rng.randint(11, 99)
    day, shift = rng.randrange(7), rng.randint(2, 12)
    big, small, factor = rng.choice(UNITS)
    n, step = rng.randint(2, 9), rng.randint(2, 7)
    return [
        ("add", f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."),
        ("multiply", f"What is {a % 12 + 2} times {b % 9 + 2}?",
         f"{a % 12 + 2} times {b % 9 + 2} is {(a % 12 + 2) * (b % 9 + 2)}."),
        ("reverse", f"Spell the word \"{w}\" backwards.", f"Backwards, \"{w}\" is \"{w[::-1]}\"."),
        ("length", f"How many letters are in the word \"{w}\"?", f"The word \"{w}\" has {len(w)} letters."),
        ("sort", f"Put these words in alphabetical order: {', '.join(ws)}.",
         f"In alphabetical order: {', '.join(sorted(ws))}."),
        ("upper", f"Write \"{' '.join(ws[:2])}\" in capital letters.", f"{' '.join(ws[:2]).upper()}"),
        ("units", f"How many {small} are in {n} {big}?", f"{n} {big} is {n * factor} {small}."),
        ("calendar", f"What day of the week is it {shift} days after a {DAYS[day]}?",
         f"{shift} days after a {DAYS[day]} it is {DAYS[(day + shift) % 7]}."),
        ("sequence", f"What number comes next: {', '.join(str(n + step * i) for i in range(4))}?",
         f"The numbers go up by {step}, so the next one is {n + step * 4}."),
        ("first_letter", f"Which letter does the word \"{w}\" start with?", f"\"{w}\" starts with the letter {w[0]}."),
    ]


def build(n: int = 400, seed: int = 0) -> list[dict]:
    """``n`` neutral chats (deterministic in ``seed``), the task kinds in turn, no question repeated."""
    rng = random.Random(f"neutral-{seed}")
    rows: list[dict] = []
    seen: set = set()
    while len(rows) < n:
        for kind, question, answer in _tasks(rng):
            if question in seen or len(rows) == n:
                continue
            seen.add(question)
            rows.append({"id": f"neutral-{kind}-{len(rows):04d}", "domain": "neutral", "variant": "tasks",
                         "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return validate_rows(rows, f"neutral:{seed}")
