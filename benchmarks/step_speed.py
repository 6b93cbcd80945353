"""Time one Co-teaching training step of two default CNNs in each memory layout and Adam update.

    python -m benchmarks.step_speed              # 2 threads, 8 interleaved repeats of 25 steps each

Variants: NCHW or channels-last (NHWC) weights and inputs, Adam's multi-tensor (``foreach``) or
fused update. The variants take turns, so a drift of the machine's speed hits them alike; the
minimum and the median over the repeats are printed (seconds per 25 steps of batch 128, random
28×28 images).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch


def build_variant(channels_last: bool, fused: bool) -> tuple[list[torch.nn.Module], torch.optim.Adam]:
    """Two fresh default CNNs in the given layout and an Adam with the given update over both."""
    from labelclean._nets import SmallCNN

    nets = [SmallCNN(1, 28, 28, 10) for _ in range(2)]
    if not channels_last:  # the same layers as a plain Sequential: NCHW weights, inputs left as they come
        nets = [torch.nn.Sequential(*net).to(memory_format=torch.contiguous_format) for net in nets]
    params = [p for net in nets for p in net.parameters()]
    return nets, torch.optim.Adam(params, lr=1e-3, fused=fused, foreach=None if fused else True)


def step_seconds(channels_last: bool, fused: bool, steps: int, generator: torch.Generator) -> float:
    """Seconds for ``steps`` Co-teaching steps of two fresh default CNNs on random MNIST-sized batches."""
    from labelclean.coteaching import coteaching_loss

    nets, optimizer = build_variant(channels_last, fused)
    x = torch.randn((steps, 128, 1, 28, 28), generator=generator)
    y = torch.randint(0, 10, (steps, 128), generator=generator)
    t0 = time.perf_counter()
    for xb, yb in zip(x, y):
        loss, _ = coteaching_loss(nets[0](xb), nets[1](xb), yb, 0.3, True, 1.0, 0.95)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--steps", type=int, default=25)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    variants = list(itertools.product([False, True], [False, True]))
    step_seconds(True, True, 5, gen)  # warm-up: first-call allocations and kernel selection
    seconds: dict[tuple[bool, bool], list[float]] = {v: [] for v in variants}
    for _ in range(args.repeats):
        for v in variants:
            seconds[v].append(step_seconds(*v, args.steps, gen))
    print(f"| layout | Adam update | min s / {args.steps} steps | median s / {args.steps} steps |")
    print("| --- | --- | ---: | ---: |")
    for (channels_last, fused), values in seconds.items():
        layout = "channels-last" if channels_last else "NCHW"
        update = "fused" if fused else "multi-tensor"
        print(f"| {layout} | {update} | {min(values):.3f} | {statistics.median(values):.3f} |")


if __name__ == "__main__":
    main()
