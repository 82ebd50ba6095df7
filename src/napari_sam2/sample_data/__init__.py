"""Small synthetic sample stacks shipped with the plugin (TIFF files).

The files are made by :mod:`napari_sam2.sample_data.generate` and read by
:mod:`napari_sam2._sample_data` through ``importlib.resources``.
"""
