"""torch.compile's on-disk cache: one per project, filled once per train stage.

Inductor keeps what it compiled on disk (FX graphs, AOTAutograd graphs, C++ kernels), keyed by
the traced graph with its shapes and dtypes, the thread count, torch's version and inductor's
settings: another model, batch, input size, precision or model code is a miss and compiles
again (tests/pipeline/test_compile_cache.py changes the model code and sees it compile). By
default that cache is /tmp/torchinductor_<user>, shared by every project on the machine and lost
with /tmp. Here it is the project's own
`.cache/torch-compile` (git-ignored): every experiment of the project finds it, also
`dvc exp run --temp` and queued runs, which run in a copy under .dvc/tmp/exps and name the
project in DVC_ROOT (saltseg.project). A TORCHINDUCTOR_CACHE_DIR set by the user wins.

Folds side by side would each compile the same graphs at once: three cold compilations on two
cores took 77 s of the first epoch (benchmarks/results.md). `warm` compiles them once in the
train stage's process before the fold processes start; each fold then loads them in seconds.
It compiles the validation graph in a second process meanwhile: Inductor's C++ wrapper
(saltseg.hardware) builds a graph in a few g++ calls, one after another on one core, so the two
take about the wall time of the longer, the train graphs (benchmarks/results.md, "Compile cost").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from saltseg.errors import SaltError
from saltseg.project import use_compile_cache

if TYPE_CHECKING:
    from saltseg.config import ModelConfig, Params
    from saltseg.hardware import Policy


def warm(params: Params, policy: Policy) -> None:
    """Compile the graphs every fold process of the train stage runs under `policy` (compiling),
    once: one training step (forward and backward) here and one validation batch in a process
    beside it, with the folds' batch, input size, precision, memory format and train.threads
    threads. Prints what it took and how many graphs were compiled or found in the cache."""
    from saltseg.config import params_to_dict

    started = time.monotonic()
    spec = {"params": params_to_dict(params), "precision": policy.precision, "device": policy.device.type}
    spec["memory_format"] = policy.format_name
    threads = str(params.train.threads)
    evaluation = subprocess.Popen(
        [sys.executable, "-m", "saltseg.compile_cache", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"OMP_NUM_THREADS": threads},  # as the folds: no more threads than they compute with
    )
    try:
        found = _train_step(params, policy)
        answer, _ = evaluation.communicate()
    except BaseException:
        evaluation.kill()  # rather than wait for a compile nobody will use
        evaluation.wait()
        raise
    if evaluation.returncode != 0:
        code = evaluation.returncode
        raise SaltError(f"compile: the validation graph's process failed (exit {code}; its error above)")
    for name, count in json.loads(answer.strip().splitlines()[-1]).items():
        found[name] += count
    print(
        f"compile: the folds' graphs ready in {time.monotonic() - started:.1f} s "
        f"({found['fxgraph_cache_miss']} compiled, {found['fxgraph_cache_hit']} from the cache "
        f"{use_compile_cache()})",
        file=sys.stderr,
    )


def _model(cfg: ModelConfig, policy: Policy, threads: int):  # noqa: ANN202 - (module, compiled module)
    import torch

    from saltseg.models import build_model

    torch.set_num_threads(threads)  # part of the kernels' key: the folds' count
    model = policy.place(build_model(cfg))
    return model, policy.compiled(model)


def _graph_counts() -> dict[str, int]:
    from torch._dynamo.utils import counters

    return {name: counters["inductor"][name] for name in ("fxgraph_cache_miss", "fxgraph_cache_hit")}


def _train_step(params: Params, policy: Policy) -> dict[str, int]:
    """One training step's graphs (forward, backward), compiled or loaded here."""
    import torch

    from saltseg.data.tgs import SIZE
    from saltseg.loop import logits_of
    from saltseg.models.heads import SegOutput

    model, forward = _model(params.model, policy, params.train.threads)
    batch = params.train.batch_size
    model.train()
    x = torch.zeros(batch, 1, SIZE, SIZE)
    out = logits_of(forward, x, params.model, policy, torch.zeros(batch), params.train.loss_at_input)
    parts = (out.logits, *out.aux, out.has_salt) if isinstance(out, SegOutput) else (out,)
    sum(part.sum() for part in parts).backward()
    return _graph_counts()


def _validation_batch(params: Params, policy: Policy) -> dict[str, int]:
    """One validation batch's graph, compiled or loaded here (a fold's first call in eval mode
    traces the same graph: the same cache entry)."""
    import torch

    from saltseg.data.tgs import SIZE
    from saltseg.loop import predict_logits

    model, forward = _model(params.model, policy, params.train.threads)
    batch = params.train.batch_size
    model.eval()
    images = torch.zeros(batch, SIZE, SIZE, dtype=torch.uint8)
    predict_logits(forward, images, params.model, policy, batch, torch.zeros(batch))
    return _graph_counts()


def _main(spec: str) -> None:
    from saltseg import hardware
    from saltseg.config import params_from_dict

    given = json.loads(spec)
    policy = hardware.policy(given["precision"], given["device"], given["memory_format"], "on")
    print(json.dumps(_validation_batch(params_from_dict(given["params"]), policy)))


if __name__ == "__main__":
    _main(sys.argv[1])
