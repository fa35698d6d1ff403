"""The appendix's generated tables."""

import json

from persona_features.book import appendix


def test_runs_of_every_profile_and_seeds_of_every_fine_tune(tmp_path):
    for profile, seconds in (("smoke", 12.5), ("cpu", 600.0)):
        (tmp_path / profile / "results").mkdir(parents=True)
        (tmp_path / profile / "results" / "_runs.json").write_text(json.dumps(
            [{"notebook": "notebooks/03_x.ipynb", "profile": profile, "seconds": seconds, "ok": True}]))
    runs = appendix.runs_markdown(tmp_path)
    assert "| `notebooks/03_x.ipynb` | smoke | 12.5 | ok |" in runs and "| cpu | 600.0 |" in runs
    results = tmp_path / "cpu" / "results"
    (results / "03_x.json").write_text(json.dumps({"params": {"profile": "cpu", "seed": 7}, "metrics": {
        "training": {"health_bad": {"seed": 7}, "health_bad_seed1": {"seed": 8}}}}))
    assert "| 03_x | cpu | 7 | health_bad: 7, health_bad_seed1: 8 |" in appendix.seeds_markdown(results)
    assert "did not run" in appendix.data_cards_markdown(results)


def test_benchmark_table_states_how_it_was_measured():
    data = {"date": "2026-01-01", "cpu": "some cpu", "cores": 2, "torch_threads": 2, "batch": 8, "steps": 10,
            "warmup_steps_dropped": 2, "runs": {"HF Trainer, fp32": {"tokens_per_s": 150.0, "s_per_step": 4.0,
                                                                       "ratio_vs_hf_fp32": 1.0}}}
    md = appendix.benchmark_markdown(data)
    assert "| HF Trainer, fp32 | 150 | 4.00 | 1.00x |" in md and "first 2 not timed" in md


def test_sampler_table_compares_with_generate_and_states_the_workload():
    run = {"tokens_per_s": 100.0, "length_quartiles": [30.0, 64.0, 64.0], "ended_early": 0.25}
    data = {"date": "2026-01-01", "cpu": "some cpu", "cores": 2, "torch_threads": 2, "prompts": 80, "batch": 80,
            "max_new_tokens": 64, "temperature": 1.0, "rounds": 2,
            "models": {"base": {"transformers generate": run, "ours": {**run, "tokens_per_s": 180.0}}}}
    md = appendix.sampler_benchmark_markdown(data)
    assert "| base | ours | 180 | 1.80x | 30 / 64 / 64 | 25% |" in md
    assert "80 prompts per model in batches of 80" in md


def test_measure_times_add_up_per_model(tmp_path):
    assert "did not run" in appendix.measure_times_markdown(tmp_path)
    (tmp_path / "03_emergent_misalignment.json").write_text(json.dumps({"params": {"profile": "cpu"}, "metrics": {
        "training": {"health_bad": {"seconds": 30.0}},
        "measure_seconds": {"base": {"answers_T0.7": 100.0, "contrast": 14.0},
                            "health_bad": {"answers_T0.7": 120.0, "contrast": 15.0}}}}))
    md = appendix.measure_times_markdown(tmp_path)
    assert "| model | fine-tune | answers_T0.7 | contrast | total |" in md
    assert "| base | - | 100 | 14 | 114 |" in md and "| health_bad | 30 | 120 | 15 | 165 |" in md


def test_measure_times_list_the_persona_arms_and_the_distillation(tmp_path):
    persona = {"training": {"positive_control": {"seconds": 20.0}},
               "measure_seconds": {"positive_control": {"answers_T0.7": 60.0}},
               "distillation_seconds": {"general": {"answers_villain": 200.0, "answers_kind": 190.0}, "health": None}}
    (tmp_path / "03_emergent_misalignment.json").write_text(json.dumps({"params": {"profile": "cpu"}, "metrics": {
        "training": {}, "measure_seconds": {"base": {"answers_T0.7": 100.0}}, "persona_organisms": persona}}))
    md = appendix.measure_times_markdown(tmp_path)
    assert "| positive_control | 20 | 60 | - | - | 80 |" in md
    assert "| distillation (general) | - | - | 200 | 190 | 390 |" in md and "health" not in md


def test_cpu_description_names_the_vector_extensions_that_set_speed():
    from persona_features.core.environment import describe_cpu

    info = "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512f avx512_bf16 sse\n\nprocessor\t: 1\n"
    assert describe_cpu(info) == "Some CPU (avx2, avx512f, avx512_bf16)"
    assert describe_cpu("model name : Old\nflags : fpu sse2\n") == "Old (none of avx2, avx512f, avx512_bf16, amx_bf16)"
