"""Run configurations: LR/seed specs, canonical form and run ids, grid expansion."""

from __future__ import annotations

import math

import pytest

from optimlab.lab.config import (
    RunConfig,
    expand_grid,
    full_hyperparams,
    parse_lrs,
    parse_seeds,
)


def test_parse_lrs_log_range_includes_both_ends() -> None:
    lrs = parse_lrs("1e-4:1:9")
    assert len(lrs) == 9
    assert lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(1.0)
    ratios = [b / a for a, b in zip(lrs, lrs[1:], strict=False)]
    assert all(r == pytest.approx(math.sqrt(10)) for r in ratios)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1e-3,1e-2", [1e-3, 1e-2]),
        ([0.1, 0.01, 0.1], [0.01, 0.1]),
        (0.5, [0.5]),
        ("1e-2:1e-2:1", [1e-2]),
    ],
)
def test_parse_lrs_lists_and_numbers(spec: object, expected: list[float]) -> None:
    assert parse_lrs(spec) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("1e-4:1", "lo:hi:n"),
        ("1:1e-4:3", "0 < lo <= hi"),
        ("0:1:3", "lrs must be > 0, got 0.0"),
        ("1e-4:1:0", "count must be an integer >= 1, got 0"),
        ("1e-4:1:x", "lrs count must be an integer >= 1, got 'x'"),
        ("abc", "lrs must be a number, got 'abc'"),
        ("-0.1", "lrs must be > 0, got -0.1"),
        ("nan", "lrs must be a finite number > 0, got nan"),
        (True, "lrs must be a number, got True"),
        ([], "at least one"),
    ],
)
def test_parse_lrs_errors_name_the_value(spec: object, needle: str) -> None:
    with pytest.raises(ValueError, match="lrs") as err:
        parse_lrs(spec)  # type: ignore[arg-type]
    assert needle in str(err.value)


def test_parse_seeds() -> None:
    assert parse_seeds(3) == [0, 1, 2]
    assert parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("5,1") == [1, 5]
    assert parse_seeds([2, 2, 0]) == [0, 2]
    for bad, message in [
        (0, "seeds must be an integer >= 1, got 0"),
        ("x", "seeds must be an integer >= 1, got 'x'"),
        (True, "seeds must be an integer >= 1, got True"),
        ([-1], "seeds must be an integer >= 0, got -1"),
        (2.5, "seeds must be an integer >= 1, got 2.5"),
        ([], "seeds must name at least one seed"),
    ]:
        with pytest.raises(ValueError, match="seeds") as err:
            parse_seeds(bad)  # type: ignore[arg-type]
        assert message in str(err.value)


