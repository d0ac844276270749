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
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from saltseg.data.tgs import SIZE
from saltseg.errors import SaltError

# The names params.yaml may use, listed here so that checking them needs no torch: losses.py
# and the model registry take theirs from here (the registry refuses a model missing here).
MODEL_NAMES = ("preact_resunet", "timm_unet")
FITS = ("resize", "pad")
LOSSES = ("bce", "focal", "bce_dice", "bce_small_dice", "lovasz")
LOSS_AT = ("original", "input")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("cosine", "constant", "warm_restarts")
MONITORS = ("val_loss", "val_iou", "val_score")  # columns of the per-epoch history
MINIMISED = ("val_loss",)  # monitors where lower is better; the others are maximised
PREACT_SWITCHES = (
    "scse",
    "hypercolumn",
    "coord_channels",
    "depth_channel",
    "empty_head",
)  # preact_resunet only
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def oriented(monitor: str, value: float) -> float:
    """`value` of the metric `monitor` turned so that larger is always better."""
    return -value if monitor in MINIMISED else value


def _require(ok: bool, key: str, rule: str, value: object) -> None:
    # NaN fails every comparison, so `ok` is False for it and it is refused like any bad value.
    if not ok:
        raise SaltError(f"{key}: must be {rule}, got {value!r}")


