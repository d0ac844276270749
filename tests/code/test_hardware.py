"""The hardware policy: what `auto` resolves to, and one prediction path for training and evaluation."""

import numpy as np
import pytest
import torch

from saltseg import hardware
from saltseg.config import ModelConfig, Params, RuntimeConfig, TrainConfig
from saltseg.errors import SaltError
from saltseg.inference import load_models, predict_proba
from saltseg.loop import predict_logits
from saltseg.models import build_model, save_checkpoint

TINY = ModelConfig(start_filters=4, depth=2, input_size=64)


def _cpu_bf16(monkeypatch, avx512_bf16: bool, amx: bool = False) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)


def test_auto_is_bf16_and_channels_last_on_a_cpu_with_native_bf16(monkeypatch):
    _cpu_bf16(monkeypatch, avx512_bf16=True)
    policy = hardware.policy("auto", "cpu")
    assert policy.autocast_dtype == torch.bfloat16 and policy.precision == "bf16"
    assert policy.memory_format == torch.channels_last
    assert not policy.compile, "no train steps at hand: nothing to repay a compilation"
    assert policy.describe() == "cpu bf16 channels_last"
    _cpu_bf16(monkeypatch, avx512_bf16=False, amx=True)
    assert hardware.policy("auto", "cpu").precision == "bf16"


def test_auto_is_contiguous_for_narrow_models_on_a_cpu_with_amx(monkeypatch):
    """Measured: narrow models ran faster contiguous on the Xeon with AMX, channels_last on the AMD
    EPYC without AMX; wide ones channels_last on both (saltseg.hardware's docstring)."""
    _cpu_bf16(monkeypatch, avx512_bf16=True, amx=True)
    narrow, wide = hardware.NARROW - 1, hardware.NARROW
    assert hardware.policy("auto", "cpu", start_filters=narrow).memory_format == torch.contiguous_format
    assert hardware.policy("auto", "cpu", start_filters=wide).memory_format == torch.channels_last
    assert hardware.policy("auto", "cpu", "channels_last", start_filters=narrow).memory_format == (
        torch.channels_last
    ), "an explicit setting wins"
    _cpu_bf16(monkeypatch, avx512_bf16=True, amx=False)
    assert hardware.policy("auto", "cpu", start_filters=narrow).memory_format == torch.channels_last
    params = Params(model=ModelConfig(start_filters=8), runtime=RuntimeConfig(device="cpu"))
    _cpu_bf16(monkeypatch, avx512_bf16=True, amx=True)
    assert hardware.for_params(params).memory_format == torch.contiguous_format
    assert hardware.for_inference("bf16", params.runtime, 8).memory_format == torch.contiguous_format


def test_auto_is_fp32_where_bf16_would_only_be_emulated(monkeypatch):
    _cpu_bf16(monkeypatch, avx512_bf16=False)
    policy = hardware.policy("auto", "cpu")
    assert policy.autocast_dtype is None and policy.precision == "fp32"
    assert hardware.policy("bf16", "cpu").precision == "bf16", "an explicit setting wins"
    assert hardware.policy("fp32", "cpu", "contiguous").memory_format == torch.contiguous_format


def test_this_machine_reports_its_cpu_as_torch_sees_it():
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert hardware.native_bf16(torch.device("cpu")) == native
    assert hardware.policy("auto", "cpu").precision == ("bf16" if native else "fp32")


