"""docs/reliability.md names the test of each fault: every test it names exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_the_fault_table_names_exists() -> None:
    text = (ROOT / "docs" / "reliability.md").read_text()
    named: list[tuple[str, str | None]] = []
    last = None
    for token in re.findall(r"`([^`]+)`", text):
        m = re.fullmatch(r"(?:tests/)?(test_\w+\.py)(?:::(\w+))?", token)
        if m:
            last = m.group(1)
            named.append((last, m.group(2)))
        elif (m := re.fullmatch(r"::(\w+)", token)) and last:
            named.append((last, m.group(1)))
    assert len(named) > 40
    for file, name in named:
        source = (ROOT / "tests" / file).read_text()
        assert name is None or re.search(rf"^def {name}\(", source, re.M), (file, name)
