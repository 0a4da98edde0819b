"""The registry table: complete, consistent with its rules, with torch's defaults, and
covered by the case table."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pydoc
import subprocess
import sys

import pytest
import torch
from cases import CASES, INVALID, REFERENCES, cases_for, torch_kwargs

import optimlab
from optimlab.rules.registry import REGISTRY, get_rule, get_spec, list_optimizers

NAMES = [spec.name for spec in REGISTRY]


def test_names_are_unique_lowercase_and_listed_sorted() -> None:
    assert len(set(NAMES)) == len(NAMES)
    assert all(n == n.lower() and n.isidentifier() for n in NAMES)
    assert list_optimizers() == sorted(NAMES) == optimlab.list_optimizers()
    assert {"adagrad", "rmsprop", "nadam", "radam", "adafactor", "lion"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_row_is_in_the_case_table(name: str) -> None:
    """A new optimizer cannot slip in untested: it needs cases, a reference and errors."""
    assert cases_for(name), f"no cases for {name} in tests/cases.py"
    assert name in REFERENCES, f"no reference implementation for {name}"
    assert any(inv.name == name for inv in INVALID)


def test_the_case_table_names_only_registered_optimizers() -> None:
    assert {c.name for c in CASES} == set(NAMES)
    assert set(REFERENCES) == set(NAMES)
    assert len({c.id for c in CASES}) == len(CASES)


# Options that lower the precision are tested on their own, to bounds of that precision
# (the shared cases are compared to float64 tolerances).
TESTED_ON_THEIR_OWN = {("muon", "ns_dtype"): "test_rules_new.py::test_muon_ns_dtype_*"}


@pytest.mark.parametrize("name", NAMES)
def test_cases_exercise_every_option(name: str) -> None:
    """Each hyperparameter is set away from its default by some case."""
    rule = get_rule(name)
    for h in rule.hyperparams:
        if (name, h.name) in TESTED_ON_THEIR_OWN:
            continue
        values = [c.full()[h.name] for c in cases_for(name)]
        assert any(v != h.default for v in values), f"{name}: no case changes {h.name}"


@pytest.mark.parametrize("name", NAMES)
def test_rule_signature_matches_its_specs(name: str) -> None:
    rule = get_rule(name)
    params = inspect.signature(rule.update).parameters  # a derived row hides fixed ones
    kw = [p for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    extra = [] if rule.elementwise and not rule.reducing_options else ["batch_ndim"]
    scalars = ["scalars"] if rule.per_step is not None else []  # per-step scalars, if any
    assert [p.name for p in kw] == [*rule.names, *extra, *scalars]
    assert list(params)[:3] == ["grad", "state", "param"]
    if extra:
        assert "batch_ndim" in inspect.signature(rule.init).parameters
    state = rule.init(torch.zeros(2, 3).numpy())
    assert state._fields[0] == "count" and state.count == 0


def _is_base(spec) -> bool:
    """Whether the row is a rule module's own Rule (not derived with other defaults)."""
    module = importlib.import_module(spec.rule.update.__module__)
    return getattr(module, spec.rule.name.upper(), None) is spec.rule


BASE_ROWS = [s for s in REGISTRY if _is_base(s)]


def test_base_rows() -> None:
    assert {s.name for s in REGISTRY} - {s.name for s in BASE_ROWS} == {
        "momentum",
        "nesterov",
        "adamw",
        "lookahead",  # Lookahead wrapped around the adamw row
    }


@pytest.mark.parametrize("spec", BASE_ROWS, ids=[s.name for s in BASE_ROWS])
def test_base_rule_defaults_are_the_function_defaults(spec) -> None:
    """For rows that are a rule as written (not derived), the specs and the function's
    keyword defaults agree, so calling ``update`` bare means the documented defaults."""
    params = inspect.signature(spec.rule.update).parameters
    for h in spec.rule.hyperparams:
        assert params[h.name].default == h.default, (spec.name, h.name)


SAME_AS_TORCH = [
    s for s in REGISTRY if s.torch_reference and s.torch_reference == f"torch.optim.{s.torch_class}"
]


def test_rows_without_torch_twin() -> None:
    others = {s.name for s in REGISTRY} - {s.name for s in SAME_AS_TORCH}
    # SGD with other defaults; algorithms torch.optim does not have
    assert others == {"momentum", "nesterov", "lion"} | {
        "sgd_schedulefree",
        "adamw_schedulefree",
        "ademamix",
        "mars",
        "lamb",
        "prodigy",
        "lookahead",
    }
    assert not hasattr(torch.optim, "Lion")


@pytest.mark.parametrize("spec", SAME_AS_TORCH, ids=[s.name for s in SAME_AS_TORCH])
def test_defaults_are_torchs(spec) -> None:
    """Same defaults as torch.optim's class of the same name (betas/eps pairs split)."""
    cls = getattr(torch.optim, spec.torch_class)
    ours = torch_kwargs(spec.name, spec.rule.validate())
    theirs = {
        k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k in ours
    }
    assert set(theirs) == set(ours), (spec.name, set(ours) ^ set(theirs))
    for k, v in ours.items():
        assert v == theirs[k] or (isinstance(v, tuple) and tuple(v) == tuple(theirs[k])), k


