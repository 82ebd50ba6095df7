"""Choosing and loading the SAM 2 model (download with progress, in a worker)."""

from __future__ import annotations

import os

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QWidget,
)

from .tasks import Failure, run_function

FILE_CHOICE = "Checkpoint file…"
DEVICES = ("auto", "cpu", "cuda", "mps")
SIZES = ("model default", "1024", "768", "512", "256")
DEFAULT_MODEL = "sam2.1_hiera_tiny"


class _Relay(QObject):
    """Carries download progress from the worker thread to the main thread."""

    progress = Signal(object, object)


class ModelPanel(QGroupBox):
    """Model name or checkpoint file, device, input size, and a Load button.

    Emits ``loaded(model, description)`` in the main thread, or
    ``failed(message)`` when loading or downloading fails; then ``finished()``.
    """

    loaded = Signal(object, str)
    failed = Signal(str)
    finished = Signal()  # after loaded/failed, once the panel is idle again

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        from ..checkpoints import available_models

        self.name_box = QComboBox()
        self.name_box.addItems([*available_models(), FILE_CHOICE])
        if DEFAULT_MODEL in available_models():
            self.name_box.setCurrentText(DEFAULT_MODEL)
        self.name_box.setToolTip(
            "A SAM 2 model (downloaded on first use into $NAPARI_SAM2_CHECKPOINT_DIR or the "
            "user cache folder), or a checkpoint file of your own"
        )
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("path to a .pt checkpoint")
        self.browse_button = QPushButton("…")
        self.browse_button.setMaximumWidth(28)
        self.path_edit.setToolTip("A SAM 2 / SAM 2.1 checkpoint file (.pt), Meta's or your own")
        self.browse_button.setToolTip("Choose a checkpoint file")
        path_row = QWidget()
        row = QHBoxLayout(path_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.path_edit)
        row.addWidget(self.browse_button)
        self._path_row = path_row

        self.device_box = QComboBox()
        self.device_box.addItems(DEVICES)
        self.device_box.setToolTip(
            "Where the model runs: auto picks CUDA, then Apple MPS, then the CPU"
        )
        self.size_box = QComboBox()
        self.size_box.setEditable(True)
        self.size_box.addItems(SIZES)
        self.size_box.setToolTip(
            "Input size of the network: smaller is faster (e.g. 512 on a CPU or for small images)"
        )
        self.load_button = QPushButton("Load model")
        self.load_button.setToolTip(
            "Load the chosen model in the background (downloading it on first use)"
        )
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel("No model loaded")
        self.status.setWordWrap(True)

        form = QFormLayout(self)
        form.addRow("Model", self.name_box)
        form.addRow("File", path_row)
        form.addRow("Device", self.device_box)
        form.addRow("Input size", self.size_box)
        form.addRow(self.load_button)
        form.addRow(self.progress)
        form.addRow(self.status)

        self._relay = _Relay()
        self._relay.progress.connect(self._on_progress)
        self._worker = None
        self.name_box.currentTextChanged.connect(self._on_name)
        self.browse_button.clicked.connect(self._browse)
        self.load_button.clicked.connect(lambda: self.load())
        self._on_name(self.name_box.currentText())

    # ------------------------------------------------------------ public
    @property
    def busy(self) -> bool:
        return self._worker is not None

    def settings(self) -> tuple[str, str | None, int | None]:
        """``(name_or_path, device, image_size)`` as chosen in the panel."""
        name = self.name_box.currentText()
        if name == FILE_CHOICE:
            name = self.path_edit.text().strip()
        device = self.device_box.currentText()
        size_text = self.size_box.currentText().strip()
        size = int(size_text) if size_text.isdigit() else None
        return name, (None if device == "auto" else device), size

    def load(self, name_or_path: str | os.PathLike | None = None, *, device: str | None = None,
             image_size: int | None = None) -> None:
        """Load a model in a worker (the fields show what is being loaded)."""
        if self.busy:
            return
        if name_or_path is not None:
            self._show_settings(os.fspath(name_or_path), device, image_size)
        name, device, size = self.settings()
        if not name:
            self.failed.emit("choose a model, or a checkpoint file to load")
            return
        from ..checkpoints import load_model

        def work():
            return load_model(name, device=device, image_size=size, progress=self._relay.progress.emit)

        self.load_button.setEnabled(False)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.status.setText(f"Loading {os.path.basename(name)}…")
        self._description = f"{os.path.basename(name)} on {device or 'auto'}" + (
            f" at {size} px" if size else ""
        )
        self._worker = run_function(work, done=self._on_done, finished=self._on_finished)

    # ------------------------------------------------------------ internals
    def _show_settings(self, name: str, device: str | None, size: int | None) -> None:
        if self.name_box.findText(name) >= 0:
            self.name_box.setCurrentText(name)
        else:
            self.name_box.setCurrentText(FILE_CHOICE)
            self.path_edit.setText(name)
        self.device_box.setCurrentText(device or "auto")
        self.size_box.setCurrentText(str(size) if size else SIZES[0])

    def _on_name(self, text: str) -> None:
        self._path_row.setEnabled(text == FILE_CHOICE)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "SAM 2 checkpoint", "", "Checkpoints (*.pt *.pth);;All files (*)"
        )
        if path:
            self.name_box.setCurrentText(FILE_CHOICE)
            self.path_edit.setText(path)

    def _on_progress(self, done, total) -> None:
        if total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done / total))
            self.status.setText(f"Downloading… {done / 2**20:.0f} of {total / 2**20:.0f} MiB")
        else:
            self.status.setText(f"Downloading… {done / 2**20:.0f} MiB")

    def _on_done(self, result) -> None:
        if isinstance(result, Failure):
            self.status.setText("Loading failed")
            self.failed.emit(f"could not load the model: {result.message}")
            return
        model = result
        self.status.setText(f"Loaded {self._description} ({model.device})")
        self.loaded.emit(model, self._description)

    def _on_finished(self) -> None:
        self._worker = None
        self.load_button.setEnabled(True)
        self.progress.setVisible(False)
        self.finished.emit()
