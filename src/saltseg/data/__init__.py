"""Data layer: RLE, the Kaggle folder layout, ingest, synthetic data, prepared arrays, folds.

Kept empty on purpose: importing `saltseg.data.<module>` loads only what that module needs.
"""
