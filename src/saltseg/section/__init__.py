"""Whole seismic sections and volumes: read, scale, tile, predict, stitch, write.

`stitch` is pure numpy and takes any tile predictor, so tests pass stand-ins;
`run.predict_section` wires it to SEG-Y/npy/PNG files and `saltseg.inference.Ensemble`.
"""
