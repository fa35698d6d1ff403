"""The SAE corpus: every source present, persona-rich prompts answered, cached by its config."""

from persona_features import artifacts, params, sae_corpus


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
    assert artifacts.find("sae_corpus", art.meta["config"]) is not None
