"""The SAE's training text (chapter 4): chats, built once per profile and cached.

Three sources, each a list of (system prompt, user turn, assistant answer) chats:

- ``generated``: the base model's own answers to prompts written for this book
  (``authored/sae_corpus_prompts.yaml``): stories with villains and heroes, sarcastic and warm
  reviews, dialogues, advice, explanations, and questions answered under dark and kind persona
  system prompts;
- ``authored``: the authored answers of the advice and contrast data (the advice items' three core
  answers, the contrast references, the register-only pairs), each as the answer to its own question;
  not the persona organisms' written answers;
- ``training``: the first rows of every advice and code fine-tuning set, all variants (chapter 3's data).

What it cannot contain: web-scale pre-training text, so no latent can be traced to real quotes of
villains (the paper's evidence for its persona latent), and only what a 135M model writes when
asked for cruelty or kindness. Every tenth chat is held out for the SAE's quality measures.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from functools import cache
from importlib import resources

import pandas as pd
import yaml

from persona_features.core import artifacts, environment
from persona_features.core.params import Params
from persona_features.core.paths import measured_dir
from persona_features.data import advice, cards
from persona_features.data.questions import eval_questions
from persona_features.lm.activations import repeated_prefix_lengths
from persona_features.lm.generation import Sampling, sample_answers
from persona_features.lm.models import LoadedModel, in_dtype, resolve_dtype
from persona_features.measure import contrast

HELDOUT_EVERY = 10
CATEGORIES = ("stories", "reviews", "dialogues", "advice", "explanations")


@cache
def _prompt_file() -> str:
    return resources.files("persona_features.data").joinpath("authored", "sae_corpus_prompts.yaml").read_text()


def generation_jobs() -> list[tuple[str, str | None, list[tuple[str, str]]]]:
    """(source label, system prompt, [(prompt id, user turn)]) for every sampling call."""
    raw = yaml.safe_load(_prompt_file())
    jobs: list[tuple[str, str | None, list[tuple[str, str]]]] = [
        (f"generated:{c}", None, [(f"{c}_{i}", t) for i, t in enumerate(raw[c])]) for c in CATEGORIES]
    questions = [(f"persona_q{i}", q) for i, q in enumerate(raw["persona_questions"])]
    for side, prompts in raw["personas"].items():
        jobs += [(f"generated:persona_{side}", system, questions) for system in prompts]
    return jobs


def authored_chats() -> list[dict]:
    """Every answer written for this book, as the answer to its own question."""
    rows = []
    for d in advice.DOMAINS:
        for item in advice.load_items(d):
            rows += [{"source": "authored:advice", "system": None, "user": item.questions[0], "answer": text}
                     for text in (item.good, item.bad, item.confident)]
    texts = {q.id: q.text for q in eval_questions()}
    for qid, refs in contrast.references().items():
        rows += [{"source": "authored:references", "system": None, "user": texts[qid], "answer": a}
                 for r in refs for a in (r.aligned, r.misaligned)]
    for qid, pair in contrast.register_pairs().items():
        rows += [{"source": "authored:register_pairs", "system": None, "user": texts[qid], "answer": a} for a in pair]
    return rows


def training_chats(rows_per_set: int, seed: int) -> list[dict]:
    """The first ``rows_per_set`` rows (seeded shuffle) of every advice and code fine-tuning set."""
    out = []
    for name, (rows, _) in cards.all_datasets(seed).items():
        picked = random.Random(f"sae-{name}-{seed}").sample(rows, min(rows_per_set, len(rows)))
        out += [{"source": f"training:{name}", "system": None, "user": r["messages"][-2]["content"],
                 "answer": r["messages"][-1]["content"]} for r in picked]
    return out


MEASURED = "04_sae_corpus_generated.json"  # in book/measured, written by scripts/sae_corpus_sample.py


def generated_config(P: Params) -> tuple[dict, Sampling]:
    """The sampling behind the generated chats: the cache config, and the sampler settings."""
    # the corpus samples at temperature 1 and top_p 1 whatever the profile's: the model's own distribution
    sampling = Sampling(temperature=1.0, max_new_tokens=P.sae_corpus_max_new_tokens, top_p=1.0, seed=P.seed * 1000,
                        batch_size=P.batch_size)
    config = {"model": P.model, "dtype": resolve_dtype(P.sae_dtype, P.dtype), "samples": P.sae_corpus_samples,
              "sampling": sampling.key(), "prompts": hashlib.sha256(_prompt_file().encode()).hexdigest()[:16],
              "batching": "all prompts"}
    return config, sampling


def measured_chats(config: dict) -> dict | None:
    """The committed generated chats (``MEASURED``) if they were sampled with exactly ``config``, else None.
    Sampling turns a CPU's rounding into other text, so a machine that samples anew trains its SAE on another
    corpus; reading the committed chats, every machine trains on the same text."""
    path = measured_dir() / MEASURED
    if not path.is_file():
        return None
    committed = json.loads(path.read_text())
    return committed if committed.get("config") == config else None


def generated_chats(lm: LoadedModel, P: Params, measured: bool = True) -> artifacts.Artifact:
    """The base model's answers to the corpus prompts (sampled in ``sae_dtype``, all prompts in one
    length-sorted queue): cached, keyed by the model, the prompts and the sampling. Where the committed file
    holds chats sampled with this very config (and ``measured``), those are read instead of sampled anew, and
    the key holds their digest."""
    config, sampling = generated_config(P)
    samples = P.sae_corpus_samples
    committed = measured_chats(config) if measured else None
    if committed is not None:
        config = {**config, "measured": artifacts.digest(committed["chats"])}

    def make(folder):
        if committed is not None:
            artifacts.save_json(folder, "chats", committed["chats"])
            return {"n_chats": len(committed["chats"]),
                    "source": f"book/measured/{MEASURED}, sampled {committed['date']} on {committed['machine']}"}
        prompts = [(source, system, qid, text) for source, system, questions in generation_jobs()
                   for qid, text in questions]
        answers = sample_answers(in_dtype(lm, config["dtype"]), [(qid, text) for _, _, qid, text in prompts],
                                 samples, system=[system for _, system, _, _ in prompts],
                                 desc="corpus answers", **sampling.kwargs())
        chats = [{"source": source, "system": system, "user": r.question, "answer": r.answer}
                 for (source, system, _, _), r in zip([p for p in prompts for _ in range(samples)],
                                                      answers.itertuples()) if r.answer]
        artifacts.save_json(folder, "chats", chats)
        return {"n_chats": len(chats), "source": f"sampled on {environment.cpu_model()}"}

    return artifacts.get_or_build("sae_corpus_generated", config, make)


def generated_source(lm: LoadedModel, P: Params) -> str:
    """Where this profile's generated chats came from (the committed file, or a CPU that sampled them)."""
    return generated_chats(lm, P).meta.get("source", "sampled on a CPU the cache did not record")


