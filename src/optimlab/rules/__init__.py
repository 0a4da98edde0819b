"""One pure rule per algorithm. See ``base.Rule`` for the contract.

What the rule form cannot hold, and why (so these are not registered):

- ``torch.optim.LBFGS`` needs a closure it calls several times per step (line search) and
  state shared by every parameter (the history of flattened steps and gradient
  differences, one curvature estimate for the whole model): not a function of one
  parameter's gradient and state.
- ``torch.optim.SparseAdam`` exists for sparse gradients (it updates only the rows a
  batch touched, leaving the others' moments stale on purpose); rules take dense
  arrays, and dense Adam is ``adam``.
- SOAP (Vyas et al. 2024) runs Adam in the eigenbasis of Shampoo's preconditioners: per
  matrix it keeps two factor matrices (m x m and n x n), refreshes their eigenvectors
  every ``precondition_frequency`` steps with a QR iteration, and rotates the moments at
  each refresh. That fits a non-elementwise rule in principle, but its per-step state
  is quadratic in each dimension and the eigendecomposition needs ``xp.linalg``
  (``eigh``/``qr``) with batched leading axes, which the array namespace does not yet
  offer; it is left for a rule of its own with those primitives.

Prodigy estimates one step size from every parameter of a param group: it is an
ordinary rule that reduces over its whole parameter, marked ``group_wide`` so that the
torch classes and the lab hand it a group's parameters as one flat vector
(``prodigy.py``). Lookahead is a function from a rule to a rule (``lookahead.py``); the
registry holds it around AdamW.
"""

from .base import Hyper, Rule

__all__ = ["Hyper", "Rule"]
