"""saltseg: salt segmentation in seismic images (TGS Salt Identification Challenge)."""

__version__ = "0.1.0"
