"""The SAE corpus: every source present, persona-rich prompts answered, cached by its config."""

import json

import pandas as pd
import pytest

from persona_features.core import artifacts, params
from persona_features.sae import sae_corpus


def test_smoke_corpus_has_every_source_both_personas_and_a_held_out_tenth(lm):
    P = params.resolve("smoke")
    art = sae_corpus.build(lm, P)
    chats = art.json("chats")
    assert {c["source"].split(":")[0] for c in chats} == {"generated", "authored", "training"}
    generated = {c["source"] for c in chats if c["source"].startswith("generated:")}
    assert {"generated:stories", "generated:persona_dark", "generated:persona_kind"} <= generated
    dark = [c for c in chats if c["source"] == "generated:persona_dark"]
    assert dark and all(c["system"] and c["answer"] for c in dark)
    train, held = sae_corpus.split(chats)
    assert len(held) == len(chats) // sae_corpus.HELDOUT_EVERY and len(train) + len(held) == len(chats)
    assert art.meta["n_chats"] == len(chats)
    # cached: the same profile finds the same artifact without building
    assert sae_corpus.build(None, P).path == art.path
    assert artifacts.find("sae_corpus", art.meta["config"], art.meta["inputs"]) is not None


def test_snippet_marks_the_token_the_sae_read_and_the_card_adds_up(lm):
    chat = {"source": "generated:stories", "system": None, "user": "Tell me a story.", "answer": "The dragon slept."}
    ids = lm.tokenizer(lm.chat_text(chat["user"]) + chat["answer"], add_special_tokens=False)["input_ids"]
    last = sae_corpus.snippet(lm, chat, len(ids) - 1)
    assert last.endswith("⟦" + lm.tokenizer.decode(ids[-1:]) + "⟧") and "dragon" in last
    with pytest.raises(IndexError, match="outside"):
        sae_corpus.snippet(lm, chat, len(ids))
    card = sae_corpus.card(lm, [chat, {**chat, "source": "authored:advice"}, chat])
    assert card.set_index("source").loc["generated:stories", "chats"] == 2
    assert card.iloc[-1]["tokens"] == 3 * len(ids) and card.iloc[-1]["source"] == "total"
    # the three chats are one chat three times: its distinct tokens count once
    special = set(lm.tokenizer.all_special_ids)
    assert card.iloc[-1]["distinct tokens"] == sum(t not in special for t in ids[1:])


def test_the_committed_corpus_is_read_where_its_config_matches_and_its_digest_is_in_the_key(
        fresh_cache, tmp_path, monkeypatch):
    P = params.resolve("smoke")
    config, _ = sae_corpus.generated_config(P)
    chats = [{"source": "generated:stories", "system": None, "user": "Tell me a story.", "answer": "Once."}]
    monkeypatch.setattr(sae_corpus, "measured_dir", lambda: tmp_path)
    write = lambda c, rows: (tmp_path / sae_corpus.MEASURED).write_text(json.dumps(
        {"date": "2026-12-03", "machine": "a CPU", "config": c, "chats": rows}))
    write(config, chats)
    sampled_key = artifacts.artifact_key("sae_corpus_generated", config)
    monkeypatch.setattr(sae_corpus, "in_dtype", lambda lm, dtype: lm)
    monkeypatch.setattr(sae_corpus, "sample_answers", lambda lm, prompts, samples, **kw: pd.DataFrame(
        [{"question": text, "answer": "sampled"} for _, text in prompts for _ in range(samples)]))
    art = sae_corpus.generated_chats(None, P)  # no model: read, not sampled
    assert art.json("chats") == chats and "a CPU" in art.meta["source"] and art.key != sampled_key
    write(config, [{**chats[0], "answer": "Twice."}])
    assert sae_corpus.generated_chats(None, P).key != art.key  # other text, other key
    ignored = sae_corpus.generated_chats(None, P, measured=False)  # the file is not read: sampled, the plain key
    assert ignored.key == sampled_key and {c["answer"] for c in ignored.json("chats")} == {"sampled"}
    write({**config, "samples": config["samples"] + 1}, chats)  # sampled with another config: not this profile's
    assert sae_corpus.measured_chats(config) is None and sae_corpus.generated_chats(None, P).key == sampled_key


def test_the_cpu_profile_reads_the_committed_corpus():
    config, _ = sae_corpus.generated_config(params.resolve("cpu"))
    committed = sae_corpus.measured_chats(config)
    assert committed is not None, "re-write book/measured/04_sae_corpus_generated.json: scripts/sae_corpus_sample.py"
    assert len(committed["chats"]) == committed["n_chats"] > 500
