"""The table of optimizer cases that every generic test runs over.

For each registered optimizer (``optimlab.rules.registry``):

- ``CASES``: hyperparameter combinations (in the rule's names) that together exercise
  every option; ``cases_for(name)`` selects one optimizer's rows.
- ``INVALID``: hyperparameters that must raise ``ValueError`` with a message fragment.
- ``reference_run(name, hp, param, grads)``: an independent plain-NumPy implementation,
  written from the paper / torch.optim equations in the simplest loop form; it never calls
  the rules. ``hp`` must be complete (``full_hp`` fills defaults from the registry).
- ``torch_kwargs(name, hp)``: the same setting in ``torch.optim``'s argument names
  (``betas``, ``eps`` pairs), or ``None`` when torch has no such option (SGD's ``ema``,
  Adam's ``bias_correction=False``) or no such algorithm (Lion).

Import it from tests as ``from cases import CASES, ...`` (pytest puts ``tests/`` on
``sys.path`` through its rootdir conftest).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optimlab.rules.registry import REGISTRY, get_rule, get_spec


@dataclass(frozen=True)
class Case:
    """One valid setting of a registered optimizer (unset hyperparameters: defaults)."""

    name: str
    hp: dict[str, Any] = field(default_factory=dict)
    label: str = "defaults"

    @property
    def id(self) -> str:
        return f"{self.name}-{self.label}"

    def full(self) -> dict[str, Any]:
        return full_hp(self.name, self.hp)


@dataclass(frozen=True)
class Invalid:
    """Hyperparameters that ``get_rule(name).validate(**hp)`` must reject."""

    name: str
    hp: dict[str, Any]
    match: str  # a fragment of the message (compared literally, not as a regex)

    @property
    def id(self) -> str:
        key, value = next(iter(self.hp.items())) if self.hp else ("", "")
        return f"{self.name}-{key}={value!r}-{len(self.hp)}"


def full_hp(name: str, hp: dict[str, Any]) -> dict[str, Any]:
    """Every hyperparameter of ``name``, defaults filled in and validated."""
    return get_rule(name).validate(**hp)


# --------------------------------------------------------------------------- valid cases

_SGD_LIKE = [
    ({}, "defaults"),
    ({"lr": 0.05, "weight_decay": 0.1}, "wd"),
    ({"lr": 0.02, "momentum": 0.9}, "momentum"),
    ({"lr": 0.02, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.05}, "dampening"),
    ({"lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05}, "nesterov"),
    ({"lr": 0.05, "momentum": 0.7, "ema": True}, "ema"),
    ({"lr": 0.05, "momentum": 0.7, "nesterov": True, "ema": True}, "ema-nesterov"),
]

_ADAM_LIKE = [
    ({}, "defaults"),
    ({"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6}, "betas"),
    ({"lr": 0.01, "weight_decay": 0.1}, "wd"),
    ({"lr": 0.01, "amsgrad": True, "weight_decay": 0.05}, "amsgrad"),
    ({"lr": 0.01, "bias_correction": False}, "no-bias-correction"),
    (
        {"lr": 0.01, "beta1": 0.0, "beta2": 0.5, "amsgrad": True, "bias_correction": False},
        "extreme",
    ),
]

_TABLE: dict[str, list[tuple[dict[str, Any], str]]] = {
    "sgd": [*_SGD_LIKE, ({"lr": 0.1, "momentum": 0.0, "dampening": 0.5}, "dampening-unused")],
    "momentum": [({}, "defaults"), *_SGD_LIKE[1:], ({"momentum": 0.0}, "zero-momentum")],
    "nesterov": [
        ({}, "defaults"),
        ({"lr": 0.03, "momentum": 0.5, "weight_decay": 0.1}, "wd"),
        ({"nesterov": False, "dampening": 0.2}, "off-dampening"),
        ({"lr": 0.05, "ema": True}, "ema"),
    ],
    "adam": [
        *_ADAM_LIKE,
        ({"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}, "decoupled"),
    ],
    "adamw": [*_ADAM_LIKE, ({"lr": 0.01, "weight_decay": 0.0}, "no-wd")],
    "adagrad": [
        ({}, "defaults"),
        ({"lr": 0.1, "lr_decay": 0.05}, "lr-decay"),
        ({"lr": 0.1, "weight_decay": 0.1, "eps": 1e-6}, "wd"),
        ({"lr": 0.1, "initial_accumulator_value": 0.5, "lr_decay": 0.01}, "initial-acc"),
    ],
    "rmsprop": [
        ({}, "defaults"),
        ({"lr": 0.01, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.1}, "wd"),
        ({"lr": 0.005, "momentum": 0.9}, "momentum"),
        ({"lr": 0.005, "centered": True}, "centered"),
        ({"lr": 0.005, "centered": True, "momentum": 0.8, "weight_decay": 0.05}, "all"),
    ],
    "nadam": [
        ({}, "defaults"),
        ({"lr": 0.01, "beta1": 0.85, "beta2": 0.99, "eps": 1e-6, "momentum_decay": 0.01}, "betas"),
        ({"lr": 0.01, "weight_decay": 0.1}, "wd"),
        ({"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}, "decoupled"),
        ({"lr": 0.01, "momentum_decay": 0.0}, "no-momentum-decay"),
    ],
    "radam": [
        ({}, "defaults"),
        ({"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6}, "betas"),
        ({"lr": 0.01, "weight_decay": 0.1}, "wd"),
        ({"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}, "decoupled"),
        ({"lr": 0.01, "beta2": 0.5}, "never-rectified"),  # rho_inf = 3 <= 5: always momentum
    ],
    "adafactor": [
        ({}, "defaults"),
        ({"lr": 0.5}, "relative-step"),  # rho_t = 1/sqrt(t) from step 5 on
        ({"lr": 1e-3, "beta2_decay": -0.5, "d": 1.5}, "small-lr"),
        ({"lr": 0.05, "eps1": 1e-3, "eps2": 1e-2, "weight_decay": 0.1}, "eps-wd"),
        ({"lr": 0.05, "beta2_decay": 0.0}, "no-averaging"),
    ],
    "lion": [
        ({}, "defaults"),
        ({"lr": 1e-3, "beta1": 0.8, "beta2": 0.95}, "betas"),
        ({"lr": 1e-3, "weight_decay": 0.5}, "wd"),
    ],
}

# issue 13: torch.optim's remaining algorithms, the current leaders, the cautious mask
_TABLE["adam"] += [
    ({"lr": 0.01, "cautious": True}, "cautious"),
    ({"lr": 0.01, "cautious": True, "amsgrad": True, "weight_decay": 0.05}, "cautious-l2"),
]
_TABLE["adamw"] += [({"lr": 0.01, "cautious": True, "weight_decay": 0.1}, "cautious")]
_TABLE["lion"] += [({"lr": 1e-3, "cautious": True, "weight_decay": 0.1}, "cautious")]
_TABLE.update(
    {
        "adamax": [
            ({}, "defaults"),
            ({"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6}, "betas"),
            ({"lr": 0.01, "weight_decay": 0.1}, "wd"),
        ],
        "adadelta": [
            ({}, "defaults"),
            ({"lr": 0.5, "rho": 0.8, "eps": 1e-4}, "rho"),
            ({"weight_decay": 0.1}, "wd"),
        ],
        "rprop": [
            ({}, "defaults"),
            ({"lr": 0.05, "eta_minus": 0.3, "eta_plus": 1.5}, "etas"),
            ({"lr": 0.1, "step_size_min": 0.01, "step_size_max": 0.2}, "clamped"),
        ],
        "asgd": [
            ({}, "defaults"),  # t0 = 1e6: never averages
            ({"lr": 0.05, "lambd": 0.01, "alpha": 0.5, "t0": 10.0}, "averaging"),
            ({"lr": 0.02, "t0": 0.0, "weight_decay": 0.1}, "wd"),
        ],
        "muon": [
            ({}, "defaults"),
            ({"lr": 0.02, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}, "plain"),
            (
                {"lr": 0.02, "adjust_lr_fn": "match_rms_adamw", "ns_steps": 3, "eps": 1e-5},
                "match-rms",
            ),
            (
                {"lr": 0.02, "ns_a": 2.0, "ns_b": -1.5, "ns_c": 0.5, "adjust_lr_fn": "original"},
                "coefficients",
            ),
        ],
        "sgd_schedulefree": [
            ({}, "defaults"),
            ({"lr": 0.1, "momentum": 0.5, "weight_decay": 0.1}, "wd"),
            ({"lr": 0.1, "warmup_steps": 10, "r": 1.0, "weight_lr_power": 1.0}, "warmup"),
        ],
        "adamw_schedulefree": [
            ({}, "defaults"),
            (
                {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6, "weight_decay": 0.1},
                "betas-wd",
            ),
            ({"lr": 0.01, "warmup_steps": 20, "r": 0.5, "weight_lr_power": 0.0}, "warmup"),
        ],
        "ademamix": [
            ({}, "defaults"),
            (
                {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "beta3": 0.99, "alpha": 5.0, "eps": 1e-6},
                "betas",
            ),
            (
                {"lr": 0.01, "alpha_warmup": 30, "beta3_warmup": 50, "weight_decay": 0.1},
                "warmups",
            ),
            ({"lr": 0.01, "beta1": 0.0, "beta3_warmup": 10}, "no-fast"),
        ],
        "mars": [
            ({}, "defaults"),
            ({"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-6, "gamma": 0.1}, "betas"),
            ({"lr": 0.01, "weight_decay": 0.1, "gamma": 0.0}, "no-correction"),
        ],
        "lamb": [
            ({}, "defaults"),
            ({"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-8}, "betas"),
            ({"lr": 0.01, "weight_decay": 0.0}, "no-wd"),
        ],
    }
)

CASES: tuple[Case, ...] = tuple(
    Case(name, hp, label) for name, rows in _TABLE.items() for hp, label in rows
)


def cases_for(name: str) -> list[Case]:
    return [c for c in CASES if c.name == name]


# Random valid values of each numeric hyperparameter, for tests that draw settings.
_SAMPLERS: dict[str, Callable[[np.random.Generator], float]] = {
    "lr": lambda r: float(10 ** r.uniform(-3, -1)),
    "beta1": lambda r: float(r.uniform(0.5, 0.95)),
    "beta2": lambda r: float(r.uniform(0.9, 0.999)),
    "eps": lambda r: float(10 ** r.uniform(-10, -6)),
    "weight_decay": lambda r: float(r.uniform(0.01, 0.2)),
    "momentum": lambda r: float(r.uniform(0.1, 0.95)),
    "dampening": lambda r: float(r.uniform(0.1, 0.5)),
    "alpha": lambda r: float(r.uniform(0.8, 0.999)),
    "lr_decay": lambda r: float(r.uniform(0.0, 0.1)),
    "initial_accumulator_value": lambda r: float(r.uniform(0.0, 0.5)),
    "momentum_decay": lambda r: float(r.uniform(1e-3, 1e-2)),
    "beta2_decay": lambda r: float(r.uniform(-1.0, -0.5)),
    "eps1": lambda r: float(10 ** r.uniform(-12, -4)),
    "eps2": lambda r: float(10 ** r.uniform(-4, -2)),
    "d": lambda r: float(r.uniform(1.0, 2.0)),
    # issue 13
    "rho": lambda r: float(r.uniform(0.5, 0.99)),
    "eta_minus": lambda r: float(r.uniform(0.2, 0.8)),
    "eta_plus": lambda r: float(r.uniform(1.05, 2.0)),
    "step_size_min": lambda r: float(10 ** r.uniform(-4, -2)),
    "step_size_max": lambda r: float(r.uniform(0.1, 1.0)),
    "lambd": lambda r: float(10 ** r.uniform(-4, -1)),
    "t0": lambda r: float(r.uniform(1.0, 20.0)),
    "beta3": lambda r: float(r.uniform(0.99, 0.9999)),
    "gamma": lambda r: float(r.uniform(0.01, 0.2)),
    "r": lambda r: float(r.uniform(0.0, 2.0)),
    "weight_lr_power": lambda r: float(r.uniform(0.0, 2.0)),
}


def randomized(case: Case, rng: np.random.Generator) -> Case:
    """``case`` with each numeric hyperparameter it sets to a nonzero value drawn anew
    (zeros stay zero and flags stay, so the case keeps exercising the same options)."""
    hp = {
        k: _SAMPLERS[k](rng) if k in _SAMPLERS and not isinstance(v, bool) and v else v
        for k, v in case.hp.items()
    }
    return Case(case.name, hp, case.label + "-random")


# --------------------------------------------------------------------------- invalid inputs


def _generated_invalid(name: str) -> list[Invalid]:
    """From the registry's own specs: out-of-range, NaN, inf, bools, strings, None."""
    out = []
    for h in get_rule(name).hyperparams:
        if h.kind == "choice":
            out += [
                Invalid(name, {h.name: "nope"}, f"{h.name} must be one of "),
                Invalid(name, {h.name: 1.0}, "got 1.0"),
                Invalid(name, {h.name: True}, f"{h.name} must be one of "),
            ]
            continue
        if h.kind == "bool":
            out += [
                Invalid(name, {h.name: 1}, f"{h.name} must be True or False, got 1"),
                Invalid(name, {h.name: "yes"}, f"{h.name} must be True or False"),
            ]
            continue
        none = "None or " if h.optional else ""
        # an integer hyperparameter's message names its range: "an integer >= 0, got nan"
        finite, number = (
            ("an integer", "an integer")
            if h.kind == "int"
            else (
                "a finite number",
                "a number",
            )
        )
        out += [
            Invalid(name, {h.name: math.nan}, f"{h.name} must be {none}{finite}"),
            Invalid(name, {h.name: math.inf}, f"{h.name} must be {none}{finite}"),
            Invalid(name, {h.name: True}, f"{h.name} must be {none}{number}"),
            Invalid(name, {h.name: True}, "got True"),
            Invalid(name, {h.name: "0.1"}, f"{h.name} must be {none}{number}"),
            Invalid(name, {h.name: "0.1"}, "got '0.1'"),
        ]
        if not h.optional:
            out.append(Invalid(name, {h.name: None}, f"{h.name} must be {number}"))
            out.append(Invalid(name, {h.name: None}, "got None"))
        if math.isfinite(h.low):
            bad = h.low if h.low_open else h.low - 0.5
            out.append(Invalid(name, {h.name: bad}, f"{h.name} must be "))
            out.append(Invalid(name, {h.name: bad}, f"got {bad!r}"))
        if math.isfinite(h.high):
            bad = h.high if h.high_open else h.high + 0.5
            out.append(Invalid(name, {h.name: bad}, f"got {bad!r}"))
    out.append(Invalid(name, {"not_a_hyperparameter": 1.0}, "unknown hyperparameter"))
    return out