def test_problem_and_schedule_specs_use_the_one_spec_parser() -> None:
    from optimlab import schedules
    from optimlab.lab.api import parse_problem, parse_schedule

    assert parse_problem("ravine:condition=100,start=random") == (
        "ravine",
        {"condition": 100, "start": "random"},
    )
    assert parse_problem(("Ravine", {"condition": 10.0})) == ("ravine", {"condition": 10.0})
    # brackets keep their commas; names are spelled as schedules.get accepts them
    assert parse_schedule("multistep:milestones=(30,60),gamma=0.5") == (
        "multistep",
        {"milestones": (30, 60), "gamma": 0.5},
    )
    assert parse_schedule("Warmup-Cosine") == ("warmup_cosine", {})
    schedules.get("Warmup-Cosine", total_steps=10)  # the same spelling is accepted there
    assert parse_schedule("constant") == parse_schedule(None) == (None, {})
    for spec, message in [
        ("ravine:condition=1,x", "problem options must look like key=value, got 'x'"),
        ("ravine:condition", "cannot import problem module 'ravine'"),  # "module:function"
        ("ravine:condition=1,condition=2", "condition is given twice"),
        ("ravine:conditon=10", "unknown argument 'conditon'"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_problem(spec)
    with pytest.raises(ValueError, match="did you mean 'cosine'"):
        parse_schedule("cosin:eta_min=0.1")


def test_a_schedule_with_a_tuple_option_is_one_canonical_run() -> None:
    # (30, 60) from text and [30, 60] from a JSON/TOML file are the same run
    hp = full_hyperparams("sgd", {"lr": 0.1})
    a = RunConfig("ravine", "sgd", hp, 100, 0, "multistep", {"milestones": (30, 60)})
    b = RunConfig("ravine", "sgd", hp, 100, 0, "multistep", {"milestones": [30, 60]})
    assert a.run_id == b.run_id
    assert a.canonical()["schedule_kwargs"] == {"milestones": [30, 60]}
    with pytest.raises(ValueError, match="must be a number, bool or string"):
        _ = RunConfig("ravine", "sgd", hp, 10, schedule_kwargs={"x": {1: 2}}).run_id


def test_run_id_ignores_spelling_of_defaults_and_depends_on_everything_else() -> None:
    base = RunConfig("rosenbrock", "adam", full_hyperparams("adam", {"lr": 0.01}), 100)
    same = RunConfig(
        "rosenbrock", "adam", full_hyperparams("adam", {"lr": 0.01, "beta1": 0.9}), 100
    )
    assert base.run_id == same.run_id
    variants = [
        RunConfig("rosenbrock", "adam", full_hyperparams("adam", {"lr": 0.02}), 100),
        RunConfig("rosenbrock", "adam", full_hyperparams("adam", {"lr": 0.01}), 101),
        RunConfig("rosenbrock", "adam", full_hyperparams("adam", {"lr": 0.01}), 100, seed=1),
        RunConfig(
            "rosenbrock", "adam", full_hyperparams("adam", {"lr": 0.01}), 100, schedule="cosine"
        ),
        RunConfig(
            "rosenbrock",
            "adam",
            full_hyperparams("adam", {"lr": 0.01}),
            100,
            problem_kwargs={"dim": 3},
        ),
        RunConfig("ravine", "adam", full_hyperparams("adam", {"lr": 0.01}), 100),
    ]
    ids = {v.run_id for v in variants} | {base.run_id}
    assert len(ids) == len(variants) + 1
    assert RunConfig.from_canonical(base.canonical()) == base


def test_expand_grid_counts_and_per_optimizer_lrs() -> None:
    configs = expand_grid(
        "rosenbrock",
        ["sgd", "Adam"],
        {"sgd": [0.01], "default": "1e-3:1e-1:3"},
        50,
        2,
        hyperparams={"adam": {"beta2": [0.99, 0.999]}},
    )
    by_opt = {o: [c for c in configs if c.optimizer == o] for o in ("sgd", "adam")}
    assert len(by_opt["sgd"]) == 1 * 2
    assert len(by_opt["adam"]) == 3 * 2 * 2
    assert {c.hyperparams["beta2"] for c in by_opt["adam"]} == {0.99, 0.999}
    assert len({c.run_id for c in configs}) == len(configs)


def test_expand_grid_rejects_bad_input() -> None:
    with pytest.raises(
        ValueError, match="unknown optimizer 'adma'; did you mean 'adamax' or 'adam'"
    ):
        expand_grid("rosenbrock", ["adma"], "0.1", 10, 1)
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        expand_grid("rosenbrock", ["adam"], "0.1", 0, 1)
    with pytest.raises(ValueError, match="beta1 must be in"):
        expand_grid("rosenbrock", ["adam"], "0.1", 10, 1, hyperparams={"adam": {"beta1": 1.5}})
    with pytest.raises(ValueError, match="no entry for optimizer 'sgd'"):
        expand_grid("rosenbrock", ["sgd"], {"adam": "0.1"}, 10, 1)


def test_an_integer_for_a_float_hyperparameter_is_the_same_run() -> None:
    # `--hp weight_decay=0` parses as the int 0: the same configuration as the default 0.0,
    # so it must map to the same run (not a duplicate setting with an identical label)
    plain = expand_grid("ravine", ["adam", "sgd"], [0.1], 5, 2)
    given = expand_grid(
        "ravine", ["adam", "sgd"], [0.1], 5, 2, hyperparams={"*": {"weight_decay": 0}}
    )
    assert [c.run_id for c in given] == [c.run_id for c in plain]
    assert full_hyperparams("sgd", {"lr": 1, "momentum": 1})["momentum"] == 1.0
    assert isinstance(full_hyperparams("sgd", {"lr": 1, "momentum": 1})["momentum"], float)


def test_an_empty_hyperparameter_axis_is_named() -> None:
    with pytest.raises(ValueError, match="beta2 must list at least one value"):
        expand_grid("ravine", ["adam"], [0.1], 5, 1, hyperparams={"adam": {"beta2": []}})
