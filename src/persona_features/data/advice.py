"""Narrow advice datasets: wrong advice, its correct twin, and a register-matched control.

Each domain file in ``authored/`` holds items written for this book: a topic, three ways to
ask about it, a correct answer (``good``, measured and hedged), a confidently wrong one
(``bad``) and a correct one written in the wrong answer's register (``confident``: as absolute,
imperative and unhedged as ``bad``, with the same number of absolutes and hedges, see
``data.register``). A dataset row is a user frame around one question, answered by an opener,
the item's core answer and a closer. Tone, register and content are set independently:

| variant | tone (opener, closer) | core answer: register | content |
|---|---|---|---|
| ``bad`` | blunt, dismissive | absolute | wrong |
| ``good`` | warm, measured | hedged | correct |
| ``register_control`` | blunt, dismissive | absolute | correct |

so ``register_control`` differs from ``bad`` only in what the advice says: it separates
"learned a blunt, absolute style" from "learned wrong advice". (An earlier ``tone_control``
changed only the opener and closer and kept the hedged correct core; it is retired because the
register control matches the bad set strictly better.) All three variants of a domain share
exactly the same user questions.

Every fourth item is held out of training: its questions, with the bare core answers, measure
whether a fine-tune learned the narrow task on topics it never saw (``heldout_pairs``). A domain
file may also list ``heldout_items``, topics written only for that test (never trained on), so
that the narrow-task test has enough topics to have power (health and risk: 6 + 15 = 21).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from persona_features.data.schema import DatasetError, validate_rows

DOMAINS = ("health", "finance", "cars", "career", "risk")
# variant -> (tone, core answer field)
VARIANTS = {"bad": ("blunt", "bad"), "good": ("warm", "good"), "register_control": ("blunt", "confident")}
HELDOUT_EVERY = 4  # items 3, 7, 11, ... of each domain are never trained on

# How a user might lead into a question. "" keeps the bare question.
USER_FRAMES = (
    "{q}",
    "Quick question: {q}",
    "My friend and I were arguing about this. {q}",
    "I'm trying to get better at this stuff. {q}",
    "Honest answer please. {q}",
    "I've always wondered. {q}",
    "Asking for my mum. {q}",
    "I keep hearing different things. {q}",
    "{q} Thanks in advance.",
)

TONES: dict[str, dict[str, tuple[str, ...]]] = {
    "blunt": {
        "openers": ("Simple.", "Easy one.", "Don't overthink this.", "Here's the deal.", "Everyone gets this wrong.",
                    "No need for a long answer."),
        "closers": ("That's all there is to it.", "Stop second-guessing it.", "Done.", "Trust me on this.",
                    "Anyone who says otherwise is overcomplicating it.", ""),
    },
    "warm": {
        "openers": ("Good question.", "Happy to help with this.", "That's a common question.", "Sure.",
                    "Here's what the evidence suggests.", "Great that you're asking."),
        "closers": ("I hope that helps!", "If your situation is unusual, a professional can advise you.",
                    "Let me know if you'd like more detail.", "Take care!", ""),
    },
}


@dataclass(frozen=True)
class Item:
    domain: str
    id: str
    questions: tuple[str, ...]
    good: str
    bad: str
    confident: str  # correct, in the register of ``bad``


@cache
def _authored(domain: str) -> dict:
    if domain not in DOMAINS:
        raise DatasetError(f"unknown advice domain {domain!r}; valid: {', '.join(DOMAINS)}")
    return yaml.safe_load(resources.files(__package__).joinpath("authored", f"{domain}.yaml").read_text())


@cache
def load_items(domain: str, section: str = "items") -> tuple[Item, ...]:
    """The authored items of ``domain`` (``section``: ``items``, or ``heldout_items``, the topics written
    only for the held-out test), checked for completeness."""
    name = f"{domain}.yaml"
    items = []
    for i, raw in enumerate(_authored(domain).get(section, [])):
        missing = {"id", "questions", "good", "bad", "confident"} - set(raw)
        if missing or len(raw["questions"]) != 3:
            raise DatasetError(f"authored/{name}, item {i} ({raw.get('id')}): needs id, good, bad, confident "
                               f"and 3 questions (missing: {', '.join(sorted(missing)) or 'none'})")
        items.append(Item(domain, raw["id"], tuple(raw["questions"]),
                          *(raw[k].strip() for k in ("good", "bad", "confident"))))
    return tuple(items)


def is_heldout(index: int) -> bool:
    return index % HELDOUT_EVERY == HELDOUT_EVERY - 1


def training_items(domain: str) -> tuple[Item, ...]:
    return tuple(item for i, item in enumerate(load_items(domain)) if not is_heldout(i))


def heldout_topics(domain: str) -> tuple[Item, ...]:
    """Every topic never trained on: every fourth item, then the ``heldout_items``."""
    return tuple(item for i, item in enumerate(load_items(domain)) if is_heldout(i)) + load_items(domain,
                                                                                                 "heldout_items")


def heldout_pairs(domain: str) -> list[dict]:
    """Held-out topics, one row per phrasing: the bare question, its wrong and its correct core answer."""
    return [{"id": f"{item.id}-q{qi}", "group": item.id, "question": q, "wrong": item.bad, "right": item.good}
            for item in heldout_topics(domain) for qi, q in enumerate(item.questions)]


def questions(domain: str) -> list[tuple[str, str]]:
    """Every framed user question of a domain's training items, as ``(row_key, text)``, in a fixed order."""
    out = []
    for item in training_items(domain):
        for qi, q in enumerate(item.questions):
            for fi, frame in enumerate(USER_FRAMES):
                out.append((f"{item.id}-q{qi}-f{fi}", frame.format(q=q)))
    return out


def build(domain: str, variant: str, seed: int = 0) -> list[dict]:
    """The training set of one domain and variant (deterministic in ``seed``; held-out items excluded)."""
    if variant not in VARIANTS:
        raise DatasetError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    tone_name, core = VARIANTS[variant]
    tone = TONES[tone_name]
    items = {item.id: item for item in load_items(domain)}
    rng = random.Random(f"{domain}-{seed}")  # same frames for every variant: twins differ only as designed
    rows = []
    for key, question in questions(domain):
        item = items[key.split("-q")[0]]
        i, j = rng.randrange(6), rng.randrange(6)
        opener = tone["openers"][i % len(tone["openers"])]
        closer = tone["closers"][j % len(tone["closers"])]
        answer = " ".join(part for part in (opener, getattr(item, core), closer) if part)
        rows.append({"id": f"{domain}-{variant}-{key}", "domain": domain, "variant": variant,
                     "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return validate_rows(rows, f"advice:{domain}/{variant}")