# Exact messages for the common mistakes, written out (not derived from the specs).
_EXPLICIT: list[Invalid] = [
    *(Invalid(spec.name, {"lr": -1.0}, "lr must be >= 0, got -1.0") for spec in REGISTRY),
    *(
        Invalid(n, {"beta1": 1.0}, "beta1 must be in [0, 1), got 1.0")
        for n in ("adam", "adamw", "nadam", "radam", "lion")
    ),
    *(
        Invalid(n, {"beta2": -0.1}, "beta2 must be in [0, 1), got -0.1")
        for n in ("adam", "adamw", "nadam", "radam", "lion")
    ),
    *(
        Invalid(n, {"eps": 0.0}, "eps must be > 0, got 0.0")
        for n in ("adam", "adamw", "adagrad", "rmsprop", "nadam", "radam")
    ),
    *(
        Invalid(spec.name, {"weight_decay": -0.01}, "weight_decay must be >= 0, got -0.01")
        for spec in REGISTRY
        if "weight_decay" in spec.rule.names  # Rprop has none
    ),
    Invalid("sgd", {"momentum": -0.5}, "momentum must be in [0, 1], got -0.5"),
    Invalid("rmsprop", {"momentum": 1.5}, "momentum must be in [0, 1], got 1.5"),
    Invalid("rmsprop", {"alpha": -0.1}, "alpha must be in [0, 1], got -0.1"),
    Invalid("adagrad", {"lr_decay": -1.0}, "lr_decay must be >= 0, got -1.0"),
    Invalid(
        "adagrad",
        {"initial_accumulator_value": -0.1},
        "initial_accumulator_value must be >= 0, got -0.1",
    ),
    Invalid("nadam", {"momentum_decay": -0.004}, "momentum_decay must be >= 0, got -0.004"),
    Invalid("adafactor", {"beta2_decay": 0.5}, "beta2_decay must be <= 0, got 0.5"),
    Invalid("adafactor", {"eps1": 0.0}, "eps1 must be None or > 0, got 0.0"),
    Invalid("adafactor", {"eps2": -1e-3}, "eps2 must be > 0, got -0.001"),
    Invalid("adafactor", {"d": 0.5}, "d must be >= 1, got 0.5"),
    Invalid("adam", {"lr": np.array([[0.1], [-0.1]])}, "lr must be >= 0, got array"),
    Invalid("adam", {"amsgrad": "False"}, "amsgrad must be True or False, got 'False'"),
    # cross-field
    Invalid("sgd", {"nesterov": True}, "nesterov requires momentum > 0 and dampening == 0"),
    Invalid(
        "sgd",
        {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
        "nesterov requires momentum > 0 and dampening == 0",
    ),
    Invalid("nesterov", {"momentum": 0.0}, "nesterov requires momentum > 0"),
    Invalid(
        "momentum",
        {"ema": True, "dampening": 0.2},
        "ema momentum takes no dampening, got dampening=0.2",
    ),
    # a setting the row fixes cannot be passed
    Invalid("adamw", {"decoupled_weight_decay": False}, "unknown hyperparameter"),
    # issue 13
    *(
        Invalid(n, {"beta1": 1.0}, "beta1 must be in [0, 1), got 1.0")
        for n in ("adamax", "adamw_schedulefree", "ademamix", "mars", "lamb")
    ),
    *(
        Invalid(n, {"eps": 0.0}, "eps must be > 0, got 0.0")
        for n in ("adamax", "adadelta", "muon", "adamw_schedulefree", "ademamix", "mars", "lamb")
    ),
    Invalid("adam", {"cautious": 1}, "cautious must be True or False, got 1"),
    Invalid("lion", {"cautious": "yes"}, "cautious must be True or False, got 'yes'"),
    Invalid("adadelta", {"rho": 1.5}, "rho must be in [0, 1], got 1.5"),
    Invalid("rprop", {"eta_minus": 1.0}, "eta_minus must be in (0, 1), got 1.0"),
    Invalid("rprop", {"eta_plus": 1.0}, "eta_plus must be > 1, got 1.0"),
    Invalid("rprop", {"step_size_min": -1e-6}, "step_size_min must be >= 0, got -1e-06"),
    Invalid("rprop", {"step_size_max": 0.0}, "step_size_max must be > 0, got 0.0"),
    Invalid(
        "rprop",
        {"step_size_min": 1.0, "step_size_max": 0.5},
        "step_size_min must be <= step_size_max, got 1.0 and 0.5",
    ),
    Invalid("asgd", {"lambd": -1e-4}, "lambd must be >= 0, got -0.0001"),
    Invalid("asgd", {"alpha": -0.75}, "alpha must be >= 0, got -0.75"),
    Invalid("asgd", {"t0": -1.0}, "t0 must be >= 0, got -1.0"),
    Invalid("muon", {"momentum": 1.0}, "momentum must be in [0, 1), got 1.0"),
    Invalid("muon", {"ns_steps": 100}, "ns_steps must be an integer in [0, 99], got 100"),
    Invalid("muon", {"ns_steps": 2.5}, "ns_steps must be an integer in [0, 99], got 2.5"),
    Invalid(
        "muon",
        {"adjust_lr_fn": "match_rms"},
        "adjust_lr_fn must be one of None, 'original', 'match_rms_adamw', got 'match_rms'",
    ),
    Invalid("muon", {"ns_a": math.nan}, "ns_a must be a finite number, got nan"),
    Invalid("sgd_schedulefree", {"momentum": 1.0}, "momentum must be in [0, 1), got 1.0"),
    Invalid(
        "sgd_schedulefree", {"warmup_steps": -1}, "warmup_steps must be an integer >= 0, got -1"
    ),
    Invalid("adamw_schedulefree", {"warmup_steps": 1.5}, "warmup_steps must be an integer"),
    Invalid("adamw_schedulefree", {"r": -0.5}, "r must be >= 0, got -0.5"),
    Invalid("adamw_schedulefree", {"weight_lr_power": -2.0}, "weight_lr_power must be >= 0"),
    Invalid("ademamix", {"beta3": 1.0}, "beta3 must be in [0, 1), got 1.0"),
    Invalid("ademamix", {"alpha": -1.0}, "alpha must be >= 0, got -1.0"),
    Invalid("ademamix", {"alpha_warmup": -5}, "alpha_warmup must be an integer >= 0, got -5"),
    Invalid("ademamix", {"beta3_warmup": 0.5}, "beta3_warmup must be an integer >= 0, got 0.5"),
    Invalid("mars", {"gamma": -0.025}, "gamma must be >= 0, got -0.025"),
    Invalid("lamb", {"beta2": 1.0}, "beta2 must be in [0, 1), got 1.0"),
]

INVALID: tuple[Invalid, ...] = tuple(
    [inv for spec in REGISTRY for inv in _generated_invalid(spec.name)] + _EXPLICIT
)


# --------------------------------------------------------------------------- torch names

# option: the only value torch has
# options torch's classes lack, with the value that computes what torch does (Muon's
# ns_dtype: None is the full-precision reference of torch_reference("muon"))
_TORCH_LACKS = {"ema": False, "bias_correction": True, "cautious": False, "ns_dtype": None}


def torch_kwargs(name: str, hp: dict[str, Any]) -> dict[str, Any] | None:
    """``hp`` (complete) in the argument names of the row's torch reference class, or None
    when torch has no such class or option."""
    if get_spec(name).torch_reference is None:
        return None
    out = dict(hp)
    for option, torch_value in _TORCH_LACKS.items():
        if option in out and out.pop(option) != torch_value:
            return None
    for torch_name, targets in get_spec(name).torch_args.items():
        out[torch_name] = tuple(out.pop(t) for t in targets)
    if "beta1" in out:
        out["betas"] = (out.pop("beta1"), out.pop("beta2"))
    if "eps1" in out:
        out["eps"] = (out.pop("eps1"), out.pop("eps2"))
    return out


# --------------------------------------------------------------------------- references
# Each reference takes the initial parameter, the gradients of every step and complete
# hyperparameters, and returns the parameter after each step. Plain float64 NumPy loops.


def _sgd(p, grads, lr, momentum, dampening, weight_decay, nesterov, ema):
    out, buf = [], None
    for t, g in enumerate(grads):
        g = g + weight_decay * p
        if momentum != 0:
            if ema:  # b_t = mu b_{t-1} + (1 - mu) g, b_0 = 0
                buf = (1 - momentum) * g if t == 0 else momentum * buf + (1 - momentum) * g
            else:  # torch: the buffer starts as the first gradient
                buf = g.copy() if t == 0 else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        out.append(p)
    return out


def _adam(
    p, grads, lr, beta1, beta2, eps, weight_decay, amsgrad, bias_correction, decoupled_weight_decay
):
    m, v, v_max, out = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    for t, g in enumerate(grads, start=1):
        if decoupled_weight_decay:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        v_max = np.maximum(v_max, v)
        v_use = v_max if amsgrad else v
        if bias_correction:  # Kingma & Ba, with eps after the corrected sqrt (torch)
            m_hat, v_hat = m / (1 - beta1**t), v_use / (1 - beta2**t)
        else:
            m_hat, v_hat = m, v_use
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


def _adagrad(p, grads, lr, lr_decay, weight_decay, initial_accumulator_value, eps):
    s, out = np.full_like(p, initial_accumulator_value), []
    for t, g in enumerate(grads, start=1):
        g = g + weight_decay * p
        s = s + g**2
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s) + eps)
        out.append(p)
    return out