def test_capabilities_live_in_data() -> None:
    assert get_spec("lion").torch_reference is None
    assert [n for n in NAMES if not get_rule(n).elementwise] == [
        "adafactor",
        "muon",
        "mars",
        "lamb",
        "prodigy",
    ]
    assert [n for n in NAMES if get_rule(n).reducing_options] == [
        "adam",
        "adamw",
        "lion",
        "lookahead",  # around adamw: its cautious option
    ]
    assert [n for n in NAMES if get_rule(n).group_wide] == ["prodigy"]
    assert [n for n in NAMES if get_rule(n).param_ndim is not None] == ["muon"]
    assert [n for n in NAMES if get_rule(n).eval_point is not None] == [
        "asgd",
        "sgd_schedulefree",
        "adamw_schedulefree",
        "lookahead",
    ]
    torch_classes = {s.torch_class for s in REGISTRY}
    assert {"Adagrad", "RMSprop", "NAdam", "RAdam", "Adafactor", "Lion"} <= torch_classes
    for spec in REGISTRY:
        if spec.torch_reference:
            module, cls = spec.torch_reference.rsplit(".", 1)
            assert module == "torch.optim" and hasattr(torch.optim, cls)


@pytest.mark.parametrize("spec", REGISTRY, ids=NAMES)
def test_torch_args_name_hyperparameters_of_the_rule(spec) -> None:
    """Each torch argument of the mapping carries distinct hyperparameters of the rule, and
    torch's reference class (where there is one) takes that argument."""
    carried = [h for targets in spec.torch_args.values() for h in targets]
    assert len(carried) == len(set(carried)) and set(carried) <= set(spec.rule.names)
    if spec.torch_reference:
        reference = getattr(torch.optim, spec.torch_reference.rsplit(".", 1)[1])
        params = inspect.signature(reference.__init__).parameters
        assert set(spec.torch_args) <= set(params)


def test_torch_args_of_the_rows() -> None:
    for name in ("adam", "adamw", "nadam", "radam", "lion"):
        assert get_spec(name).torch_args == {"betas": ("beta1", "beta2")}
    assert get_spec("adafactor").torch_args == {"eps": ("eps1", "eps2")}
    assert get_spec("sgd").torch_args == {}
    adam = get_spec("adam")
    assert adam.torch_key("beta2") == ("betas", 1) and adam.torch_key("lr") == ("lr", None)
    group = {"lr": 0.1, "betas": (0.8, 0.9), "foreach": None, "params": []}
    assert adam.from_torch(group) == {"lr": 0.1, "beta1": 0.8, "beta2": 0.9}


def test_torch_args_must_name_the_rules_hyperparameters() -> None:
    adam = get_spec("adam")
    with pytest.raises(ValueError, match="torch_args of adam must map torch arguments"):
        dataclasses.replace(adam, torch_args={"betas": ("beta1", "beta3")})
    with pytest.raises(ValueError, match="distinct hyperparameters"):
        dataclasses.replace(adam, torch_args={"betas": ("beta1", "beta2"), "b": ("beta1",)})


def test_derived_update_shows_the_base_math_and_its_own_signature() -> None:
    """A derived row's update keeps the base docstring (help shows the math, not
    functools.partial's) and hides its fixed settings from the signature."""
    update = get_rule("adamw").update
    assert inspect.getdoc(update) == inspect.getdoc(get_rule("adam").update)
    assert "decoupled_weight_decay" not in inspect.signature(update).parameters
    assert "math::" in pydoc.render_doc(update)


def test_derived_rows_fix_their_settings() -> None:
    adamw = get_rule("adamw")
    assert "decoupled_weight_decay" not in adamw.names
    assert adamw.defaults["weight_decay"] == 1e-2
    assert get_rule("nesterov").defaults["nesterov"] is True
    assert get_rule("momentum").defaults["momentum"] == 0.9


@pytest.mark.parametrize("name", NAMES)
def test_rules_are_documented(name: str) -> None:
    rule = get_rule(name)
    doc = inspect.getdoc(rule.update) or ""
    assert ">>>" in doc and "math::" in doc, name
    assert rule.summary and rule.paper
    assert all(h.doc for h in rule.hyperparams)


def test_unknown_names_suggest_close_ones() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'; did you mean 'adam'"):
        get_spec("adamm")
    with pytest.raises(ValueError, match="did you mean 'rmsprop'"):
        get_rule("rmsprob")
    with pytest.raises(ValueError, match="unknown optimizer 'xyz' \\(known: adadelta, "):
        get_rule("xyz")
    with pytest.raises(ValueError, match="unknown optimizer 3"):
        get_rule(3)  # type: ignore[arg-type]
    assert get_rule("AdaFactor") is get_rule("adafactor")


def test_import_stays_light() -> None:
    code = (
        "import sys, optimlab; from optimlab.rules.registry import get_rule; "
        "get_rule('adafactor').validate(eps1=None); optimlab.list_optimizers(); "
        "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
