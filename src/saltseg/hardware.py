"""The one home of the hardware policy: device, precision, memory format, compilation.

Training, validation, evaluation, prediction, serving and the benchmarks all ask
`policy(...)` how to run. train.precision is resolved once, on the machine that trains; the
checkpoint records the result ("bf16" or "fp32"), and evaluation, prediction, pseudo-labelling
and serving use that (`for_inference`), whatever the machine that predicts.

`auto` resolves to what measurably pays on each device (benchmarks/results.md):
- precision: bf16 autocast where the hardware computes bf16 natively (CUDA GPUs with bf16;
  CPUs with AVX512-BF16 or AMX), fp32 elsewhere, where bf16 would only be emulated;
- memory format: channels_last on GPUs and CPUs, but contiguous for narrow models (under
  NARROW start filters) on CPUs with AMX. On the 2-core Xeon with AMX, bf16 train steps: the
  seed's U-Net, 16 filters at 128 px, 54 img/s channels_last against 40 contiguous; 8 filters
  at 64 px 316 against 405. On the 2-core AMD EPYC (AVX512-BF16, no AMX), the real-cpu model
  (8 filters at 48 px, one thread): 110 ms a step channels_last against 135 contiguous
  (benchmarks/results.md, "Cold start");
- compile: where it pays back for the run at hand (`compile_decision`): the train stage's
  optimizer steps (every fold's) times what a compiled step saves must exceed one cold
  compilation of the train and eval graphs, which the stage pays once for all its folds
  (saltseg.compile_cache). In the real-cpu train stage on the 2-core CPU compiling cost 64 s and
  saved 10.6 ms of stage time a step: it pays from ~6,000 steps, so the profile's 40 + 20 epochs
  compile (21,600 steps) and 4 + 2 do not (2,160).
  The default profile's 360 steps on 300 synthetic images do not.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import sys
from dataclasses import dataclass

import torch
from torch import nn

from saltseg.config import Params, RuntimeConfig
from saltseg.errors import SaltError

PRECISIONS = ("auto", "bf16", "fp32")
NARROW = 16  # start filters below which runtime.memory_format auto is contiguous on an AMX CPU
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
COMPILE = ("auto", "on", "off")


def pick_device(name: str = "auto") -> torch.device:
    """ "auto" -> CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 in hardware (else autocast would only emulate it, slowly)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


@dataclass(frozen=True)
class Policy:
    """How to run a model: where, in which autocast dtype (None: fp32), memory format, compiled or not."""

    device: torch.device
    autocast_dtype: torch.dtype | None = None
    memory_format: torch.memory_format = torch.contiguous_format
    compile: bool = False

    @property
    def precision(self) -> str:
        return "fp32" if self.autocast_dtype is None else "bf16"

    @property
    def format_name(self) -> str:
        """runtime.memory_format's name for the resolved format."""
        return "channels_last" if self.memory_format == torch.channels_last else "contiguous"

    def describe(self) -> str:
        return f"{self.device.type} {self.precision} {self.format_name}{' compiled' if self.compile else ''}"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def place(self, model: nn.Module) -> nn.Module:
        """Move the module to the device and memory format (in place; returns it)."""
        return model.to(self.device, memory_format=self.memory_format)

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        """A float (N, C, H, W) batch on the device, in the memory format."""
        return x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def compiled(self, model: nn.Module) -> nn.Module:
        """The module to call for forward passes; the original keeps the weights and state dict."""
        if not self.compile:
            return model
        from saltseg.project import use_compile_cache

        use_compile_cache()
        if self.device.type == "cpu":
            # Inductor looks for CUDA while it builds CPU kernels and warns once per process that
            # there is none ("No CUDA runtime is found"): noise on a CPU, where none is wanted.
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            # Its C++ wrapper builds a graph's kernels with the code that calls them, 9 libraries
            # (one g++ call each) for the real-cpu graphs, where the Python wrapper builds one per
            # kernel, 116: a cold compile 83 s against 108 on 2 cores, half the CPU seconds ("Compile
            # cost"), and a step 98 ms against 100 ("Train step parts", benchmarks/results.md).
            # TORCHINDUCTOR_CPP_WRAPPER set by the user wins.
            if "TORCHINDUCTOR_CPP_WRAPPER" not in os.environ:
                import torch._inductor.config as inductor_config  # after use_compile_cache: it imports dynamo

                inductor_config.cpp_wrapper = True
        return torch.compile(model)


FP32_CPU = Policy(torch.device("cpu"))  # the reference: what tests and plain loops compare against