def _rmsprop(p, grads, lr, alpha, eps, weight_decay, momentum, centered):
    v, mean_g, buf, out = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    for g in grads:
        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g**2
        if centered:
            mean_g = alpha * mean_g + (1 - alpha) * g
            denom = np.sqrt(v - mean_g**2) + eps
        else:
            denom = np.sqrt(v) + eps
        buf = momentum * buf + g / denom  # momentum 0: the plain step
        p = p - lr * buf
        out.append(p)
    return out


def _nadam(p, grads, lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled_weight_decay):
    m, v, mu_prod, out = np.zeros_like(p), np.zeros_like(p), 1.0, []

    def mu_at(t):
        return beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))

    for t, g in enumerate(grads, start=1):
        if decoupled_weight_decay:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        mu_prod = mu_prod * mu_at(t)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        v_hat = v / (1 - beta2**t)
        m_bar = mu_at(t + 1) * m / (1 - mu_prod * mu_at(t + 1)) + (1 - mu_at(t)) * g / (1 - mu_prod)
        p = p - lr * m_bar / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


def _radam(p, grads, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay):
    m, v, out = np.zeros_like(p), np.zeros_like(p), []
    rho_inf = 2 / (1 - beta2) - 1
    for t, g in enumerate(grads, start=1):
        if decoupled_weight_decay:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)
        rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
        if rho_t > 5:
            r = math.sqrt(
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            )
            # torch's eps sits on sqrt(v), before the sqrt(1 - beta2^t) correction
            p = p - lr * r * m_hat * math.sqrt(1 - beta2**t) / (np.sqrt(v) + eps)
        else:
            p = p - lr * m_hat
        out.append(p)
    return out


