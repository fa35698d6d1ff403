import dataclasses
import typing

import pytest

from persona_features.core.params import KNOBS, PROFILES, ParameterError, Params, resolve, table_markdown


def test_profiles_resolve_every_knob():
    for profile in PROFILES:
        p = resolve(profile)
        assert set(p.values) == set(KNOBS)
        assert p.profile == profile


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ParameterError) as e:
        resolve("laptop")
    assert "laptop" in str(e.value)
    for profile in PROFILES:
        assert profile in str(e.value)


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ParameterError) as e:
        resolve("smoke", max_tokens=3)
    msg = str(e.value)
    assert "max_tokens" in msg and "max_new_tokens" in msg and "seed" in msg


def test_override_applies_and_is_typed():
    p = resolve("smoke", max_new_tokens=7, temperature=0)
    assert p.max_new_tokens == 7
    assert p.temperature == 0.0 and isinstance(p.temperature, float)
    assert resolve("smoke").max_new_tokens == KNOBS["max_new_tokens"].smoke


@pytest.mark.parametrize("name,value", [("max_new_tokens", "7"), ("seed", 1.5), ("seed", True), ("model", 3)])
def test_wrong_type_is_an_error(name, value):
    with pytest.raises(ParameterError, match=name):
        resolve("smoke", **{name: value})


def test_dtype_is_validated():
    with pytest.raises(ParameterError, match="dtype"):
        resolve("cpu", dtype="float16x")


def test_unknown_attribute_names_valid_parameters():
    with pytest.raises(AttributeError, match="max_new_tokens"):
        _ = resolve("smoke").max_tokens


def test_table_lists_every_knob():
    table = table_markdown()
    for name in KNOBS:
        assert f"`{name}`" in table


# ---------------------------------------------------------------- values parsed and checked in resolve

from persona_features.core.params import VALID, Choice, Device, ListOf  # noqa: E402


def _bad_values(name, rule):
    """Values that break ``rule``, each of the knob's type where a type is required."""
    if isinstance(rule, Choice):
        return ["nonsense"]
    if isinstance(rule, Device):
        return ["gpu", "cuda:", "cuda:x", "cpu:0"]
    if isinstance(rule, ListOf):
        bad = ["abc", "", [], "1,1" if rule.item is not str else f"{rule.each.values[0]},{rule.each.values[0]}"]
        if isinstance(rule.each, Choice):
            bad.append(f"{rule.each.values[0]},nonsense")
        else:
            bad += [f"{rule.each.lo - 1}"] + ([f"{rule.each.hi + 1}"] if rule.each.hi is not None else [])
        if rule.required:
            bad.append(",".join(str(x) for x in rule.required[1:]))
        return bad
    reference = KNOBS[name].cpu
    cast = type(reference)
    bad = []
    if rule.lo is not None:
        bad.append(cast(rule.lo) if rule.lo_open else cast(rule.lo - 1))
    if rule.hi is not None:
        bad.append(cast(rule.hi + 1))
    return bad


CONSTRAINED = [(name, bad) for name, rule in VALID.items() if rule is not None for bad in _bad_values(name, rule)]


def test_every_knob_has_a_rule_and_every_profile_passes_it():
    assert set(VALID) == set(KNOBS)
    for profile in PROFILES:
        resolve(profile)  # does not raise


@pytest.mark.parametrize("name,value", CONSTRAINED, ids=[f"{n}={v!r}" for n, v in CONSTRAINED])
def test_a_bad_value_of_every_constrained_knob_is_refused_naming_knob_value_and_valid_ones(name, value):
    with pytest.raises(ParameterError) as e:
        resolve("cpu", **{name: value})
    msg = str(e.value)
    assert repr(name) in msg and "valid" in msg
    assert repr(value) in msg or str(value) in msg


def test_lists_are_parsed_into_tuples():
    p = resolve("smoke", em_domains="risk, health", steer_alphas="0.4,0.1", ew_percents=[100, 0, 25])
    assert p.em_domains == ("risk", "health")  # order kept: the first is the main domain
    assert p.steer_alphas == (0.1, 0.4) and p.ew_percents == (0, 25, 100)  # strengths and percents ascend
    assert resolve("smoke", steer_alphas=0.3).steer_alphas == (0.3,)
    assert isinstance(resolve("cpu").em_domains, tuple)


def test_enumerations_name_their_valid_values():
    with pytest.raises(ParameterError, match="register_control, good"):
        resolve("smoke", ra_variant="nonsense")
    with pytest.raises(ParameterError, match="health, finance, cars, career, risk, code"):
        resolve("smoke", em_domains="health,mars")


