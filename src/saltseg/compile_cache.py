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
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from saltseg.project import use_compile_cache

if TYPE_CHECKING:
    from saltseg.config import Params
    from saltseg.hardware import Policy


def warm(params: Params, policy: Policy) -> None:
    """Compile the graphs every fold process of the train stage runs under `policy` (compiling),
    here and once: one training step (forward and backward) and one validation batch, with the
    folds' batch, input size, precision, memory format and train.threads threads. Prints what it
    took and how many graphs it compiled or found in the cache."""
    import torch
    from torch._dynamo.utils import counters

    from saltseg.data.tgs import SIZE
    from saltseg.loop import logits_of, predict_logits
    from saltseg.models import build_model
    from saltseg.models.heads import SegOutput

    torch.set_num_threads(params.train.threads)  # part of the kernels' key: the folds' count
    started = time.monotonic()
    model = policy.place(build_model(params.model))
    forward = policy.compiled(model)
    batch = params.train.batch_size
    images, depths = torch.zeros(batch, SIZE, SIZE, dtype=torch.uint8), torch.zeros(batch)
    model.train()
    x = images.float().div_(255.0).unsqueeze(1)
    out = logits_of(forward, x, params.model, policy, depths, params.train.loss_at_input)
    parts = (out.logits, *out.aux, out.has_salt) if isinstance(out, SegOutput) else (out,)
    sum(part.sum() for part in parts).backward()
    model.eval()
    predict_logits(forward, images, params.model, policy, batch, depths)
    found = counters["inductor"]
    print(
        f"compile: the folds' graphs ready in {time.monotonic() - started:.1f} s "
        f"({found['fxgraph_cache_miss']} compiled, {found['fxgraph_cache_hit']} from the cache "
        f"{use_compile_cache()})",
        file=sys.stderr,
    )