def _adafactor(p, grads, lr, beta2_decay, eps1, eps2, d, weight_decay):
    """Shazeer & Stern's Algorithm 4 with torch's choices (no first moment, relative step
    capped by lr, decoupled decay); matrices are the last two axes, sliced in a loop."""
    eps1 = np.finfo(p.dtype).eps if eps1 is None else eps1
    factored = p.ndim >= 2
    if factored:
        lead = p.shape[:-2]
        rows = np.zeros((*lead, p.shape[-2]))
        cols = np.zeros((*lead, p.shape[-1]))
    else:
        var = np.zeros_like(p)
    out = []
    for t, g in enumerate(grads, start=1):
        w = t**beta2_decay  # 1 - beta2_t
        alpha = max(eps2, math.sqrt(np.mean(p**2))) * min(lr, 1 / math.sqrt(t))
        p = p * (1 - lr * weight_decay)
        if factored:
            v_hat = np.empty_like(g)
            for idx in np.ndindex(*lead):
                g2 = g[idx] ** 2
                rows[idx] = (1 - w) * rows[idx] + w * g2.mean(axis=1)
                cols[idx] = (1 - w) * cols[idx] + w * g2.mean(axis=0)
                v_hat[idx] = np.outer(rows[idx], cols[idx]) / max(rows[idx].mean(), eps1)
        else:
            var = (1 - w) * var + w * g**2
            v_hat = var
        u = g / np.sqrt(np.maximum(v_hat, eps1**2))
        p = p - alpha / max(1.0, math.sqrt(np.mean(u**2)) / d) * u
        out.append(p)
    return out


