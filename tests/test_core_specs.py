"""core.specs (the one "name:key=value" parser) and core.names (unknown names and keywords)."""

from __future__ import annotations

import pytest

from optimlab.core.names import unknown_keyword, unknown_name
from optimlab.core.specs import parse_options, parse_spec, parse_value, split_top

# --- split_top ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, parts",
    [
        ("", []),
        ("   ", []),
        ("a", ["a"]),
        ("a=1, b=2", ["a=1", "b=2"]),
        ("milestones=(30,60),gamma=0.5", ["milestones=(30,60)", "gamma=0.5"]),
        ("x=[1,(2,3)],y={'a': 1, 'b': 2}", ["x=[1,(2,3)]", "y={'a': 1, 'b': 2}"]),
        ("name='a,b',k=1", ["name='a,b'", "k=1"]),
        ('name="a,(b",k=1', ['name="a,(b"', "k=1"]),
        ("a,,b", ["a", "", "b"]),  # kept, so that callers refuse them
        ("a,", ["a", ""]),
        (",a", ["", "a"]),
    ],
)
def test_split_top(text: str, parts: list[str]) -> None:
    assert split_top(text) == parts


@pytest.mark.parametrize("text", ["a=(1,2", "a=1),b=2", "a=[1,2)", "a='x", 'a="x,b=1', "a=]"])
def test_split_top_refuses_unbalanced_text(text: str) -> None:
    with pytest.raises(ValueError, match="must have balanced brackets and quotes"):
        split_top(text)


# --- parse_value ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("0.5", 0.5),
        (" 3 ", 3),
        ("-1e-3", -1e-3),
        ("1_000", 1000),
        ("(30, 60)", (30, 60)),
        ("[0.1, 0.2]", [0.1, 0.2]),
        ("'quoted'", "quoted"),
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("none", None),
        ("Null", None),
        ("None", None),
        ("cosine", "cosine"),
        ("triangular2", "triangular2"),
        ("{[1]: 2}", "{[1]: 2}"),  # unhashable key: left as text, refused by the check
        ("inf", "inf"),
        ("9" * 5000, "9" * 5000),  # past Python's int-from-text limit: left as text
        ("(" * 500 + ")" * 500, "(" * 500 + ")" * 500),  # too deep: left as text
    ],
)
def test_parse_value(text: str, value) -> None:
    got = parse_value(text)
    assert got == value and type(got) is type(value)


# --- parse_options and parse_spec ---------------------------------------------------------------


def test_parse_spec() -> None:
    assert parse_spec("cosine") == ("cosine", {})
    assert parse_spec(" cosine : ") == ("cosine", {})
    assert parse_spec("multistep:milestones=(30,60),gamma=0.5") == (
        "multistep",
        {"milestones": (30, 60), "gamma": 0.5},
    )
    assert parse_spec("cyclic:mode=triangular2, step_size_up=4, three_phase=true") == (
        "cyclic",
        {"mode": "triangular2", "step_size_up": 4, "three_phase": True},
    )
    assert parse_spec("Warmup-Cosine:T_0=5") == ("Warmup-Cosine", {"T_0": 5})


@pytest.mark.parametrize(
    "spec, message",
    [
        (None, r"^schedule must be a string like 'name:key=value', got None$"),
        (b"cosine", r"^schedule must be a string like 'name:key=value', got b'cosine'$"),
        (":lr=1", r"^schedule must start with a name, got ':lr=1'$"),
        ("cosine:oops", r"^schedule options must look like key=value, got 'oops' in 'cosine:oops'"),
        ("cosine:=1", r"must look like key=value, got '=1'"),
        ("cosine:lr-x=1", r"must look like key=value, got 'lr-x=1'"),
        ("cosine:lr=1,,eta_min=0", r"must look like key=value, got '' in 'cosine:lr=1,,eta_min"),
        ("cosine:lr=1,", r"must look like key=value, got '' in"),
        ("cosine:lr=0.1,lr=0.2", r"^lr is given twice in 'cosine:lr=0.1,lr=0.2'$"),
        (
            "multistep:milestones=(30,60",
            r"^schedule options must have balanced brackets and quotes, got 'multistep:mil",
        ),
    ],
)
def test_parse_spec_errors_name_the_spec(spec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_spec(spec, "schedule")


def test_parse_options() -> None:
    assert parse_options("") == {}
    assert parse_options("a=1, b=(1, 2)") == {"a": 1, "b": (1, 2)}
    with pytest.raises(ValueError, match=r"^options must look like key=value, got 'x' in 'x'$"):
        parse_options("x")
    with pytest.raises(ValueError, match=r"^problem options must have balanced"):
        parse_options("a=[1", "problem options")


# --- names ----------------------------------------------------------------------------------


def test_unknown_name() -> None:
    err = unknown_name("optimizer", "adamm", ["sgd", "adam", "adamw"])
    assert isinstance(err, ValueError)
    assert str(err) == (
        "unknown optimizer 'adamm'; did you mean 'adam' or 'adamw'? (known: adam, adamw, sgd)"
    )
    err = unknown_name("schedule", "Cosin", ["cosine"], match="cosin")
    assert str(err) == "unknown schedule 'Cosin'; did you mean 'cosine'? (known: cosine)"
    assert str(unknown_name("problem", 3, ["a"])) == "unknown problem 3 (known: a)"


def test_unknown_keyword() -> None:
    err = unknown_keyword("schedule 'cosine'", "eta", ["total_steps", "lr", "eta_min"])
    assert str(err) == (
        "schedule 'cosine' got unknown argument 'eta'; did you mean 'eta_min'? "
        "(known: total_steps, lr, eta_min)"
    )
    err = unknown_keyword("adam", "xyz", ["lr", "beta1"], what="hyperparameter")
    assert str(err) == "adam got unknown hyperparameter 'xyz' (known: lr, beta1)"
    assert "unknown argument 3" in str(unknown_keyword("f", 3, ["a"]))
