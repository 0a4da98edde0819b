"""The version of optimlab: one place, read by the package, the store's run ids and the build."""

__version__ = "0.1.0"