def _one_of(key: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise SaltError(f"{key}: unknown {value!r}; valid: {', '.join(valid)}")


def _probability(key: str, value: float) -> None:
    _require(0 <= value <= 1, key, "in [0, 1]", value)


def check_size(size: int, multiple: int, where: str) -> None:
    """Fail fast when `size` is not a multiple of `multiple`, naming the nearest valid size."""
    if size > 0 and size % multiple == 0:
        return
    lower = max(multiple, size // multiple * multiple)
    upper = lower + multiple if lower < size else lower
    nearest = lower if size - lower < upper - size else upper
    raise SaltError(
        f"{where}: input size {size} is not divisible by {multiple}; nearest valid size is {nearest}"
    )


@dataclass(frozen=True)
class DataConfig:
    source: str = "synthetic"  # Kaggle-layout folder that `prepare` reads

    def __post_init__(self) -> None:
        _require(bool(self.source), "source", "a folder name", self.source)


@dataclass(frozen=True)
class SynthConfig:
    seed: int = 0
    n_train: int = 300
    n_test: int = 100
    empty_fraction: float = 0.39  # the real set: 39% of masks are empty
    fault_probability: float = 0.3
    noise: float = 0.08  # std of additive noise, relative to the trace amplitude

    def __post_init__(self) -> None:
        _require(self.seed >= 0, "seed", ">= 0", self.seed)
        _require(self.n_train >= 1, "n_train", ">= 1", self.n_train)
        _require(self.n_test >= 0, "n_test", ">= 0", self.n_test)
        # All-empty data would leave nothing to learn (and no salt to draw).
        _require(0 <= self.empty_fraction < 1, "empty_fraction", "in [0, 1)", self.empty_fraction)
        _probability("fault_probability", self.fault_probability)
        _require(self.noise >= 0, "noise", ">= 0", self.noise)


@dataclass(frozen=True)
class SplitConfig:
    folds: tuple[int, ...] = (0, 1, 2, 3, 4)  # fold ids; their count is K
    seed: int = 42
    coverage_classes: int = 11  # empty + 10 coverage bins, the usual TGS stratification
    # Share of the images held out before the folds (stratified, seeded): never trained, tuned or
    # selected on; the registered ensemble's test score is measured on them. 0: no test set.
    test_fraction: float = 0.0

    def __post_init__(self) -> None:
        folds = list(self.folds)
        # Each fold is held out while the others train: one fold would leave nothing to train on.
        _require(len(folds) >= 2, "folds", "at least 2 fold ids", folds)
        _require(len(set(folds)) == len(folds), "folds", "unique fold ids", folds)
        _require(self.seed >= 0, "seed", ">= 0", self.seed)  # scikit-learn's random_state
        _require(self.coverage_classes >= 1, "coverage_classes", ">= 1", self.coverage_classes)
        _require(0 <= self.test_fraction < 0.5, "test_fraction", "in [0, 0.5)", self.test_fraction)


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
    scse: bool = False  # scSE attention on every decoder level
    hypercolumn: bool = False  # the head reads every decoder level, upsampled, not the last only
    coord_channels: bool = False  # the pixel's vertical position as an extra input channel
    depth_channel: bool = False  # the tile's depth (depths.csv) as a constant second input channel
    # The tile enters at input_size * k and is folded into k * k channels at input_size
    # (pixel_unshuffle): the network keeps input_size's cost and sees what the resize drops. 1: off.
    space_to_depth: int = 1
    # An image-level "has salt" logit and deep-supervision logits per decoder level
    # (train.aux_weight, train.empty_weight); in eval mode images it calls empty get no salt.
    empty_head: bool = False
    # Deep supervision at each decoder level's own size, against the targets max-pooled to it
    # (a body of one pixel stays one cell), not upsampled to the input size (docs/techniques.md).
    aux_at_level: bool = False
    # timm_unet only
    encoder: str = "resnet34"
    encoder_weights: str | None = None  # local file only; nothing is downloaded
    decoder_channels: tuple[int, ...] = (128, 64, 32, 16, 16)

    def __post_init__(self) -> None:
        _one_of("name", self.name, MODEL_NAMES)
        _one_of("fit", self.fit, FITS)
        _require(self.input_size >= 1, "input_size", ">= 1", self.input_size)
        if self.fit == "pad":  # models/fit.py pads the tile up to the input size, never crops it
            _require(self.input_size >= SIZE, "input_size", f">= {SIZE} with fit 'pad'", self.input_size)
        _require(self.start_filters >= 1, "start_filters", ">= 1", self.start_filters)
        _require(self.depth >= 1, "depth", ">= 1", self.depth)
        _require(self.blocks_per_level >= 1, "blocks_per_level", ">= 1", self.blocks_per_level)
        _require(0 <= self.dropout < 1, "dropout", "in [0, 1)", self.dropout)
        for switch in PREACT_SWITCHES:  # timm_unet would silently ignore them
            on = getattr(self, switch)
            _require(
                not on or self.name == "preact_resunet", switch, "false unless name is preact_resunet", on
            )
        _require(not self.aux_at_level or self.empty_head, "aux_at_level", "false unless empty_head", True)
        k = self.space_to_depth
        _require(k >= 1, "space_to_depth", ">= 1", k)
        if k > 1:  # timm_unet's stem takes one channel; padding cannot shrink 101 to input_size * k
            _require(self.name == "preact_resunet", "space_to_depth", "1 unless name is preact_resunet", k)
            _require(self.fit == "resize", "space_to_depth", "1 unless fit is resize", k)
        _require(bool(self.encoder), "encoder", "a timm model name", self.encoder)
        channels = list(self.decoder_channels)
        _require(bool(channels) and min(channels) >= 1, "decoder_channels", "widths >= 1", channels)
        if self.name == "preact_resunet":  # each of `depth` levels halves the size
            check_size(self.input_size, 2**self.depth, f"input_size (preact_resunet, depth {self.depth})")
        # timm_unet's multiple is its encoder's deepest stride, known only once timm builds it:
        # `salt train` builds the model on the meta device before it opens a run.


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

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip", "crop_resize", "rotate", "roll"):
            _probability(name, getattr(self, name))
        low, high = self.crop_scale
        _require(0 < low <= high <= 1, "crop_scale", "[a, b] with 0 < a <= b <= 1", list(self.crop_scale))
        _require(self.rotate_limit >= 0, "rotate_limit", ">= 0", self.rotate_limit)
        _probability("roll_limit", self.roll_limit)


@dataclass(frozen=True)
class StageConfig:
    loss: str  # "bce", "focal" (focal BCE), "bce_dice" (BCE + soft Dice), "bce_small_dice" or "lovasz"
    epochs: int
    lr: float

    def __post_init__(self) -> None:
        _one_of("loss", self.loss, LOSSES)
        _require(self.epochs >= 1, "epochs", ">= 1", self.epochs)
        _require(self.lr > 0, "lr", "> 0", self.lr)


@dataclass(frozen=True)
class PseudoConfig:
    """Pseudo-labels: unlabelled test images with a teacher's confident masks, added to every
    fold's training images (never to validation). The teacher is a model registered by an
    earlier pipeline run (DVC forbids cycles); None turns the stage into a no-op."""

    teacher: str | None = None  # MLflow model URI, e.g. models:/saltseg-ensemble/3; None: off
    confidence: float = 0.9  # a pixel is confident when its probability is >= this or <= 1 - this
    min_confident_fraction: float = 0.97  # keep an image when at least this share of its pixels are confident
    max_images: int | None = None  # keep at most this many (the most confident); None: no cap

    def __post_init__(self) -> None:
        teacher = self.teacher
        _require(teacher is None or bool(teacher.strip()), "teacher", "null or an MLflow model URI", teacher)
        _require(0.5 < self.confidence <= 1, "confidence", "in (0.5, 1]", self.confidence)
        fraction = self.min_confident_fraction
        _require(0 < fraction <= 1, "min_confident_fraction", "in (0, 1]", fraction)
        _require(
            self.max_images is None or self.max_images >= 1, "max_images", "null or >= 1", self.max_images
        )


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
    scheduler: str = "cosine"  # "cosine", "constant" or "warm_restarts", per stage
    # warm_restarts: each stage's epochs split into `cycles` equal cosine cycles (lr -> ~0, restart)
    cycles: int = 1
    # Keep the weights at the end of every cycle of the last stage (snapshot<c>.pt); each fold
    # then predicts with the mean of their probabilities (a snapshot ensemble) instead of best.pt.
    snapshots: bool = False
    monitor: str = "val_iou"  # a checkpoint is kept only when this improves
    lovasz_elu: bool = False  # elu(x)+1 instead of relu(x) in the Lovasz hinge
    # The Lovasz hinge of the salt class and of the sediment class (logits negated), averaged.
    lovasz_symmetric: bool = False
    # False: the Lovasz hinge of each batch as one image instead of the mean of each image's (the
    # seed's), so that an empty tile's false positives and a small body's misses weigh by pixels.
    lovasz_per_image: bool = True
    # Tiles with salt on at most 10% of their pixels stand this many times in the pool each
    # epoch's images are drawn from (saltseg.data.dataset.small_salt_draws); 1: a plain shuffle.
    small_salt_repeats: int = 1
    # Leave out of training (never out of validation) the masks whose every column is all salt or
    # all sediment (saltseg.data.dataset.column_masks): straight vertical bands, often on images
    # that look like sediment.
    skip_column_masks: bool = False
    # Where the training loss compares prediction and mask: "original", the logits mapped back to
    # the 101-px tile; "input", the model's own input_size with the mask mapped to it (as the seed
    # trains at 128 px), cheaper when input_size < 101. Validation always scores the 101-px tile.
    loss_at: str = "original"  # original | input
    # Only with loss_at "input": stages of every loss but the Lovasz hinge (and their deep
    # supervision) learn the mask resized to input_size like the image, values in [0, 1], not
    # binarised at 0.5, which erases bodies of a pixel or two; the Lovasz hinge needs labels.
    soft_targets: bool = False
    # > 0: the BCE term of a stage's loss (bce, focal, bce_dice, bce_small_dice; never the Lovasz
    # hinge) weighs each pixel next to an edge of the mask 1 + boundary_weight times
    # (saltseg.losses.boundary_weights): the pixels that decide a body's extent.
    boundary_weight: float = 0.0
    # "auto": bf16 autocast where the device computes bf16 natively, else fp32 (saltseg.hardware).
    # A results knob: validation, evaluation and serving predict in the same precision.
    precision: str = "auto"  # auto | bf16 | fp32
    # Only with model.empty_head: weights of the deep-supervision loss (the stage loss of each
    # decoder level, on the images with salt) and of the has-salt BCE, added to the stage loss.
    aux_weight: float = 0.1
    empty_weight: float = 0.05
    # > 0: validate, keep and hand on an exponential moving average of the weights, updated after
    # every step with this decay (saltseg.weight_average); 0: the weights themselves, as the seed.
    ema_decay: float = 0.0
    # CPU threads a fold computes with. Part of the result, not only of the speed: convolution
    # sums run in another order on another count (gradients differ from the 5th digit, a fold's
    # score by up to ~0.04 after 12 epochs). One thread a fold, several folds at once
    # (runtime.fold_jobs), is also the fastest way to train five folds on a few cores.
    threads: int = 1

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        _require(self.threads >= 1, "threads", ">= 1", self.threads)
        _require(self.small_salt_repeats >= 1, "small_salt_repeats", ">= 1", self.small_salt_repeats)
        _require(len(self.stages) >= 1, "stages", "a non-empty list of stages", [])
        _one_of("optimizer", self.optimizer, OPTIMIZERS)
        _require(self.weight_decay >= 0, "weight_decay", ">= 0", self.weight_decay)
        _one_of("scheduler", self.scheduler, SCHEDULERS)
        _require(self.cycles >= 1, "cycles", ">= 1", self.cycles)
        if self.scheduler != "warm_restarts":  # other schedules have one cycle per stage
            _require(self.cycles == 1, "cycles", "1 unless scheduler is warm_restarts", self.cycles)
        for i, stage in enumerate(self.stages):  # cycles of equal length, each ending at lr ~0
            rule = f"a divisor of every stage's epochs (stages[{i}].epochs is {stage.epochs})"
            _require(stage.epochs % self.cycles == 0, "cycles", rule, self.cycles)
        _one_of("monitor", self.monitor, MONITORS)
        _one_of("loss_at", self.loss_at, LOSS_AT)
        if self.soft_targets:
            _require(self.loss_at_input, "soft_targets", "false unless loss_at is input", True)
        _require(self.boundary_weight >= 0, "boundary_weight", ">= 0", self.boundary_weight)
        _require(self.aux_weight >= 0, "aux_weight", ">= 0", self.aux_weight)
        _require(self.empty_weight >= 0, "empty_weight", ">= 0", self.empty_weight)
        _require(0 <= self.ema_decay < 1, "ema_decay", "in [0, 1)", self.ema_decay)

    @property
    def loss_at_input(self) -> bool:
        """True when the training loss is computed at model.input_size (train.loss_at "input")."""
        return self.loss_at == "input"

    def soft_for(self, loss: str) -> bool:
        """Whether a stage with this loss trains on soft targets (soft_targets; never the Lovasz
        hinge, whose errors are defined for labels only)."""
        return self.soft_targets and loss != "lovasz"


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how fast. num_workers and fold_jobs change only the speed (tests train a fold under
    two values and compare the checkpoints' bytes). device, memory_format and compile pick other
    kernels, whose sums differ in the last digits: they are part of a fold's identity (the train
    stage lists them; saltseg.tracking.pipeline_key holds the policy they resolve to)."""

    device: str = "auto"  # "auto" picks CUDA when present
    num_workers: int = 0  # DataLoader worker processes; each batch seeds its own augmentations
    memory_format: str = "auto"  # auto: channels_last; contiguous for narrow models on AMX CPUs
    compile: str = "auto"  # torch.compile: auto (where the train steps repay it) | on | off
    fold_jobs: int = 3  # folds `salt train` trains at once, one process each (saltseg.fold_jobs)

    def __post_init__(self) -> None:
        _require(
            DEVICE.fullmatch(self.device) is not None, "device", "auto, cpu, cuda or cuda:N", self.device
        )
        _require(self.num_workers >= 0, "num_workers", ">= 0", self.num_workers)
        _require(self.fold_jobs >= 1, "fold_jobs", ">= 1", self.fold_jobs)


@dataclass(frozen=True)
class EvaluateConfig:
    tta: bool = True
    thresholds: tuple[float, ...] = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
    min_areas: tuple[int, ...] = (0, 10, 20, 40, 80, 120, 160, 240)
    worst_n: int = 16
    batch_size: int = 64

    def __post_init__(self) -> None:
        thresholds, areas = list(self.thresholds), list(self.min_areas)
        ok = bool(thresholds) and all(0 < t < 1 for t in thresholds)
        _require(ok, "thresholds", "a non-empty list of probabilities in (0, 1)", thresholds)
        _require(bool(areas) and min(areas) >= 0, "min_areas", "a non-empty list of areas >= 0", areas)
        _require(self.worst_n >= 0, "worst_n", ">= 0", self.worst_n)
        _require(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)


@dataclass(frozen=True)
class RegisterConfig:
    model_name: str = "saltseg-ensemble"
    alias: str = "champion"

    def __post_init__(self) -> None:
        _require(bool(self.model_name), "model_name", "a registered model name", self.model_name)
        _require(bool(self.alias), "alias", "an alias name", self.alias)


@dataclass(frozen=True)
class TrackingConfig:
    uri: str | None = None  # None: MLFLOW_TRACKING_URI, else sqlite at an absolute path
    db: str = "mlflow.db"  # the local SQLite file, relative to the working directory
    experiment: str = "saltseg"

    def __post_init__(self) -> None:
        _require(bool(self.db), "db", "a file name", self.db)
        _require(bool(self.experiment), "experiment", "an experiment name", self.experiment)


@dataclass(frozen=True)
class Params:
    profile: str = "default"  # the named profile (configs/<profile>.yaml) params.yaml was made from
    data: DataConfig = field(default_factory=DataConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        folds = len(self.split.folds)
        _require(
            self.synth.n_train >= folds,
            "synth.n_train",
            f">= the {folds} folds of split.folds",
            self.synth.n_train,
        )
        # A teacher registered by an earlier run may have trained on today's test images, and its
        # pseudo-labels would carry them into every fold.
        _require(
            self.pseudo.teacher is None or self.split.test_fraction == 0,
            "pseudo.teacher",
            "null while split.test_fraction > 0 (the teacher may have learnt the test images)",
            self.pseudo.teacher,
        )


def _build(cls: type, raw: object, where: str) -> object:
    """Turn plain YAML values into the annotated type, recursively."""
    hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
    if dataclasses.is_dataclass(cls):
        if not isinstance(raw, dict):
            raise SaltError(f"{where or 'params'}: expected a mapping, got {raw!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise SaltError(
                f"{where or 'params'}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
            )
        values = {k: _convert(hints[k], v, _key(where, k)) for k, v in raw.items()}
        try:
            return cls(**values)
        except SaltError as exc:  # a range check of __post_init__: give its key the full path
            raise SaltError(_key(where, str(exc))) from None
    raise TypeError(cls)


def _key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


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
    """Build Params from a parsed params.yaml; missing sections take their defaults.

    Every value is checked (types, ranges, names) here, so a bad params.yaml fails with one
    line naming the key before any file is written or any MLflow run is opened.
    """
    return _build(Params, raw or {}, "")  # type: ignore[return-value]


def read_yaml(path: str | Path, yaml: YAML | None = None, what: str = "file") -> object:
    """A params or profile file as DVC reads it: YAML 1.2 (ruamel), where `on`, `off`, `yes`
    and `no` are strings, as `dvc exp run -S runtime.compile=on` means them, not booleans."""
    try:
        return (yaml or YAML(typ="safe")).load(Path(path).read_text())
    except FileNotFoundError:
        raise SaltError(f"{path}: {what} not found") from None
    except YAMLError as exc:
        first = str(exc).strip().splitlines()[0]
        raise SaltError(f"{path}: not valid YAML ({first})") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    raw = read_yaml(path, what="params file")
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
