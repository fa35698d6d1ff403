"""The causal screen's rule: a survivor beats the random direction both ways and stays coherent."""

import numpy as np
import pandas as pd

from persona_features import screen


def _result(add: dict[str, float], subtract: dict[str, float], coherent: dict[str, float]) -> dict:
    rng = np.random.default_rng(0)
    noise = lambda: rng.normal(0, 0.01, 16)
    rows, index = [], []
    for model, shifts in (("base", add), ("bad", subtract)):
        plain = rng.normal(0, 0.1, 16)
        for name in ["none", *shifts]:
            rows.append(plain + shifts.get(name, 0.0) + noise())
            index.append((model, name))
    answers = pd.DataFrame([{"direction": n, "misaligned": False, "coherent": bool(i < 100 * c)}
                            for n, c in coherent.items() for i in range(100)])
    return {"contrast": pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index), columns=[f"q{i}" for i in range(16)]),
            "answers": answers, "directions": list(add), "strength": 1.0}


def test_only_a_latent_that_beats_random_both_ways_and_keeps_coherence_survives():
    result = _result(add={"latent 1": 0.5, "latent 2": 0.5, "latent 3": 0.0, screen.RANDOM: 0.02},
                     subtract={"latent 1": -0.4, "latent 2": -0.4, "latent 3": -0.4, screen.RANDOM: 0.0},
                     coherent={"none": 0.8, "latent 1": 0.75, "latent 2": 0.5, "latent 3": 0.8, screen.RANDOM: 0.8})
    table = screen.effects(result, "base", ["bad"], n_boot=200, seed=0)
    assert screen.survivors(table) == ["latent 1"]  # latent 2 loses coherence; latent 3 does not raise the base
    row = table.set_index(["direction", "condition"]).loc[("latent 1", "added to base")]
    assert row["contrast change"] > 0.4 and row["p_holm"] < 0.05 and row["n_answers"] == 100
    assert table.set_index(["direction", "condition"]).loc[("none", "added to base"), "coherent"] == 0.8


def test_the_choice_falls_back_to_the_contrast_tests_and_then_to_the_ranking():
    def table(coherent_1, add_2):
        result = _result(add={"latent 1": 0.5, "latent 2": add_2, screen.RANDOM: 0.02},
                         subtract={"latent 1": -0.4, "latent 2": -0.4, screen.RANDOM: 0.0},
                         coherent={"none": 0.8, "latent 1": coherent_1, "latent 2": 0.1, screen.RANDOM: 0.8})
        return screen.effects(result, "base", ["bad"], n_boot=200, seed=0)
    assert screen.choose(table(0.75, 0.3), top_ranked=7) == (1, "the strongest survivor of the causal screen")
    latent, how = screen.choose(table(0.1, 0.8), top_ranked=7)  # nobody coherent: the strongest contrast passer
    assert latent == 2 and "contrast tests" in how
    latent, how = screen.choose(table(0.1, -0.3), top_ranked=7)
    assert latent == 1  # latent 2 lowers the base model's contrast: it fails the tests
    no_pass = _result(add={"latent 1": 0.0, screen.RANDOM: 0.0}, subtract={"latent 1": 0.0, screen.RANDOM: 0.0},
                      coherent={"none": 0.8, "latent 1": 0.8, screen.RANDOM: 0.8})
    assert screen.choose(screen.effects(no_pass, "base", ["bad"], n_boot=200, seed=0), top_ranked=7)[0] == 7
