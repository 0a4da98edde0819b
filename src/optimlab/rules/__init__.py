"""One pure rule per algorithm. See ``base.Rule`` for the contract."""

from .base import Hyper, Rule

__all__ = ["Hyper", "Rule"]
