"""The HTML report: one self-contained file with the protocol, tables and embedded PNG
figures, regenerated from the store alone."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest

from optimlab.lab import api
from optimlab.lab.report import render, write_report


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    api.sweep(  # random starts: seeds change the start, so 2 seeds are 2 different runs
        "rosenbrock:start=random",
        {"adam": {"lr": "1e-2:1e-1:2"}, "sgd": {"lr": [1e-3, 0.1]}},
        30,
        seeds=2,
        out=str(out),
    )
    api.sweep("ravine", {"adam": {"lr": [0.05]}}, 20, seeds=1, schedules=["cosine"], out=str(out))
    return out


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_report_has_protocol_tables_and_embedded_figures(folder: Path) -> None:
    path = write_report(folder)
    assert path == folder / "report.html"
    html = path.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    # protocol of each study
    for needle in (
        "rosenbrock(start=random) - 30 steps",
        "ravine - 20 steps",
        "30 steps per run",
        "2 (0, 1); a seed changes the start",
        "2 learning rates from 0.01 to 0.1",
        "schedules: cosine",
        "8 (6 finished, 2 diverged, 0 failed)",
        "loss at the final point, after the last update",
    ):
        assert needle in html, needle
    # tables state what is ranked, the budget and the seeds; the ravine ran one seed,
    # which its seeds cannot change, and says so
    assert (
        "Best setting per optimizer - rosenbrock(start=random), budget 30 steps, 2 seeds, "
        "ranked by loss" in html
    )
    assert "loss against learning rate - rosenbrock(start=random), budget 30 steps, 2 seeds" in html
    assert "ravine, budget 20 steps, 1 run (seeds change nothing here)" in html
    # two tables per study and the summary across the two problems
    assert html.count("<table>") == 5 and "<h2>Across problems</h2>" in html
    assert "adam lr=0.1" in html or "adam lr=0.01" in html
    assert "1/1" in html or "2/2" in html
    assert "<p class='verdict'>Best: <b>" in html
    # figures per study: loss, gradient and update norms, trajectories, sensitivity (and
    # the ravine's schedule); then the performance profile across the two problems
    images = _images(html)
    assert len(images) == 10
    assert all(img.startswith(b"\x89PNG\r\n\x1a\n") and len(img) > 5000 for img in images)
    for alt in (
        "loss curves",
        "gradient and update norms",
        "trajectories",
        "LR sensitivity",
        "schedules",
        "performance profile",
    ):
        assert f'alt="{alt}"' in html
    # self-contained: no external resources
    assert not re.search(r'(src|href)="(?!data:)', html)
    assert _unbalanced_tags(html) == []


def _unbalanced_tags(html: str) -> list[str]:
    from html.parser import HTMLParser

    void = {"meta", "img", "br", "hr", "link", "input"}

    class Checker(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []
            self.errors: list[str] = []

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag not in void:
                self.stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            if self.stack and self.stack[-1] == tag:
                self.stack.pop()
            else:
                self.errors.append(tag)

    checker = Checker()
    checker.feed(html)
    return checker.errors + checker.stack


def test_report_reads_only_from_the_store(folder: Path, tmp_path: Path) -> None:
    shutil.copy(folder / "optimlab.sqlite", tmp_path / "optimlab.sqlite")
    original = render(folder)
    copy = render(tmp_path)

    def strip(html: str) -> str:  # the header names the folder and the time
        return re.sub(r"<p class='note'>.*?</p>", "", html, count=1)

    assert strip(copy) == strip(original)


def test_report_of_an_empty_store(tmp_path: Path) -> None:
    from optimlab.lab.store import Store

    Store(tmp_path).close()
    html = render(tmp_path)
    assert "No finished runs yet" in html


def test_report_lists_failed_runs_and_escapes_text(tmp_path: Path) -> None:
    from optimlab.lab.config import expand_grid
    from optimlab.lab.store import Store

    configs = expand_grid("ravine", ["adam"], [0.1], 5, 1)
    with Store(tmp_path) as store:
        store.add(configs)
        store.claim([configs[0].run_id])
        store.fail([configs[0].run_id], "RuntimeError: <b>bad</b> & worse")
    html = render(tmp_path)
    assert "<h2>Failed runs</h2>" in html
    assert "RuntimeError: &lt;b&gt;bad&lt;/b&gt; &amp; worse" in html
    assert "<b>bad</b>" not in html


def test_report_when_every_loss_is_nan(tmp_path: Path) -> None:
    # a problem whose loss is NaN from the start: every run diverges at step 0 with no
    # finite loss at all; the report must still be written (no log axis without data)
    import numpy as np

    from optimlab.lab.config import expand_grid
    from optimlab.lab.record import Trace
    from optimlab.lab.store import Store

    configs = expand_grid("ravine", ["adam", "sgd"], [0.01, 0.1], 5, 2)
    nan = np.array([np.nan])
    with Store(tmp_path) as store:
        store.add(configs)
        store.claim([c.run_id for c in configs])
        store.finish(
            {
                c.run_id: Trace(
                    status="diverged",
                    loss=nan,
                    lr=np.array([0.1]),
                    grad_norm=nan,
                    update_norm=nan,
                    time=np.zeros(1),
                    trajectory=np.full((1, 2), np.nan),
                    diverged_step=0,
                )
                for c in configs
            }
        )
    html = render(tmp_path)
    assert "Best setting per optimizer" in html
    # no empty plot: a sentence says why there is no loss curve; the LR sensitivity
    # figure still shows where every setting diverged (crosses)
    assert "No loss curve: every run diverged before a finite loss was recorded." in html
    assert 'alt="loss curves"' not in html and 'alt="trajectories"' not in html
    assert re.findall(r'alt="([^"]+)"', html) == ["LR sensitivity"]


@pytest.mark.parametrize("backend", ["svg", "pdf"])
def test_writing_a_report_keeps_the_users_matplotlib_backend(folder: Path, backend: str) -> None:
    # a notebook selects its own (inline) backend: writing a report must neither switch it
    # nor open pyplot figures; in a fresh process so no other test's pyplot use interferes
    import subprocess
    import sys

    code = (
        "import sys, matplotlib\n"
        f"matplotlib.use({backend!r})\n"
        "from optimlab.lab.report import write_report\n"
        f"write_report({str(folder)!r}, {str(folder / 'r.html')!r})\n"
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [backend, "False"]
    assert len(_images((folder / "r.html").read_text())) == 10
