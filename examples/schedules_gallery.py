"""Draw every learning-rate schedule and an LR range test: docs/img/schedules.png, lr_find.png.

Run from the repository root:  python examples/schedules_gallery.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from optimlab import schedules  # noqa: E402

STEPS = 1000


def gallery(path: Path) -> None:
    names = schedules.list()
    cols = 4
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(14, 2.6 * rows), layout="constrained", sharex=True
    )
    for ax, name in zip(axes.flat, names, strict=False):
        schedules.plot(name, STEPS, ax=ax)
        ax.get_legend().remove()
        ax.set_title(name, fontsize=11)
        ax.set_xlabel("")
        ax.set_ylabel("")
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.supxlabel("step (of 1000, each built with get(name, total_steps=1000))")
    fig.supylabel("multiple of the base learning rate")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def lr_find_figure(path: Path) -> None:
    from optimlab import problems
    from optimlab.train.lr_range_test import lr_find_task

    task = problems.get("mlp").torch_task(0)
    result = lr_find_task(task, "adam", start_lr=1e-6, end_lr=10.0, num_iter=100)
    fig = result.plot()
    fig.axes[0].set_title("LR range test: Adam on the mlp problem")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/img", help="folder for the PNG files")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    gallery(out / "schedules.png")
    lr_find_figure(out / "lr_find.png")
    print(f"wrote {out / 'schedules.png'} and {out / 'lr_find.png'}")


if __name__ == "__main__":
    main()
