"""The classic mixed-precision loop: autocast, loss scaling, accumulation, clipping, checkpoints.

A small MLP learns a smooth function of generated data. Each optimizer step averages the
gradient over 4 micro-batches, unscales it once (fp16), clips it to norm 1, skips the step
if it overflowed, and steps a warmup-cosine schedule. A checkpoint is written every 50
steps; run the script again with the same --checkpoint-dir and it resumes where it stopped.

    python examples/mixed_precision_training.py                  # fp16 with loss scaling
    python examples/mixed_precision_training.py --precision bf16
    python examples/mixed_precision_training.py --checkpoint-dir ckpt --steps 300
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

import optimlab
from optimlab import schedules
from optimlab.train import CheckpointManager, LossScaler, TrainStep


def make_data(n: int = 2048, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    y = torch.sin(x[:, :4].sum(1, keepdim=True)) + 0.1 * x[:, 4:5] ** 2
    return x, y


def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return torch.nn.functional.mse_loss(model(x).float(), y)  # the loss itself in fp32


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp16")
    parser.add_argument("--optimizer", default="adamw", choices=optimlab.list_optimizers())
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--accumulation", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (a model this small runs fastest on one)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    x, y = make_data()
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 128),
        torch.nn.GELU(),
        torch.nn.Dropout(0.05),
        torch.nn.Linear(128, 128),
        torch.nn.GELU(),
        torch.nn.Linear(128, 1),
    )
    optimizer = optimlab.create_optimizer(args.optimizer, model.parameters(), lr=args.lr)
    lr = schedules.get(
        "warmup_cosine", lr=args.lr, warmup_steps=args.steps // 10, total_steps=args.steps
    )
    scheduler = schedules.to_torch(lr, optimizer)
    train_step = TrainStep(
        model,
        optimizer,
        loss_fn,
        scheduler=scheduler,
        accumulation_steps=args.accumulation,
        clip_norm=1.0,
        precision=args.precision,
        # a short growth interval, to watch the scale adapt in 200 steps
        scaler=LossScaler(2.0**16, growth_interval=25) if args.precision == "fp16" else None,
    )
    directory = args.checkpoint_dir or tempfile.mkdtemp(prefix="optimlab-ckpt-")
    config = {
        "optimizer": args.optimizer,
        "lr": args.lr,
        "steps": args.steps,
        "batch": args.batch,
        "accumulation": args.accumulation,
    }
    checkpoints = CheckpointManager(
        directory,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        trainer=train_step,
        config=config,
    )
    restored = checkpoints.restore()
    if restored is not None:
        print(f"resumed from {restored.path} at step {restored.step}")

    print(f"{'step':>5} {'loss':>9} {'grad norm':>10} {'lr':>9} {'scale':>8} skipped")
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(1)
    while train_step.step_count < args.steps:
        idx = torch.randint(0, len(x), (args.batch,), generator=generator)
        report = train_step.step((x[idx], y[idx]))
        if report.skipped or report.step % 20 == 0:
            scale = "-" if report.scale is None else f"{report.scale:g}"
            print(
                f"{report.step:5d} {report.loss:9.5f} {report.grad_norm:10.4f} "
                f"{report.lr:9.2e} {scale:>8} {'yes' if report.skipped else ''}"
            )
        if report.step % 50 == 0 and not report.skipped:
            checkpoints.save()
    model.eval()
    with torch.no_grad():
        final = float(loss_fn(model, (x, y)))
    print(
        f"final full-data loss {final:.5f} after {train_step.step_count} steps "
        f"({train_step.skipped_count} skipped) in {time.perf_counter() - start:.1f} s; "
        f"checkpoints in {directory}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