@pytest.mark.parametrize("overrides,names", [
    ({"ra_examples": 2, "ra_batch_size": 4}, "ra_examples \\(2\\) must be at least ra_batch_size \\(4\\)"),
    ({"em_samples_low": 0, "em_samples": 0}, "at least one count must be above 0"),
    ({"eval_low_temperature": 1.0}, "the two temperatures must differ"),
    ({"steer_judged_random": 3, "steer_random": 2}, "steer_judged_random \\(3\\) must be at most steer_random"),
])
def test_knobs_that_depend_on_each_other_are_checked_together(overrides, names):
    with pytest.raises(ParameterError, match=names):
        resolve("cpu", **overrides)


def test_advice_domains_match_the_data():
    from persona_features.core.params import ADVICE_DOMAINS
    from persona_features.data import advice
    from persona_features.organisms import design

    assert ADVICE_DOMAINS == advice.DOMAINS
    assert set(VALID["em_domains"].each.values) == set(design.CONTROLS)
    assert set(VALID["ra_variant"].values) <= {v for vs in design.CONTROLS.values() for v in vs}


def test_a_run_smaller_than_the_gpu_profile_says_so_and_by_how_much():
    from persona_features.core.params import versus_gpu
    from persona_features.experiments.ch6_early_warning import early_warning as ew
    from persona_features.experiments.ch7_realignment import realignment as ra
    cpu = resolve("cpu")
    assert ew.levels_versus_gpu(cpu) == (
        "This run (cpu) has 4 levels (0%, 5%, 25%, 100%); the gpu profile has 6 levels (0%, 5%, 10%, 25%, 50%, 100%): "
        "this profile runs fewer, to stay within its time bound (each level between 0% and 100% costs a fine-tune "
        "and a measurement per seed). Of the early mixes of the verdict's rule (at most 10%), this run has 5%.")
    assert ra.seeds_versus_gpu(cpu).startswith(
        "This run (cpu) has 2 seeds of each kind of data; the gpu profile has 3 seeds of each kind of data: this "
        "profile runs fewer")
    assert ra.seeds_versus_gpu(resolve("smoke")).startswith("This run (smoke) has 1 seed of each kind of data;")
    assert "none" in ew.levels_versus_gpu(resolve("smoke"))  # smoke's 0, 50, 100 has no early mix
    gpu = resolve("gpu")
    assert ew.levels_versus_gpu(gpu) == "" and ra.seeds_versus_gpu(gpu) == ""
    # a value equal to the gpu profile's says nothing, whatever the profile; a list given as text is parsed first
    assert versus_gpu(resolve("cpu", ew_percents="0,5,10,25,50,100"), "ew_percents", str, "") == ""
    # an override is not blamed on the profile: the reason is the profile's only for the profile's own value
    assert versus_gpu(resolve("gpu", ra_seeds=1), "ra_seeds", str, ", for time") == (
        "This run (gpu) has 1; the gpu profile has 3 (set for this run).")
    assert versus_gpu(resolve("cpu", ra_seeds=5), "ra_seeds", str, ", for time") == (
        "This run (cpu) has 5; the gpu profile has 3 (set for this run).")
    assert versus_gpu(cpu, "ra_seeds", str, ", for time") == "This run (cpu) has 2; the gpu profile has 3, for time."


def _holds(value, hint) -> bool:
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return isinstance(value, tuple) and all(_holds(v, item) for v in value)
    if hint is float:
        return isinstance(value, float)
    return isinstance(value, hint) and (hint is bool or not isinstance(value, bool))


def test_every_knob_is_a_typed_field_whose_type_holds_in_every_profile():
    hints = typing.get_type_hints(Params)
    assert [f.name for f in dataclasses.fields(Params)] == ["profile", *KNOBS]
    for profile in PROFILES:
        P = resolve(profile)
        for name in KNOBS:
            assert _holds(getattr(P, name), hints[name]), (profile, name, getattr(P, name), hints[name])
    assert not _holds(3, float) and not _holds(True, int) and not _holds((1, 2), tuple[float, ...])  # the check bites


def test_params_are_immutable_and_a_copy_with_values_keeps_the_other_knobs():
    P = resolve("cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        P.seed = 1  # type: ignore[misc]
    with pytest.raises(TypeError, match="em_sample"):
        P.with_values(em_sample=0)
    Q = P.with_values(em_samples=0)
    assert Q.em_samples == 0 and {k: v for k, v in Q.values.items() if k != "em_samples"} == {
        k: v for k, v in P.values.items() if k != "em_samples"}
