"""params.yaml -> typed, frozen configuration objects.

The YAML file is read once, at the edge (the CLI), and the resulting objects are
passed explicitly to the functions that need them. Unknown keys fail fast with the
section and key named, so a typo in params.yaml never silently falls back to a default.

The dataclass defaults below are the project's one source of defaults: they are the
`default` profile, which the committed params.yaml spells out key by key (a test keeps
the two equal), and the fixed base every named profile in configs/ is laid over.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from saltseg.errors import SaltError


@dataclass(frozen=True)
class DataConfig:
    source: str = "synthetic"  # Kaggle-layout folder that `prepare` reads


@dataclass(frozen=True)
class SynthConfig:
    seed: int = 0
    n_train: int = 300
    n_test: int = 100
    empty_fraction: float = 0.39  # the real set: 39% of masks are empty
    fault_probability: float = 0.3
    noise: float = 0.08  # std of additive noise, relative to the trace amplitude


@dataclass(frozen=True)
class SplitConfig:
    folds: tuple[int, ...] = (0, 1, 2, 3, 4)  # fold ids; their count is K
    seed: int = 42
    coverage_classes: int = 11  # empty + 10 coverage bins, the usual TGS stratification


@dataclass(frozen=True)
class ModelConfig:
    name: str = "preact_resunet"  # or "timm_unet"
    input_size: int = 64  # the seed resizes 101 -> 128; 64 keeps the CPU default fast
    fit: str = "resize"  # "resize" or "pad" 101 -> input_size
    # preact_resunet
    start_filters: int = 8  # the seed: 16
    depth: int = 3  # number of down-sampling steps (the seed: 4)
    blocks_per_level: int = 1
    dropout: float = 0.0
    # timm_unet
    encoder: str = "resnet34"
    encoder_weights: str | None = None  # local file only; nothing is downloaded
    decoder_channels: tuple[int, ...] = (128, 64, 32, 16, 16)


@dataclass(frozen=True)
class AugmentConfig:
    hflip: float = 0.5
    vflip: float = 0.0  # depth direction matters in seismic data
    crop_resize: float = 0.3
    crop_scale: tuple[float, float] = (0.7, 1.0)
    rotate: float = 0.3
    rotate_limit: float = 10.0  # degrees
    roll: float = 0.3
    roll_limit: float = 0.5  # fraction of the width


@dataclass(frozen=True)
class StageConfig:
    loss: str  # "bce" or "lovasz"
    epochs: int
    lr: float


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    batch_size: int = 32  # the seed: 64
    stages: tuple[StageConfig, ...] = (  # the seed: 80 epochs of each
        StageConfig("bce", 8, 5e-3),
        StageConfig("lovasz", 4, 1e-3),
    )
    optimizer: str = "adam"  # "adam", "adamw" or "sgd"
    weight_decay: float = 0.0
    scheduler: str = "cosine"  # "cosine" or "constant", per stage
    monitor: str = "val_iou"  # a checkpoint is kept only when this improves
    lovasz_elu: bool = False  # elu(x)+1 instead of relu(x) in the Lovasz hinge
    # "auto": bf16 autocast where the device computes bf16 natively, else fp32 (saltseg.hardware).
    # A results knob: validation, evaluation and serving predict in the same precision.
    precision: str = "auto"  # auto | bf16 | fp32


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how fast, never what: these knobs do not change a model, so they neither
    retrain a fold (no stage lists this section) nor fork an MLflow pipeline run."""

    device: str = "auto"  # "auto" picks CUDA when present
    num_workers: int = 0  # DataLoader worker processes; results do not depend on it
    threads: int = 0  # torch CPU threads; 0 = torch's default
    memory_format: str = "auto"  # auto (channels_last on CPU and CUDA) | channels_last | contiguous
    compile: str = "auto"  # torch.compile: auto (CUDA only; on a CPU it pays only for long runs) | on | off


@dataclass(frozen=True)
class EvaluateConfig:
    tta: bool = True
    thresholds: tuple[float, ...] = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
    min_areas: tuple[int, ...] = (0, 10, 20, 40, 80, 120)
    worst_n: int = 16
    batch_size: int = 64


@dataclass(frozen=True)
class RegisterConfig:
    model_name: str = "saltseg-ensemble"
    alias: str = "champion"


@dataclass(frozen=True)
class TrackingConfig:
    uri: str | None = None  # None: MLFLOW_TRACKING_URI, else sqlite at an absolute path
    db: str = "mlflow.db"  # the local SQLite file, relative to the working directory
    experiment: str = "saltseg"


@dataclass(frozen=True)
class Params:
    profile: str = "default"  # the named profile (configs/<profile>.yaml) params.yaml was made from
    data: DataConfig = field(default_factory=DataConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def _build(cls: type, raw: object, where: str) -> object:
    """Turn plain YAML values into the annotated type, recursively."""
    hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
    if dataclasses.is_dataclass(cls):
        if not isinstance(raw, dict):
            raise SaltError(f"{where}: expected a mapping, got {raw!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise SaltError(
                f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
            )
        return cls(**{k: _convert(hints[k], v, f"{where}.{k}") for k, v in raw.items()})
    raise TypeError(cls)


def _convert(tp: object, value: object, where: str) -> object:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SaltError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise SaltError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(
            _convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise SaltError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def params_to_dict(params: Params) -> dict:
    """The plain YAML form of `params` (tuples as lists): what params.yaml holds."""

    def plain(value: object) -> object:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    return plain(params)  # type: ignore[return-value]


def params_from_dict(raw: dict) -> Params:
    """Build Params from a parsed params.yaml; missing sections take their defaults."""
    return _build(Params, raw or {}, "params")  # type: ignore[return-value]


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SaltError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise SaltError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        return params_from_dict(raw)
    except SaltError as exc:
        raise SaltError(f"{path}: {exc}") from None


def flat_params(params: Params) -> dict[str, object]:
    """Flatten to {"section.key": value} for MLflow's log_params."""
    out: dict[str, object] = {}

    def walk(prefix: str, value: object) -> None:
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                walk(f"{prefix}.{f.name}" if prefix else f.name, getattr(value, f.name))
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                walk(f"{prefix}.{i}", item)
        else:
            out[prefix] = value

    walk("", params)
    return out
