"""The README's Python example runs as written, and its commands name what exists."""

import re
from pathlib import Path

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_readme_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (block,) = re.findall(r"```python\n(.*?)```", README, re.S)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert abs(float(namespace["theta"][0]) - 10.0) > 1.0  # Adam moved theta toward 0
    assert "adam" in namespace["results"].table()
    assert isinstance(namespace["opt"], namespace["torch"].optim.Optimizer)
    # the scheduler set the warmup's first learning rate, below the peak
    first = namespace["ol"].schedules.get(
        "warmup_cosine", lr=3e-4, total_steps=10_000, warmup_steps=500
    )(0)
    assert namespace["opt"].param_groups[0]["lr"] == first < 3e-4


def test_readme_commands_are_cli_commands():
    from optimlab.cli import COMMANDS

    used = set(re.findall(r"^optimlab ([a-z-]+)", README, re.M))
    assert used and used <= set(COMMANDS), used - set(COMMANDS)
