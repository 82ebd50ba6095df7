"""The README's napari-console example runs as written in a viewer (with a
random-weight checkpoint file in place of the downloaded model)."""

from __future__ import annotations

import numpy as np

from ..test_readme_example import readme_block


def test_console_example_runs(make_viewer, tiny_checkpoint):
    from napari_sam2._sample_data import cells_timelapse

    code = readme_block("Use it in napari")
    assert 'widget.load_model("sam2.1_hiera_tiny"' in code
    code = code.replace('"sam2.1_hiera_tiny"', repr(str(tiny_checkpoint)))
    code = code.replace("image_size=512", "image_size=256")  # the CPU of the test machine
    (image, kwargs, _), _ = cells_timelapse()
    viewer = make_viewer()
    viewer.add_image(image[:6], **kwargs)
    namespace = {"viewer": viewer}
    exec(compile(code, "README.md (Use it in napari)", "exec"), namespace)

    widget = namespace["widget"]
    assert widget.wait(120)
    obj = namespace["obj"]
    session = widget.session
    assert session.prompted_frames(obj) == [0, 5]
    # the last line undid the propagation: only the two prompted frames are left
    written = [f for f in range(6) if widget.labels_layer.data[f].any()]
    assert set(written) <= {0, 5}
    widget.labels_layer.redo()
    assert set(np.unique(widget.labels_layer.data)) <= {0, obj}
    assert all(widget.labels_layer.data[f].any() for f in range(6))
