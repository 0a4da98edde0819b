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
        if h.kind == "bool":
            out += [
                Invalid(name, {h.name: 1}, f"{h.name} must be True or False, got 1"),
                Invalid(name, {h.name: "yes"}, f"{h.name} must be True or False"),
            ]
            continue
        none = "None or " if h.optional else ""
        out += [
            Invalid(name, {h.name: math.nan}, f"{h.name} must be {none}a finite number"),
            Invalid(name, {h.name: math.inf}, f"{h.name} must be {none}a finite number"),
            Invalid(name, {h.name: True}, f"{h.name} must be {none}a number, got True"),
            Invalid(name, {h.name: "0.1"}, f"{h.name} must be {none}a number, got '0.1'"),
        ]
        if not h.optional:
            out.append(Invalid(name, {h.name: None}, f"{h.name} must be a number, got None"))
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
]

INVALID: tuple[Invalid, ...] = tuple(
    [inv for spec in REGISTRY for inv in _generated_invalid(spec.name)] + _EXPLICIT
)


# --------------------------------------------------------------------------- torch names

_TORCH_LACKS = {"ema": False, "bias_correction": True}  # option: the only value torch has


def torch_kwargs(name: str, hp: dict[str, Any]) -> dict[str, Any] | None:
    """``hp`` (complete) in the argument names of the row's torch reference class, or None
    when torch has no such class or option."""
    if get_spec(name).torch_reference is None:
        return None
    out = dict(hp)
    for option, torch_value in _TORCH_LACKS.items():
        if option in out and out.pop(option) != torch_value:
            return None
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