def test_compiling_on_a_cpu_needs_a_cpp_compiler(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-saltseg")
    needs = r"compiles here, which on a CPU needs a C\+\+ compiler .*no-such-compiler"
    with pytest.raises(SaltError, match=rf"^runtime.compile: on {needs}"):
        hardware.policy("auto", "cpu", compile="on")
    with pytest.raises(SaltError, match=rf"^runtime.compile: auto {needs}"):
        hardware.policy("auto", "cpu", compile="auto", train_steps=10**6)
    assert not hardware.policy("auto", "cpu", compile="off").compile  # eager needs none


def test_auto_compiles_where_the_steps_repay_one_compilation():
    """CPU: 64 s once against 10.6 ms a step, from 6,038 steps (hand-computed: 64 / 0.0106 = 6037.7)."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert hardware.COMPILE_COST["cpu"].pays_from == 6038
    assert hardware.compile_decision("auto", cpu, 6038)[0]
    assert not hardware.compile_decision("auto", cpu, 6037)[0]
    # The real-cpu profile on 2,880 development images: 40 + 20 epochs compile, 4 + 2 do not.
    steps_per_epoch = 5 * (2304 // 32)
    assert hardware.compile_decision("auto", cpu, 60 * steps_per_epoch)[0]
    compiled, why = hardware.compile_decision("auto", cpu, 6 * steps_per_epoch)
    assert not compiled
    assert why == (
        "runtime.compile: auto: not compiled: 2,160 train steps, and on cpu compiling pays from "
        "~6,038 (~64 s once against 10.6 ms a step)"
    )
    decide = hardware.compile_decision
    assert decide("auto", cuda, 4600)[0] and not decide("auto", cuda, 4599)[0]
    assert decide("auto", cpu, None) == (False, "runtime.compile: auto: not compiled (no training)")
    assert hardware.compile_decision("on", cpu, 1) == (True, "runtime.compile: on")
    assert hardware.compile_decision("off", cuda, 10**9) == (False, "runtime.compile: off")


def test_cuda_compiles_a_long_run_by_default(monkeypatch):
    monkeypatch.setattr(hardware, "native_bf16", lambda device: device.type == "cuda")
    policy = hardware.policy("auto", "cuda", train_steps=32_000)  # a torch.device needs no GPU to exist
    assert (policy.precision, policy.memory_format, policy.compile) == ("bf16", torch.channels_last, True)
    assert not hardware.policy("auto", "cuda", compile="off", train_steps=32_000).compile
    assert not hardware.policy("auto", "cuda").compile


@pytest.mark.parametrize(
    ("knobs", "named"),
    [
        ({"precision": "fp16"}, "train.precision"),
        ({"memory_format": "nhwc"}, "runtime.memory_format"),
        ({"compile": "yes"}, "runtime.compile"),
    ],
)
def test_unknown_values_are_named(knobs, named):
    with pytest.raises(SaltError, match=rf"{named}: unknown value .*; valid: "):
        hardware.policy(**knobs)


def test_training_validation_and_evaluation_predict_alike(tmp_path):
    """A bf16-trained checkpoint: evaluation's predict_proba gives exactly the probabilities of
    the logits validation computed during training (same precision, same memory format)."""
    torch.manual_seed(0)
    model = build_model(TINY)
    path = tmp_path / "best.pt"
    save_checkpoint(path, model, TINY, precision="bf16")
    images = np.random.default_rng(0).integers(0, 256, (6, 101, 101), dtype=np.uint8)

    models, cfg, policy = load_models([path])
    params = Params(model=TINY, train=TrainConfig(precision="bf16"), runtime=RuntimeConfig(device="cpu"))
    trained = hardware.for_params(params)
    assert policy == hardware.Policy(trained.device, trained.autocast_dtype, trained.memory_format)
    proba = predict_proba(models, images, cfg, False, 3, policy)
    validated = predict_logits(trained.place(model.eval()), torch.from_numpy(images), TINY, trained, 3)
    np.testing.assert_array_equal(proba, torch.sigmoid(validated[:, 0]).numpy())
    fp32 = predict_proba(models, images, cfg, False, 3, hardware.FP32_CPU)
    assert np.abs(fp32 - proba).max() > 1e-4, "bf16 was not in effect"


@pytest.mark.slow
def test_compiling_on_a_cpu_keeps_the_cuda_warning_out_of_the_log():
    import subprocess
    import sys

    code = (
        "import torch\nfrom saltseg import hardware\nfrom saltseg.config import ModelConfig\n"
        "from saltseg.models import build_model\n"
        "policy = hardware.policy('fp32', 'cpu', 'contiguous', 'on')\n"
        "policy.compiled(build_model(ModelConfig(start_filters=4, depth=2)))(torch.rand(2, 1, 64, 64))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600
    )
    assert "No CUDA runtime" not in done.stderr, done.stderr
