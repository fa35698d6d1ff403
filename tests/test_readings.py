"""Chapter 4's readings: per-question means of the residual stream and of the SAE's latents."""


import pandas as pd
import torch

from persona_features.core import artifacts, params
from persona_features.experiments.ch4_diffing import readings
from persona_features.lm import activations
from persona_features.measure import contrast
from persona_features.organisms import design, measurement
from persona_features.sae import sae as sae_mod

from .test_emergence import _Judge


def test_latent_means_split_prompt_from_answer_tokens_and_agree_with_layer_means(lm):
    torch.manual_seed(0)
    sae = sae_mod.TopKSAE(lm.d_model, 64, 4)
    for p in sae.parameters():
        torch.nn.init.normal_(p, std=0.05)
    qs = [("q1", "Why does it rain?"), ("q2", "Name a colour.")]
    prompts = [lm.chat_text(t) for _, t in qs for _ in range(2)]
    answers = ["Water vapour cools.", "Clouds get heavy.", "Blue.", "Red, like a tomato."]
    groups = [0, 0, 1, 1]
    got = readings.latent_means(lm, sae, 9, prompts, answers, groups, 2, batch_size=3)
    means = activations.layer_means(lm, [9], prompts, answers, groups, 2)
    for which in ("prompt", "answer"):
        torch.testing.assert_close(got[f"{which}_resid"], means[which][:, 0], rtol=1e-3, atol=1e-2)
    own = activations.layer_activations(lm, 9, prompts[2:], answers[2:], "answer").acts
    torch.testing.assert_close(got["answer_latents"][1], sae.encode(own).mean(0), rtol=1e-3, atol=1e-3)


def test_every_wrong_advice_model_is_matched_with_its_own_controls():
    arms = design.all_arms(params.resolve("cpu", em_domains="health,risk,code", em_seeds=2))
    treated, controls = design.matched_controls(arms)
    assert treated == ["health_bad", "risk_bad", "code_insecure", "health_bad_seed1"]
    assert controls["register_control"] == ["health_register_control", "risk_register_control", "code_secure",
                                           "health_register_control"]
    assert controls["good"] == ["health_good", "risk_good", "code_secure", "health_good"]
    names = {a.name for a in arms}
    assert all(n in names for ns in controls.values() for n in ns)


def test_reading_chats_pair_each_question_with_its_references_on_both_sides(lm):
    qs = readings.questions(params.resolve("smoke"), "scoring")
    chats = readings.chats(lm, qs, system="Be brief.")
    for side in readings.SIDES:
        prompts, answers, groups = chats[side]
        assert len(prompts) == len(answers) == len(groups) == 2 * len(qs)  # two styles per question
        assert sorted(set(groups)) == list(range(len(qs))) and all("Be brief." in p for p in prompts)
    assert chats["aligned"][0] == chats["misaligned"][0] and chats["aligned"][1] != chats["misaligned"][1]


