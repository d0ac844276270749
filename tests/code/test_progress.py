"""Progress output without a terminal: one readable line per task."""

import re

from saltseg import progress


def test_plain_mode_writes_one_readable_line_per_task(monkeypatch, capsys):
    monkeypatch.setenv("CI", "1")  # what a pipeline or a log file sees
    with progress.task("fold 0 bce epoch 1/2", total=3) as bar:
        for loss in (0.9, 0.7, 0.5):
            bar.advance(1, loss=loss)
        bar.finish(val_iou=0.25, images=12)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.fullmatch(
        r"fold 0 bce epoch 1/2: loss 0\.5000, val_iou 0\.2500, images 12, \d+\.\d s\n", captured.err
    )


def test_plain_line_without_fields_gives_the_time():
    assert progress.plain_line("predict 12 images", {}, 0.44) == "predict 12 images: 0.4 s"
