"""model.depth_channel: the tile's depth as a constant extra input of preact_resunet, through
training, evaluation, prediction and serving; without the switch nothing sees depths."""

import dataclasses

import numpy as np
import pytest
import torch
from test_evaluate import TINY, prepared_arrays, salt_images

from saltseg.config import ModelConfig
from saltseg.errors import SaltError
from saltseg.hardware import FP32_CPU
from saltseg.inference import CPU, Ensemble, predict_proba
from saltseg.models import build_model, save_checkpoint

DEPTH = dataclasses.replace(TINY, depth_channel=True)


def _model(cfg: ModelConfig, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(cfg).eval()


def test_depth_channel_widens_only_the_stem_and_keeps_the_output_shape():
    plain, deep = _model(TINY), _model(DEPTH)
    assert plain.stem.in_channels == 1 and deep.stem.in_channels == 2
    assert {k: v.shape for k, v in plain.state_dict().items() if not k.startswith("stem.weight")} == {
        k: v.shape for k, v in deep.state_dict().items() if not k.startswith("stem.weight")
    }
    x = torch.rand(3, 1, 32, 32)
    assert deep(x, torch.tensor([100.0, 500.0, 900.0])).shape == (3, 1, 32, 32)
    with pytest.raises(SaltError, match=r"model.depth_channel: needs one depth per image \(3,\), got None"):
        deep(x)
    with pytest.raises(SaltError, match=r"got \(2,\)"):
        deep(x, torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize("switch", ["depth_channel", "scse", "hypercolumn", "coord_channels"])
def test_preact_switches_are_refused_for_timm_unet(switch):
    with pytest.raises(SaltError, match=f"{switch}: must be false unless name is preact_resunet"):
        ModelConfig(name="timm_unet", **{switch: True})


def test_a_depth_changes_the_prediction_only_with_the_switch():
    images, _ = salt_images(3)
    depths, changed = np.array([100, 400, 700]), np.array([100, 900, 700])
    deep, plain = _model(DEPTH), _model(TINY)
    a = predict_proba([deep], images, DEPTH, tta=True, batch_size=2, depths=depths)
    b = predict_proba([deep], images, DEPTH, tta=True, batch_size=2, depths=changed)
    assert np.array_equal(a[[0, 2]], b[[0, 2]]) and not np.allclose(a[1], b[1])
    # Without the switch the depths never reach the network: the very numbers of the old call.
    reference = predict_proba([plain], images, TINY, tta=True, batch_size=2)
    for d in (depths, changed):
        np.testing.assert_array_equal(predict_proba([plain], images, TINY, True, 2, FP32_CPU, d), reference)
    with pytest.raises(SaltError, match="depths: missing; this model has model.depth_channel"):
        predict_proba([deep], images, DEPTH)
    with pytest.raises(SaltError, match=r"depths: expected 3 \(one per image\), got 2"):
        predict_proba([deep], images, DEPTH, depths=[1, 2])
    with pytest.raises(SaltError, match="depths: must be finite"):
        predict_proba([deep], images, DEPTH, depths=[1, np.nan, 2])


def test_training_step_feeds_the_depths_to_the_stem():
    from torch.utils.data import DataLoader

    from saltseg.data.dataset import SaltDataset
    from saltseg.loop import train_epoch
    from saltseg.losses import get_train_loss

    class Bar:
        def advance(self, n: int) -> None:
            pass

    images, masks = salt_images(4)
    data = SaltDataset(images, masks, depths=np.array([100, 300, 500, 700]))
    assert data[1][2].item() == 300.0 and data[1][2].dtype == torch.float32
    model = _model(DEPTH).train()
    before = model.stem.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(data, batch_size=4)
    train_epoch(
        model, model, loader, get_train_loss("bce", False, 0.1, 0.05), optimizer, DEPTH, FP32_CPU, Bar()
    )
    # The depth plane's kernels (input channel 1) learnt from it: a constant 0 plane would leave
    # their gradient zero and the step would not move them.
    assert not torch.equal(model.stem.weight[:, 1], before[:, 1])


def test_validation_and_out_of_fold_use_each_images_depth(tmp_path):
    import pandas as pd

    from saltseg.evaluate import out_of_fold
    from saltseg.loop import Validation, validate
    from saltseg.losses import get_loss

    arrays = prepared_arrays(6)
    model = _model(DEPTH)
    val = Validation.on(FP32_CPU, arrays.images, arrays.masks, arrays.depths)
    assert val.depths.dtype == torch.float32 and val.depths.tolist() == arrays.depths.tolist()
    loss = validate(model, model, val, get_loss("bce"), DEPTH, FP32_CPU, batch_size=4)["val_loss"]
    moved = dataclasses.replace(val, depths=val.depths + 500)
    assert validate(model, model, moved, get_loss("bce"), DEPTH, FP32_CPU, batch_size=4)["val_loss"] != loss

    folds = pd.DataFrame({"id": arrays.ids, "fold": np.arange(6) % 2, "coverage_class": 0})
    paths = {}
    for fold in (0, 1):
        paths[fold] = [tmp_path / f"fold{fold}" / "best.pt"]  # a fold's members: best.pt alone
        save_checkpoint(
            paths[fold][0], _model(DEPTH, seed=fold), DEPTH, fold=fold, data_hash=arrays.fingerprint
        )
    oof = out_of_fold(arrays, folds, paths, batch_size=4, runtime=CPU)
    deeper = dataclasses.replace(arrays, depths=arrays.depths + 500)
    assert not np.allclose(out_of_fold(deeper, folds, paths, batch_size=4, runtime=CPU).plain, oof.plain)


def test_read_test_depths_in_id_order_and_names_a_missing_one(tmp_path):
    from saltseg.data.tgs import read_test_depths

    (tmp_path / "depths.csv").write_text("id,z\nt01,300\nt00,120\n")
    assert read_test_depths(tmp_path, ["t00", "t01"]).tolist() == [120, 300]
    with pytest.raises(SaltError, match=r"depths.csv: no depth for 1 test id\(s\), e.g. t02"):
        read_test_depths(tmp_path, ["t00", "t02"])


# --- serving -------------------------------------------------------------------------------


def _served(cfg: ModelConfig):
    from saltseg.serving.ensemble_model import SaltEnsemble

    served = SaltEnsemble()
    served.ensemble = Ensemble((_model(cfg),), cfg, threshold=0.5, min_area=0, data_hash="0" * 16)
    served.max_batch = 8
    return served


def test_split_input_takes_images_alone_or_a_dict_with_depths():
    from saltseg.serving import split_input

    images = np.zeros((2, 101, 101))
    assert split_input(images, needs_depths=False) == (images, None)
    both = {"images": images, "depths": [1, 2]}
    assert split_input(both, needs_depths=True) == (images, [1, 2])
    assert split_input(both, needs_depths=False) == (images, None)  # a model without the switch ignores them
    with pytest.raises(SaltError, match=r"^depths: missing; this model takes each image's depth"):
        split_input(images, needs_depths=True)
    with pytest.raises(SaltError, match=r"^depths: missing"):
        split_input({"images": images}, needs_depths=True)
    with pytest.raises(SaltError, match=r"^input: expected the keys 'images' and .* got 'depth', 'images'"):
        split_input({"images": images, "depth": [1, 2]}, needs_depths=True)


def test_served_depth_model_needs_depths_and_the_plain_one_keeps_images_only():
    from saltseg.serving.ensemble_model import BadImages

    images, _ = salt_images(2)
    deep = _served(DEPTH)
    masks = deep.predict(None, {"images": images, "depths": np.array([100.0, 800.0])})
    assert masks.shape == (2, 101, 101) and masks.dtype == np.uint8
    expected = deep.ensemble.predict_masks(images, np.array([100.0, 800.0])).astype(np.uint8)
    np.testing.assert_array_equal(masks, expected)
    with pytest.raises(BadImages, match=r"^depths: missing") as refused:
        deep.predict(None, images)
    assert "\n" not in refused.value.message and refused.value.get_http_status_code() == 400
    with pytest.raises(BadImages, match=r"^depths: expected 2 \(one per image\), got 3"):
        deep.predict(None, {"images": images, "depths": [1.0, 2.0, 3.0]})
    plain = _served(TINY)
    np.testing.assert_array_equal(
        plain.predict(None, images), plain.predict(None, {"images": images, "depths": [1.0, 2.0]})
    )