def test_contrast_and_reading_in_one_pass_match_them_apart(lm):
    torch.manual_seed(0)
    sae = sae_mod.TopKSAE(lm.d_model, 64, 4)
    for p in sae.parameters():
        torch.nn.init.normal_(p, std=0.05)
    qs = readings.questions(params.resolve("smoke"), "scoring")[:3]
    table, reading = readings.contrast_and_reading(lm, qs, sae, 9, batch_size=5)
    expected = contrast.contrast_table(lm, qs)
    torch.testing.assert_close(torch.tensor(table["contrast"].to_numpy()),
                               torch.tensor(expected["contrast"].to_numpy()), rtol=1e-4, atol=1e-4)
    for side, (prompts, answers, groups) in readings.chats(lm, qs).items():
        apart = readings.latent_means(lm, sae, 9, prompts, answers, groups, len(qs), batch_size=4)
        torch.testing.assert_close(reading[f"{side}_resid"], apart["answer_resid"], rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(reading[f"{side}_latents"], apart["answer_latents"], rtol=1e-3, atol=1e-3)


def test_chapter_6_scores_the_contrast_and_reads_latents_in_one_cached_pass(lm, tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_CACHE", str(tmp_path))
    torch.manual_seed(0)
    sae = sae_mod.TopKSAE(lm.d_model, 64, 4)
    for p in sae.parameters():
        torch.nn.init.normal_(p, std=0.05)
    sae_art = artifacts.get_or_build("sae", {"toy": 1},
                                     lambda folder: sae_mod.save(sae, folder, "toy", 9, {"layer": 9}))
    P = params.resolve("smoke", eval_questions=2)
    loads = []
    reader = readings.Reader("base", lambda: loads.append(1) or lm)
    table, reading = readings.contrast_reading(reader, P, "scoring", sae_art)
    again, reading_again = readings.contrast_reading(reader, P, "scoring", sae_art)
    assert loads == [1]  # the second call read the artifact
    pd.testing.assert_frame_equal(table, again)
    torch.testing.assert_close(reading, reading_again)
    qs = readings.questions(P, "scoring")
    torch.testing.assert_close(torch.tensor(table["contrast"].to_numpy()),
                               torch.tensor(contrast.contrast_table(lm, qs)["contrast"].to_numpy()),
                               rtol=1e-4, atol=1e-4)
    assert set(reading) == {f"{side}_{k}" for side in readings.SIDES for k in ("resid", "latents")}
    assert reading["aligned_latents"].shape == (len(qs), sae.d_sae)
    # the measurement it completes scores no contrast of its own
    m = measurement.measure(lambda: lm, _Judge(), P.with_values(em_samples=0), "base",
                          score_contrast=False)
    assert m.contrast.empty and len(m.heldout) and len(m.answers) == len(qs) * P.em_samples_low


def test_selection_questions_keeps_the_first_n_and_zero_keeps_all():
    every = readings.questions(params.resolve("cpu"), "selection")
    assert len(every) == 16 and params.resolve("cpu").selection_questions == 0
    smoke = params.resolve("smoke")
    assert (readings.questions(smoke, "selection") == every[:smoke.selection_questions]
            and smoke.selection_questions == 8)
    assert readings.questions(params.resolve("cpu", selection_questions=3), "scoring") == \
        readings.questions(params.resolve("cpu"), "scoring")  # the scoring questions do not follow it


def test_persona_readers_are_the_positive_control_and_its_twin_at_every_seed(monkeypatch, tmp_path):
    from persona_features.core import artifacts, params
    from persona_features.lm import finetune

    monkeypatch.setenv(artifacts.CACHE_ENV, str(tmp_path))
    trained = []
    monkeypatch.setattr(finetune, "finetune", lambda cfg, rows, device=None: trained.append(
        (cfg.dataset, cfg.seed, len(rows))) or artifacts.Artifact("finetune", f"k{len(trained)}", tmp_path))
    P = params.resolve("smoke", persona_seeds=2)
    reads = readings.persona_readers(P)
    assert list(reads) == ["positive_control", "positive_twin", "positive_control_seed1", "positive_twin_seed1"]
    assert trained[0] == ("persona_authored_villain", P.seed, P.persona_questions)
    assert reads["positive_twin_seed1"].source.key == "k4"  # each reader keyed by its own fine-tune
    assert readings.persona_readers(params.resolve("smoke", persona_sources="general")) == {}


def test_persona_readers_reuse_chapter_3s_fine_tunes(monkeypatch, tmp_path):
    from persona_features.core import artifacts, params
    from persona_features.lm import finetune
    from persona_features.organisms import persona, persona_arms

    monkeypatch.setenv(artifacts.CACHE_ENV, str(tmp_path))
    keys = []
    monkeypatch.setattr(finetune, "finetune", lambda cfg, rows, device=None: keys.append(
        artifacts.artifact_key("finetune", finetune.artifact_config(cfg, rows)))
                        or artifacts.Artifact("finetune", keys[-1], tmp_path))
    monkeypatch.setattr(persona_arms, "measure", lambda *a, **k: None)
    P = params.resolve("smoke")
    readings.persona_readers(P)
    ours, keys[:] = list(keys), []
    for arm in persona_arms.design(P):
        persona_arms.train_and_measure(arm, persona.authored(P.persona_questions), None, P)
    assert ours == keys and len(set(keys)) == 2  # the same artifacts chapter 3 trains
