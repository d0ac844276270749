"""Per-coverage-class breakdown: the table, its MLflow names, the axis labels, the worst-per-class figure."""

import numpy as np

from saltseg.coverage_report import WORST_PER_CLASS, class_label, coverage_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_coverage_table_counts_and_averages_each_class_by_hand():
    scores = np.array([1.0, 0.0, 0.5, 0.3, 0.9, 1.0])
    ious = np.array([1.0, 0.2, 0.6, 0.4, 0.8, 1.0])
    classes = np.array([3, 0, 3, 10, 3, 0])
    table = coverage_table(scores, ious, classes)
    assert list(table.columns) == ["class", "n_images", "score", "iou"]
    assert table["class"].tolist() == [0, 3, 10]  # ascending, only classes present
    assert table["n_images"].tolist() == [2, 3, 1]
    # class 0: (0 + 1) / 2, (0.2 + 1) / 2; class 3: (1 + 0.5 + 0.9) / 3, (1 + 0.6 + 0.8) / 3.
    np.testing.assert_allclose(table["score"], [0.5, 0.8, 0.3])
    np.testing.assert_allclose(table["iou"], [0.6, 0.8, 0.4])


def test_class_label_names_empty_and_the_coverage_bin():
    assert class_label(0, 11) == "0\nempty"
    assert class_label(1, 11) == "1\n0-10%"
    assert class_label(10, 11) == "10\n90-100%"
    assert class_label(2, 5) == "2\n25-50%"


def test_worst_by_class_draws_a_row_per_non_empty_class(tmp_path):
    from test_evaluate import prepared_arrays

    from saltseg.coverage_report import worst_by_class

    prepared = prepared_arrays(12)
    classes = np.array([0, 1, 1, 2] * 3)
    scores = np.linspace(0, 1, 12)
    out = tmp_path / "worst_by_class.png"
    worst_by_class(prepared, prepared.masks, scores, classes, out)
    assert out.read_bytes()[:8] == PNG_MAGIC
    from PIL import Image

    width, height = Image.open(out).size
    # Two non-empty classes: two rows of WORST_PER_CLASS columns (1.6 x 1.8 inches each at 90 dpi).
    assert (width, height) == (round(1.6 * WORST_PER_CLASS * 90), round(2 * 1.8 * 90))