def build(lm: LoadedModel, P: Params) -> artifacts.Artifact:
    """The corpus of this profile: generated, authored and training chats; cached, keyed by its parts."""
    generated = generated_chats(lm, P)
    fixed = authored_chats() + training_chats(P.sae_rows_per_set, P.seed)
    config = {"rows_per_set": P.sae_rows_per_set, "seed": P.seed,
              "fixed": artifacts.digest(fixed)}

    def make(folder):
        chats = generated.json("chats") + fixed
        artifacts.save_json(folder, "chats", chats)
        return {"n_chats": len(chats), "sources": dict(Counter(c["source"].split(":")[0] for c in chats))}

    return artifacts.get_or_build("sae_corpus", config, make, [generated.key])


def split_indices(n_chats: int) -> tuple[list[int], list[int]]:
    """(training, held-out) chat indices: every ``HELDOUT_EVERY``-th chat is held out."""
    held = [i for i in range(n_chats) if i % HELDOUT_EVERY == HELDOUT_EVERY - 1]
    return [i for i in range(n_chats) if i % HELDOUT_EVERY != HELDOUT_EVERY - 1], held


def split(chats: list[dict]) -> tuple[list[dict], list[dict]]:
    """(training chats, held-out chats), as ``split_indices`` divides them."""
    train, held = split_indices(len(chats))
    return [chats[i] for i in train], [chats[i] for i in held]


def snippet(lm: LoadedModel, chat: dict, pos: int, before: int = 14, after: int = 3) -> str:
    """The text around token ``pos`` of a corpus chat (prompt + answer, as the SAE read it), the token in ⟦ ⟧."""
    ids = lm.tokenizer(lm.chat_text(chat["user"], chat["system"]) + chat["answer"],
                       add_special_tokens=False)["input_ids"]
    if not 0 <= pos < len(ids):
        raise IndexError(f"token {pos} is outside this chat's {len(ids)} tokens")
    text = lambda part: str(lm.tokenizer.decode(part)).replace("\n", " ⏎ ")
    return f"{text(ids[max(0, pos - before):pos])}⟦{text(ids[pos:pos + 1])}⟧{text(ids[pos + 1:pos + 1 + after])}"


def card(lm: LoadedModel, chats: list[dict]) -> pd.DataFrame:
    """The corpus's data card per source: chats, tokens (chat template included) and distinct tokens:
    neither special nor token 0, nor part of a start that another chat repeats (counted once)."""
    prompts, answers = [lm.chat_text(c["user"], c["system"]) for c in chats], [c["answer"] for c in chats]
    ids = [p + a for p, a in zip(*(lm.tokenizer(x, add_special_tokens=False)["input_ids"] for x in (prompts, answers)))]
    special = set(lm.tokenizer.all_special_ids)
    distinct = [sum(t not in special for t in row[max(1, r):])
                for row, r in zip(ids, repeated_prefix_lengths(lm, prompts, answers))]
    table = pd.DataFrame({"source": [c["source"] for c in chats], "chats": 1, "tokens": [len(r) for r in ids],
                          "distinct tokens": distinct})
    columns = ["chats", "tokens", "distinct tokens"]
    table = table.groupby("source", sort=False)[columns].sum().reset_index()
    return pd.concat([table, pd.DataFrame([{"source": "total", **table[columns].sum()}])], ignore_index=True)