def _check(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise SaltError(f"{name}: unknown value {value!r}; valid: {', '.join(valid)}")


@dataclass(frozen=True)
class CompileCost:
    """What compiling costs once and saves a train step, on one kind of device."""

    seconds: float  # one cold compilation of the train and eval graphs
    saved_per_step: float  # seconds a compiled train step saves over an eager one

    @property
    def pays_from(self) -> int:
        """Optimizer steps from which the saving repays the compilation."""
        return math.ceil(self.seconds / self.saved_per_step)


COMPILE_COST = {
    # The real-cpu train stage on the 2-core AMD EPYC (benchmarks/results.md, "Cold start"):
    # compiling the folds' graphs once took 64 s at 40 + 20 epochs (2026-12-07, the C++ wrapper
    # with the validation graph beside; 73 s at 4 + 2 the day before, one process, Python wrapper);
    # at 4 + 2 epochs (2026-12-06) the five folds' 2,160 steps took 180 s compiled (cache warm)
    # against 203 s eager: 10.6 ms of stage time a step.
    # (One fold's step alone saves more, 148 -> 101 ms on its one thread, but five folds share two
    # cores.) The two stage runs were apart: the boundary is uncertain by a few thousand steps.
    # Both ran contiguous; with channels_last, which auto now picks there, one fold's compiled step
    # saved less (112 -> 106 ms, 2026-12-07) and the stage's saving is not re-measured.
    "cpu": CompileCost(64.0, 0.0106),
    # The seed's first epoch on an H100 with a cold cache took 45.8 s (results.md, "Seed profile
    # on one GPU"); what a compiled GPU step saves was not measured: 10 ms is an assumption.
    "cuda": CompileCost(46.0, 0.010),
}


def compile_decision(setting: str, device: torch.device, train_steps: int | None) -> tuple[bool, str]:
    """Whether to compile under runtime.compile `setting` ("auto", "on", "off") on `device`, for a
    train stage of `train_steps` optimizer steps (every fold's; None: no training at hand), and why."""
    if setting != "auto":
        return setting == "on", f"runtime.compile: {setting}"
    cost = COMPILE_COST.get(device.type)
    if cost is None or train_steps is None:
        return False, f"runtime.compile: auto: not compiled ({'no training' if cost else device.type})"
    pays = train_steps >= cost.pays_from
    return pays, (
        f"runtime.compile: auto: {'compiled' if pays else 'not compiled'}: {train_steps:,} train steps, "
        f"and on {device.type} compiling pays from ~{cost.pays_from:,} "
        f"(~{cost.seconds:.0f} s once against {cost.saved_per_step * 1000:.3g} ms a step)"
    )


def policy(
    precision: str = "auto",
    device: str = "auto",
    memory_format: str = "auto",
    compile: str = "auto",
    train_steps: int | None = None,
    start_filters: int | None = None,
) -> Policy:
    """Resolve the knobs (train.precision; runtime.device, memory_format, compile) on this machine;
    `train_steps`: the train stage's optimizer steps, which runtime.compile auto weighs;
    `start_filters`: the model's (model.start_filters), which runtime.memory_format auto weighs."""
    _check("train.precision", precision, PRECISIONS)
    _check("runtime.memory_format", memory_format, MEMORY_FORMATS)
    _check("runtime.compile", compile, COMPILE)
    dev = pick_device(device)
    bf16 = precision == "bf16" or (precision == "auto" and native_bf16(dev))
    channels_last = memory_format == "channels_last" or (
        memory_format == "auto" and dev.type in ("cpu", "cuda") and not _narrow_on_amx(dev, start_filters)
    )
    compiled, _ = compile_decision(compile, dev, train_steps)
    if compiled and dev.type == "cpu":
        _require_cpp_compiler(compile)
    return Policy(
        device=dev,
        autocast_dtype=torch.bfloat16 if bf16 else None,
        memory_format=torch.channels_last if channels_last else torch.contiguous_format,
        compile=compiled,
    )


def _narrow_on_amx(device: torch.device, start_filters: int | None) -> bool:
    narrow = start_filters is not None and start_filters < NARROW
    return narrow and device.type == "cpu" and torch.cpu._is_amx_tile_supported()


def _require_cpp_compiler(setting: str) -> None:
    # Inductor builds CPU kernels with $CXX (else g++); without one it fails only at the first
    # step, after the run has started, with a long traceback.
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise SaltError(
            f"runtime.compile: {setting} compiles here, which on a CPU needs a C++ compiler ({cxx}, from "
            "$CXX or the default, is not installed): install g++ or set runtime.compile: off"
        )


def for_params(params: Params, train_steps: int | None = None) -> Policy:
    """The training policy of a params file, for a train stage of `train_steps` optimizer steps
    (saltseg.data.folds.train_steps; runtime.compile auto weighs them)."""
    rt = params.runtime
    start_filters = params.model.start_filters
    return policy(params.train.precision, rt.device, rt.memory_format, rt.compile, train_steps, start_filters)


def for_inference(precision: str, runtime: RuntimeConfig, start_filters: int | None = None) -> Policy:
    """The prediction policy of a model validated in `precision` ("bf16" or "fp32", as its
    checkpoint records it): that precision on any machine, never compiled (one pass over a few
    batches does not pay back compilation). Where bf16 is not native, autocast emulates it: the
    same numerics, slower than fp32, and one line on stderr says so."""
    if precision not in ("bf16", "fp32"):
        raise SaltError(
            f"checkpoint precision {precision!r}: written before checkpoints recorded the precision they "
            "were validated in (bf16 or fp32); retrain the folds (`dvc repro`)"
        )
    chosen = policy(precision, runtime.device, runtime.memory_format, "off", start_filters=start_filters)
    if precision == "bf16" and not native_bf16(chosen.device):
        print(
            f"note: no native bf16 on this {chosen.device.type}: emulating the model's precision (slower)",
            file=sys.stderr,
        )
    return chosen
