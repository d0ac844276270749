"""What three choices inside a fold's train step cost, each timed against its alternative.

One process, one thread (a fold's train.threads), the profile's model, batch and policy
(compiled), the two sides of each choice timed in alternating blocks, so that the machine's
drift between rounds (~6% on the 2-core CPU) falls on both alike; the median block is reported.

- `wrapper`: the whole train step (forward, the stage-1 loss, backward, fused Adam) with the
  graphs built by Inductor's Python wrapper or its C++ wrapper (saltseg.hardware);
- `adam`: the optimizer step alone, torch's default single-tensor loop on the CPU, its foreach
  form, and the fused kernel (saltseg.train.make_optimizer);
- `lovasz sort`: the Lovasz hinge's sort of a step's errors (32 x 2,304 at 48 px, four times a
  step with deep supervision) over every error and over the errors clamped at 0
  (saltseg.losses._lovasz_rows), on the errors of real logits: the model's after a few steps.

    python benchmarks/step_parts.py --out-markdown benchmarks/results.md   # ~4 min on 2 cores
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Train step parts"


def alternate(sides: dict[str, Callable[[], object]], rounds: int, calls: int) -> dict[str, float]:
    """Median milliseconds a call of each side, over `rounds` blocks of `calls`, sides alternating."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, call in sides.items():
            call()  # untimed: whatever the other side left in the caches
            started = time.perf_counter()
            for _ in range(calls):
                call()
            times[name].append((time.perf_counter() - started) / calls * 1000)
    return {name: statistics.median(ms) for name, ms in times.items()}


def measure(profile: Path, rounds: int) -> tuple[dict[str, dict[str, float]], str]:
    import torch
    import torch._inductor.config as inductor_config

    from saltseg import hardware
    from saltseg.data.tgs import SIZE
    from saltseg.loop import logits_of, train_targets
    from saltseg.losses import stage_train_loss
    from saltseg.models import build_model
    from saltseg.profiles import resolve

    params = resolve(profile)
    torch.set_num_threads(params.train.threads)
    rt = params.runtime
    policy = hardware.policy(
        params.train.precision, rt.device, rt.memory_format, "on", start_filters=params.model.start_filters
    )
    gen = torch.Generator().manual_seed(0)
    bs, at_input = params.train.batch_size, params.train.loss_at_input
    x, depths = torch.rand(bs, 1, SIZE, SIZE, generator=gen), torch.rand(bs, generator=gen)
    masks = (torch.rand(bs, 1, SIZE, SIZE, generator=gen) > 0.6).float()
    y, salt = train_targets(masks, params.model, at_input), masks.flatten(1).amax(1)
    loss_fn = stage_train_loss(params.train, params.train.stages[0].loss)

    def trainer(cpp: bool) -> tuple[Callable[[], None], torch.nn.Module]:
        torch.manual_seed(0)
        model = policy.place(build_model(params.model))
        forward = policy.compiled(model)  # compiles at the first call, under the patch below
        optimizer = torch.optim.Adam(model.parameters(), 1e-3, fused=True)

        def step() -> None:
            with inductor_config.patch(cpp_wrapper=cpp):
                model.train()
                loss = loss_fn(logits_of(forward, x, params.model, policy, depths, at_input), y, salt)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        return step, model

    python_step, _ = trainer(False)
    cpp_step, model = trainer(True)
    wrappers = {"Python wrapper": python_step, "C++ wrapper": cpp_step}
    results = {"train step (stage 1)": alternate(wrappers, rounds, 20)}

    grads = [torch.randn_like(p) for p in model.parameters()]
    optimizers = {
        "single-tensor loop (torch's CPU default)": torch.optim.Adam(model.parameters(), 1e-3, foreach=False),
        "foreach": torch.optim.Adam(model.parameters(), 1e-3, foreach=True),
        "fused": torch.optim.Adam(model.parameters(), 1e-3, fused=True),
    }
    for p, g in zip(model.parameters(), grads, strict=True):
        p.grad = g

    results["Adam step"] = alternate({name: o.step for name, o in optimizers.items()}, rounds, 50)

    for _ in range(20):  # logits of a model that has begun to learn: most pixels right
        cpp_step()
    model.eval()
    with torch.no_grad():
        logits = logits_of(model, x, params.model, policy, depths, at_input=True)
    labels = y.flatten(1)
    errors = 1.0 - logits.flatten(1) * (2.0 * labels - 1.0)
    clamped = errors.clamp(min=0.0)
    share = (errors > 0).float().mean().item()

    def sorting(values: torch.Tensor) -> Callable[[], object]:
        return lambda: torch.sort(values, dim=1, descending=True, stable=True)

    sorts = {"every error": sorting(errors), f"clamped at 0 ({share:.0%} above it)": sorting(clamped)}
    results["Lovasz sort, 32 x 2,304"] = alternate(sorts, rounds, 50)
    return results, policy.describe()


def table(results: dict[str, dict[str, float]], profile: str, policy: str, load: tuple, rounds: int) -> str:
    from train_throughput import machine

    lines = [
        f"### {datetime.date.today().isoformat()} — cpu",
        "",
        f"Machine: {machine('cpu')}; load average {load[0]:.1f} before, {load[1]:.1f} after  ",
        f"Profile: {profile} ({policy}, 1 thread); median of {rounds} alternating blocks  ",
        "Command: `python benchmarks/step_parts.py`",
        "",
        "| part | choice | ms |",
        "| --- | --- | ---: |",
    ]
    for part, sides in results.items():
        lines += [f"| {part} | {side} | {ms:.2f} |" for side, ms in sides.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", type=Path, default=ROOT / "configs/real-cpu.yaml")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out-markdown", type=Path, help="append the table to this file's step-parts section")
    args = p.parse_args(argv)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="step_parts_") as cache:
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", cache)  # cold: both wrappers compile here
        results, described = measure(args.profile, args.rounds)
    sys.path.insert(0, str(Path(__file__).parent))
    from train_job import profile_name

    load = (load_before, os.getloadavg()[0])
    block = table(results, profile_name(args.profile), described, load, args.rounds)
    print("\n" + block)
    if args.out_markdown:
        from train_throughput import append_section

        append_section(args.out_markdown, block, SECTION)


if __name__ == "__main__":
    main(sys.argv[1:])