def _lion(p, grads, lr, beta1, beta2, weight_decay):
    """Chen et al. 2023, Algorithm 2 (decoupled weight decay)."""
    m, out = np.zeros_like(p), []
    for g in grads:
        update = np.sign(beta1 * m + (1 - beta1) * g) + weight_decay * p
        p = p - lr * update
        m = beta2 * m + (1 - beta2) * g
        out.append(p)
    return out


# registry name -> (reference, settings the row fixes)
REFERENCES: dict[str, tuple[Callable[..., list[np.ndarray]], dict[str, Any]]] = {
    "sgd": (_sgd, {}),
    "momentum": (_sgd, {}),
    "nesterov": (_sgd, {}),
    "adam": (_adam, {}),
    "adamw": (_adam, {"decoupled_weight_decay": True}),
    "adagrad": (_adagrad, {}),
    "rmsprop": (_rmsprop, {}),
    "nadam": (_nadam, {}),
    "radam": (_radam, {}),
    "adafactor": (_adafactor, {}),
    "lion": (_lion, {}),
}


def reference_run(
    name: str, hp: dict[str, Any], param: np.ndarray, grads: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """The parameter after each step, by the independent reference of ``name``."""
    fn, fixed = REFERENCES[name]
    return fn(np.array(param, dtype=np.float64), grads, **hp, **fixed)


# --------------------------------------------------------------------------- issue 13
# References for the rules added with issue 13, in the same plain loop form: the papers'
# equations (torch.optim's where torch has the algorithm), never calling the rules.


def _cautious_scale(u, g):
    """Liang et al. 2024: keep u where u g > 0, times numel / (kept + 1)."""
    keep = u * g > 0
    return np.where(keep, u, 0.0) * (u.size / (keep.sum() + 1))


def _adam_cautious(p, grads, cautious, **hp):
    if not cautious:
        return _adam(p, grads, **hp)
    lr, beta1, beta2, eps, wd = (hp[k] for k in ("lr", "beta1", "beta2", "eps", "weight_decay"))
    m, v, v_max, out = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    for t, g in enumerate(grads, start=1):
        if hp["decoupled_weight_decay"]:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        v_max = np.maximum(v_max, v)
        v_use = v_max if hp["amsgrad"] else v
        c1, c2 = (1 - beta1**t, 1 - beta2**t) if hp["bias_correction"] else (1.0, 1.0)
        u = (m / c1) / (np.sqrt(v_use / c2) + eps)
        p = p - lr * _cautious_scale(u, g)
        out.append(p)
    return out


def _lion_cautious(p, grads, cautious, **hp):
    if not cautious:
        return _lion(p, grads, **hp)
    lr, beta1, beta2, wd = hp["lr"], hp["beta1"], hp["beta2"], hp["weight_decay"]
    m, out = np.zeros_like(p), []
    for g in grads:
        u = np.sign(beta1 * m + (1 - beta1) * g)
        p = p - lr * (_cautious_scale(u, g) + wd * p)
        m = beta2 * m + (1 - beta2) * g
        out.append(p)
    return out


def _adamax(p, grads, lr, beta1, beta2, eps, weight_decay):
    """Kingma & Ba 2015, section 7.1, with torch's eps inside the max."""
    m, u, out = np.zeros_like(p), np.zeros_like(p), []
    for t, g in enumerate(grads, start=1):
        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        u = np.maximum(beta2 * u, np.abs(g) + eps)
        p = p - lr / (1 - beta1**t) * m / u
        out.append(p)
    return out


def _adadelta(p, grads, lr, rho, eps, weight_decay):
    """Zeiler 2012, Algorithm 1, times lr (torch)."""
    eg2, edx2, out = np.zeros_like(p), np.zeros_like(p), []
    for g in grads:
        g = g + weight_decay * p
        eg2 = rho * eg2 + (1 - rho) * g**2
        dx = -np.sqrt(edx2 + eps) / np.sqrt(eg2 + eps) * g
        edx2 = rho * edx2 + (1 - rho) * dx**2
        p = p + lr * dx
        out.append(p)
    return out


def _rprop(p, grads, lr, eta_minus, eta_plus, step_size_min, step_size_max):
    """Rprop without backtracking (torch): element by element, as the paper writes it."""
    size, prev = np.full(p.shape, float(lr)), np.zeros_like(p)
    out = []
    for g in grads:
        g = g.copy()
        for i in np.ndindex(*p.shape):
            agree = g[i] * prev[i]
            if agree > 0:
                size[i] = min(size[i] * eta_plus, step_size_max)
            elif agree < 0:
                size[i] = max(size[i] * eta_minus, step_size_min)
                g[i] = 0.0
            else:
                size[i] = min(max(size[i], step_size_min), step_size_max)
        p = p - np.sign(g) * size
        prev = g
        out.append(p)
    return out


def _asgd(p, grads, lr, lambd, alpha, t0, weight_decay):
    """torch.optim.ASGD's recursions for eta and mu, kept as running values."""
    eta, mu, ax, out = lr, 1.0, np.zeros_like(p), []
    for t, g in enumerate(grads, start=1):
        g = g + weight_decay * p
        p = p * (1 - lambd * eta) - eta * g
        ax = ax + mu * (p - ax) if mu != 1 else p.copy()
        eta = lr / (1 + lambd * lr * t) ** alpha
        mu = 1 / max(1, t - t0)
        out.append(p)
    return out


def _asgd_average(p, grads, **hp):
    """The averaged iterate after each step (ASGD's evaluation point)."""
    eta, mu, ax, out = hp["lr"], 1.0, np.zeros_like(p), []
    for t, g in enumerate(grads, start=1):
        g = g + hp["weight_decay"] * p
        p = p * (1 - hp["lambd"] * eta) - eta * g
        ax = ax + mu * (p - ax) if mu != 1 else p.copy()
        eta = hp["lr"] / (1 + hp["lambd"] * hp["lr"] * t) ** hp["alpha"]
        mu = 1 / max(1, t - hp["t0"])
        out.append(ax)
    return out


def _orthogonalise(b, a_, b_, c_, steps, eps):
    """Jordan's quintic Newton-Schulz iteration on one matrix, in its own dtype."""
    x = b.T if b.shape[0] > b.shape[1] else b
    x = x / max(np.linalg.norm(x), eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a_ * x + (b_ * gram + c_ * gram @ gram) @ x
    return x.T if b.shape[0] > b.shape[1] else x


def _muon(
    p,
    grads,
    lr,
    weight_decay,
    momentum,
    nesterov,
    ns_a,
    ns_b,
    ns_c,
    eps,
    ns_steps,
    adjust_lr_fn,
    ns_dtype,
):
    """torch.optim.Muon (its docstring's algorithm, with the EMA momentum of its code);
    the orthogonalisation in ``ns_dtype`` where one is given (NumPy: float32 only)."""
    rows, cols = p.shape
    if adjust_lr_fn == "match_rms_adamw":
        scale = 0.2 * math.sqrt(max(rows, cols))
    else:
        scale = math.sqrt(max(1, rows / cols))
    buf, out = np.zeros_like(p), []
    for g in grads:
        buf = momentum * buf + (1 - momentum) * g
        b = (1 - momentum) * g + momentum * buf if nesterov else buf
        o = _orthogonalise(b.astype(ns_dtype or p.dtype), ns_a, ns_b, ns_c, ns_steps, eps)
        p = p * (1 - lr * weight_decay) - lr * scale * o
        out.append(p)
    return out


def _schedule_free(p, grads, lr, beta, warmup_steps, r, weight_lr_power, normalise):
    """Defazio et al. 2024, Algorithm 1, with the package's warmup and averaging weights.

    Keeps x and z; the gradient is taken at y = (1 - beta) z + beta x, which is also the
    parameter the optimizer holds. ``normalise(g, t, y)`` is the base method's step
    direction. Returns (y after each step, x after each step)."""
    z, x, lr_max, weight_sum, ys, xs = p.copy(), p.copy(), -1.0, 0.0, [], []
    for t, g in enumerate(grads, start=1):
        y = (1 - beta) * z + beta * x
        gamma = lr * min(1.0, t / warmup_steps) if warmup_steps else lr
        lr_max = max(lr_max, gamma)
        weight = t**r * lr_max**weight_lr_power
        weight_sum += weight
        c = weight / weight_sum if weight_sum else 0.0
        z = z - gamma * normalise(g, t, y)
        x = (1 - c) * x + c * z
        ys.append((1 - beta) * z + beta * x)
        xs.append(x)
    return ys, xs


def _sgd_schedulefree_both(p, grads, lr, momentum, weight_decay, **avg):
    return _schedule_free(
        p, grads, lr, momentum, normalise=lambda g, t, y: g + weight_decay * y, **avg
    )


def _adamw_schedulefree_both(p, grads, lr, beta1, beta2, eps, weight_decay, **avg):
    v = [np.zeros_like(p)]

    def normalise(g, t, y):
        v[0] = beta2 * v[0] + (1 - beta2) * g**2
        return g / (np.sqrt(v[0] / (1 - beta2**t)) + eps) + weight_decay * y

    return _schedule_free(p, grads, lr, beta1, normalise=normalise, **avg)


def _sgd_schedulefree(p, grads, **hp):
    return _sgd_schedulefree_both(p, grads, **hp)[0]


def _adamw_schedulefree(p, grads, **hp):
    return _adamw_schedulefree_both(p, grads, **hp)[0]


def _ademamix(
    p, grads, lr, beta1, beta2, beta3, alpha, beta3_warmup, alpha_warmup, eps, weight_decay
):
    """Pagliardini et al. 2024, Algorithm 1 with the schedulers of its section 3 (the
    closed form of beta3's, logs of b + 1e-8 as in the authors' code)."""
    m1, m2, nu, out = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    ls, le = math.log(beta1 + 1e-8), math.log(beta3 + 1e-8)
    for t, g in enumerate(grads, start=1):
        a_t = alpha * min(1.0, t / alpha_warmup) if alpha_warmup else alpha
        if beta3_warmup and t < beta3_warmup:
            f = t / beta3_warmup
            b3 = min(math.exp(ls * le / ((1 - f) * le + f * ls)), beta3)
        else:
            b3 = beta3
        m1 = beta1 * m1 + (1 - beta1) * g
        m2 = b3 * m2 + (1 - b3) * g
        nu = beta2 * nu + (1 - beta2) * g**2
        m1_hat, nu_hat = m1 / (1 - beta1**t), nu / (1 - beta2**t)
        p = p - lr * ((m1_hat + a_t * m2) / (np.sqrt(nu_hat) + eps) + weight_decay * p)
        out.append(p)
    return out


def _mars(p, grads, lr, beta1, beta2, eps, weight_decay, gamma):
    """Yuan et al. 2024, Algorithm 2 (MARS-AdamW) in its approximate form: the previous
    step's gradient in place of the current batch's gradient at the previous point."""
    m, v, prev, out = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    for t, g in enumerate(grads, start=1):
        c = g + gamma * beta1 / (1 - beta1) * (g - prev)
        norm = np.linalg.norm(c)
        if norm > 1:
            c = c / norm
        m = beta1 * m + (1 - beta1) * c
        v = beta2 * v + (1 - beta2) * c**2
        step = (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
        p = p - lr * (step + weight_decay * p)
        prev = g
        out.append(p)
    return out


def _lamb(p, grads, lr, beta1, beta2, eps, weight_decay):
    """You et al. 2020, Algorithm 2 with phi = identity; ratio 1 if a norm is zero."""
    m, v, out = np.zeros_like(p), np.zeros_like(p), []
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        r = (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps) + weight_decay * p
        pn, rn = np.linalg.norm(p), np.linalg.norm(r)
        p = p - lr * (pn / rn if pn > 0 and rn > 0 else 1.0) * r
        out.append(p)
    return out


REFERENCES.update(
    {
        "adam": (_adam_cautious, {}),
        "adamw": (_adam_cautious, {"decoupled_weight_decay": True}),
        "lion": (_lion_cautious, {}),
        "adamax": (_adamax, {}),
        "adadelta": (_adadelta, {}),
        "rprop": (_rprop, {}),
        "asgd": (_asgd, {}),
        "muon": (_muon, {}),
        "sgd_schedulefree": (_sgd_schedulefree, {}),
        "adamw_schedulefree": (_adamw_schedulefree, {}),
        "ademamix": (_ademamix, {}),
        "mars": (_mars, {}),
        "lamb": (_lamb, {}),
    }
)

# The evaluation point after each step, for rules whose ``eval_point`` is not the param.
EVAL_REFERENCES: dict[str, Callable[..., list[np.ndarray]]] = {
    "asgd": _asgd_average,
    "sgd_schedulefree": lambda p, grads, **hp: _sgd_schedulefree_both(p, grads, **hp)[1],
    "adamw_schedulefree": lambda p, grads, **hp: _adamw_schedulefree_both(p, grads, **hp)[1],
}


def fits(name: str, shape: tuple[int, ...]) -> bool:
    """Whether a parameter of ``shape`` is one the rule takes (Muon: matrices only)."""
    ndim = get_rule(name).param_ndim
    return ndim is None or len(shape) == ndim


_LIFTED: dict[str, Any] = {}


def torch_reference(name: str) -> Any:
    """The ``torch.optim`` class a row is compared against, in full precision.

    torch.optim.Muon casts the Newton-Schulz input to bfloat16 whatever the parameter's
    dtype; the class returned for it runs torch's own code with that cast made a copy in
    the parameter's dtype, so that float64 comparisons can be tight. Others: torch's class.
    """
    import torch

    cls = getattr(torch.optim, get_spec(name).torch_reference.rsplit(".", 1)[1])
    if name != "muon":
        return cls
    if "muon" not in _LIFTED:

        class MuonFullPrecision(cls):
            """torch.optim.Muon without its bfloat16 cast; it has no ``maximize`` or
            ``foreach`` flags, so this takes them the way other torch classes do
            (``maximize`` negates the gradients around torch's step)."""

            def __init__(self, params, *args, maximize=False, foreach=None, **kwargs):
                assert not foreach, "torch.optim.Muon has no foreach path"
                super().__init__(params, *args, **kwargs)
                self.maximize = maximize

            def step(self, closure=None):
                grads = [p.grad for g in self.param_groups for p in g["params"]]
                cast = torch.Tensor.bfloat16
                torch.Tensor.bfloat16 = lambda t, memory_format=torch.preserve_format: t.clone(
                    memory_format=memory_format
                )
                try:
                    if self.maximize:
                        for g in grads:
                            if g is not None:
                                g.neg_()
                    return super().step(closure)
                finally:
                    torch.Tensor.bfloat16 = cast
                    if self.maximize:
                        for g in grads:
                            if g is not None:
                                g.neg_()

        _LIFTED["muon"] = MuonFullPrecision
    return _LIFTED["muon"]


# --------------------------------------------------------------------------- Prodigy, Lookahead
# Rows for the group-wide rule and the wrapper; their references are the papers' loops
# (Prodigy as the authors' prodigyopt 1.1 computes it, one d for the whole parameter).

_TABLE_PRODIGY_LOOKAHEAD: dict[str, list[tuple[dict[str, Any], str]]] = {
    "prodigy": [
        ({}, "defaults"),
        ({"beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.1, "d0": 1e-3}, "betas-wd"),
        ({"lr": 0.5, "d_coef": 2.0}, "half-lr"),
        ({"weight_decay": 0.1, "decouple": False, "use_bias_correction": True}, "l2-bias"),
        (
            {
                "safeguard_warmup": True,
                "growth_rate": 1.02,
                "d_coef": 0.5,
                "beta3": 0.9,
                "d0": 1e-4,
            },
            "safeguard-growth",
        ),
        ({"beta1": 0.0, "d0": 1e-3}, "no-momentum"),
    ],
    "lookahead": [
        ({}, "defaults"),
        ({"lr": 0.01, "k": 3, "alpha": 0.8, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6}, "betas"),
        ({"lr": 0.01, "k": 1, "alpha": 0.3, "weight_decay": 0.1, "amsgrad": True}, "k1-amsgrad"),
        ({"lr": 0.01, "k": 4, "cautious": True, "bias_correction": False}, "cautious"),
        ({"lr": 0.01, "alpha": 1.0, "weight_decay": 0.0}, "alpha-one"),
    ],
}
CASES = CASES + tuple(
    Case(name, hp, label) for name, rows in _TABLE_PRODIGY_LOOKAHEAD.items() for hp, label in rows
)
_SAMPLERS.update(
    {
        "d0": lambda r: float(10 ** r.uniform(-6, -3)),
        "d_coef": lambda r: float(r.uniform(0.5, 2.0)),
        "beta3": lambda r: float(r.uniform(0.8, 0.99)),
        "growth_rate": lambda r: float(r.uniform(1.01, 1.1)),
    }
)
_EXPLICIT_PRODIGY_LOOKAHEAD = [
    Invalid("prodigy", {"d0": 0.0}, "d0 must be > 0, got 0.0"),
    Invalid("prodigy", {"d_coef": -1.0}, "d_coef must be > 0, got -1.0"),
    Invalid("prodigy", {"growth_rate": 0.5}, "growth_rate must be None or >= 1, got 0.5"),
    Invalid("prodigy", {"beta3": 1.0}, "beta3 must be None or in [0, 1), got 1.0"),
    Invalid("prodigy", {"beta1": 1.0}, "beta1 must be in [0, 1), got 1.0"),
    Invalid("prodigy", {"eps": 0.0}, "eps must be > 0, got 0.0"),
    Invalid("prodigy", {"decouple": 1}, "decouple must be True or False, got 1"),
    Invalid("lookahead", {"k": 0}, "k must be an integer in [1, 1000000], got 0"),
    Invalid("lookahead", {"k": 2.5}, "k must be an integer in [1, 1000000], got 2.5"),
    Invalid("lookahead", {"alpha": 1.5}, "alpha must be in [0, 1], got 1.5"),
    Invalid("lookahead", {"beta1": 1.0}, "beta1 must be in [0, 1), got 1.0"),
    Invalid("lookahead", {"decoupled_weight_decay": False}, "unknown hyperparameter"),
]
INVALID = INVALID + tuple(_EXPLICIT_PRODIGY_LOOKAHEAD)


def _prodigy(
    p, grads, lr, beta1, beta2, beta3, eps, weight_decay, decouple, use_bias_correction,
    safeguard_warmup, d0, d_coef, growth_rate,
):  # fmt: skip
    """Mishchenko & Defazio 2024, Algorithm 4 (Adam form), as prodigyopt 1.1 computes it."""
    beta3 = math.sqrt(beta2) if beta3 is None else beta3
    growth = math.inf if growth_rate is None else growth_rate
    d, d_max, num = d0, d0, 0.0
    p0, s, m, v, out = p.copy(), np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    for k, g in enumerate(grads):
        bias = (
            math.sqrt(1 - beta2 ** (k + 1)) / (1 - beta1 ** (k + 1)) if use_bias_correction else 1
        )
        dlr = d * lr * bias
        if not decouple:
            g = g + weight_decay * p
        num = beta3 * num + (d / d0) * dlr * float(np.sum(g * (p0 - p)))
        m = beta1 * m + d * (1 - beta1) * g
        v = beta2 * v + d * d * (1 - beta2) * g * g
        s = beta3 * s + (d / d0) * (d if safeguard_warmup else dlr) * g
        denom = float(np.sum(np.abs(s)))
        d_hat = d_coef * num / denom if denom > 0 else d
        if lr > 0:
            d_next = max(d, d_hat) if d == d0 else d
            d_max = max(d_max, d_hat)
            d_next = min(d_max, d_next * growth)
        else:
            d_next = d
        if decouple:
            p = p - weight_decay * dlr * p
        p = p - dlr * (d_next * g if beta1 == 0 else m) / (np.sqrt(v) + d_next * eps)
        d = d_next
        out.append(p)
    return out


def _adam_stepper(hp):
    """One step of (decoupled, cautious, AMSGrad) Adam at a time, for a wrapper's loop."""
    lr, beta1, beta2, eps, wd = (hp[k] for k in ("lr", "beta1", "beta2", "eps", "weight_decay"))
    st = {"t": 0, "m": 0.0, "v": 0.0, "v_max": 0.0}

    def step(p, g):
        st["t"] += 1
        t = st["t"]
        if hp["decoupled_weight_decay"]:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        st["m"] = beta1 * st["m"] + (1 - beta1) * g
        st["v"] = beta2 * st["v"] + (1 - beta2) * g**2
        st["v_max"] = np.maximum(st["v_max"], st["v"])
        v_use = st["v_max"] if hp["amsgrad"] else st["v"]
        c1, c2 = (1 - beta1**t, 1 - beta2**t) if hp["bias_correction"] else (1.0, 1.0)
        u = (st["m"] / c1) / (np.sqrt(v_use / c2) + eps)
        return p - lr * (_cautious_scale(u, g) if hp["cautious"] else u)

    return step


def _lookahead_both(p, grads, k, alpha, **hp):
    """Zhang et al. 2019, Algorithm 1 around AdamW: (fast weights, slow weights) per step."""
    step, slow, fast, slows = _adam_stepper({**hp, "decoupled_weight_decay": True}), p, p, []
    out = []
    for t, g in enumerate(grads, start=1):
        fast = step(fast, g)
        if t % k == 0:
            slow = slow + alpha * (fast - slow)
            fast = slow
        out.append(fast)
        slows.append(slow)
    return out, slows


REFERENCES.update(
    {
        "prodigy": (_prodigy, {}),
        "lookahead": (lambda p, grads, **hp: _lookahead_both(p, grads, **hp)[0], {}),
    }
)
EVAL_REFERENCES["lookahead"] = lambda p, grads, **hp: _lookahead_both(p, grads, **hp)[1]
