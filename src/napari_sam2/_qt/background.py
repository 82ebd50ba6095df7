"""The widget's background work: one model task at a time in napari's
``thread_worker`` (build/sync the session and decode clicks, encode the
current slice, clear objects, propagate), each write recorded as one undo
step of the Labels layer.

A mixin of :class:`napari_sam2._widget.SAM2Widget`, which holds the state.
Order of priority when idle: clear objects > apply prompt changes >
propagate > prepare the current slice.
"""

from __future__ import annotations

import time

import numpy as np
from qtpy.QtCore import QTimer

from ..layers import data_position, fixed_index, labels_view, layer_indices
from .jobs import (
    Counter,
    Stack,
    SyncJob,
    clear_work,
    image_snapshot,
    intensity_work,
    sync_work,
    with_progress,
)
from .tasks import Failure, run_function, run_generator


class BackgroundWork:
    """Scheduling and running model work (a mixin of the widget)."""

    def _schedule_sync(self) -> None:
        self._sync_timer.start()

    def _request_sync(self) -> None:
        self._want_sync = True
        self._kick()

    def _on_dims(self, event=None) -> None:
        if self._image is not None:
            self.frame_strip.set_current_frame(self._current_frame())
        if self._image is not None and self._propagation is None:
            self._prepare_timer.start()

    def _request_prepare(self) -> None:
        self._want_prepare = True
        self._kick()

    def _current_stack(self) -> Stack | None:
        if self._model is None or not self._ensure_layers():
            return None
        index = fixed_index(self._position(), self._image_shape(), self._axis)
        return Stack(self._image, self._labels, self._model, self._axis, tuple(sorted(index.items())))

    def _forget_session(self) -> None:
        """Drop the session (a new one is built, and the prompts replayed, on
        the next need); a worker still using the old one finishes unseen."""
        self._generation += 1
        self._session = None
        self._stack = None
        self._applied = {}
        self._range_value = None
        self._refresh_states()

    def _kick(self) -> None:
        """Start the next piece of background work, if none is running."""
        if self._closed or self._task is not None or self._propagation is not None:
            return
        if self._model is None and self.model_panel.busy:
            return  # a model is loading: what is asked for runs once it is there
        stack = self._current_stack()
        if stack is None:
            if self._want_propagate is not None and self._model is None:
                self._error("load a model first")
            self._want_propagate = None
            self._want_sync = self._want_prepare = False
            self._want_clear = []
            self._update_buttons()
            return
        if not stack.same(self._stack):
            self._session, self._applied = None, {}
            self._want_sync = self._want_sync or self._want_prepare or self._want_propagate is not None
        if self._want_clear and self._session is not None:
            objects, self._want_clear = self._want_clear, []
            self._start_clear(objects)
        elif self._want_sync or self._sync_timer.isActive():
            self._sync_timer.stop()
            self._want_sync = False
            self._start_sync(stack)
        elif self._want_intensity and self._session is not None:
            self._want_intensity = False
            self._start_intensity()
        elif self._want_propagate is not None:
            request, self._want_propagate = self._want_propagate, None
            self._want_clear = []
            self._start_propagation(*request)
        elif self._want_prepare:
            self._want_prepare = False
            self._want_clear = []
            self._start_prepare()
        else:
            self._want_clear = []
        self._update_buttons()

    def _task_finished(self) -> None:
        self._task = None
        self._refresh_states()
        self._kick()

    # ---------------------------------------------------------------- sync
    def _start_sync(self, stack: Stack) -> None:
        axis, index = stack.axis, dict(stack.index)
        try:
            wanted = self._wanted_prompts(axis, index)
        except Exception as exc:
            self._error(f"cannot read the prompts: {exc}")
            return
        session = self._session if stack.same(self._stack) else None
        restored = self._restored if stack.same(self._restored_stack) else None
        self._restored = self._restored_stack = None
        if session is not None and wanted == self._applied:
            return self._kick_later()
        job = SyncJob(
            stack=stack,
            session=session,
            image=image_snapshot(self._image),
            labels=self._labels.data,
            position=tuple(self._position()),
            applied=self._applied if session is not None else {},
            wanted=wanted,
            generation=self._generation,
            restored=restored,
            intensity=self.intensity_range() if session is None else self._range_value,
            focus=self._candidate_focus() if restored is None else None,
            state=self._snapshot(),
        )
        if session is None:
            self._set_status("Preparing the stack…")
        self._task = run_function(sync_work, job, self._model, done=self._on_synced, finished=self._task_finished)

    def _candidate_focus(self):
        """(object, frame) whose candidates to show: the selected object's
        latest click or box, else the frame on screen."""
        obj = self.current_object
        if obj is None:
            return None
        last = self._last_prompt
        return last if last is not None and last[0] == obj else (obj, self._current_frame())

    def _kick_later(self) -> None:
        QTimer.singleShot(0, self._kick)

    def _on_synced(self, result) -> None:
        if isinstance(result, Failure):
            self._want_propagate = None
            self._error(result.message)
            return
        job = result.job
        if job.restored is None or result.changes:
            self._record(result.changes, job.stack, job.state)
        if job.generation == self._generation and job.stack.same(self._current_stack()):
            if result.session is not self._session:
                self._range_value = job.intensity
            self._session, self._stack, self._applied = result.session, job.stack, result.applied
        for message in result.errors:
            self._error(message)
        if job.focus is not None:
            self._show_candidates(result.candidates)
        if result.changes:
            self._set_status(f"Segmented frame {', '.join(str(c[0]) for c in result.changes)}")
        if result.changes or result.applied != job.applied:
            self.session_files.changed()  # autosave, if on

    def _record(self, changes, stack: Stack, state) -> None:
        """One undo step for frames written by a click/box/clear."""
        for frame, previous, labels in changes:
            self._history.add_frame(frame, previous, labels)
        self._commit(stack, state)

    def _commit(self, stack: Stack, state) -> bool:
        """Record the collected changes, and the widget's prompt ``state``
        they go with, as one undo step of the labels layer."""
        axis, index, ndim = stack.axis, dict(stack.index), stack.labels.ndim

        def to_indices(frame, ys, xs):
            return layer_indices(frame, ys, xs, axis=axis, index=index, ndim=ndim)

        marker = self._step_marker(stack.labels, state) if stack.labels is self._labels else None
        self._committing = True
        try:
            return self._history.commit(stack.labels, to_indices, key=(stack.axis, stack.index), marker=marker)
        finally:
            self._committing = False

    # ---------------------------------------------------------------- intensity
    def _start_intensity(self) -> None:
        session, stack, value = self._session, self._stack, self.intensity_range()
        if value == self._range_value:
            return self._kick_later()
        frame, state = self._current_frame(), self._snapshot()

        def done(result):
            if isinstance(result, Failure):
                self._error(f"could not use the intensity range {value}: {result.message}")
                return
            self._range_value = value
            self._record(result, stack, state)
            lo, hi = session.intensity_range
            self._set_status(
                f"Intensity range {lo:g} to {hi:g}: frames are encoded again when needed; "
                "propagate to redo the tracked frames."
            )

        self._set_status("Applying the intensity range…")
        self._task = run_function(intensity_work, session, value, frame, done=done, finished=self._task_finished)

    # ---------------------------------------------------------------- prepare
    def _start_prepare(self) -> None:
        session = self._session
        if session is None:
            return
        frame = self._current_frame()
        if session.is_prepared(frame):
            return
        self._set_status(f"Computing image features of frame {frame}…")
        started = time.monotonic()

        def done(result):
            if isinstance(result, Failure):
                self._error(f"could not encode frame {frame}: {result.message}")
            else:
                self._set_status(f"Frame {frame} ready ({time.monotonic() - started:.1f} s). " + self._ready_text())

        self._task = run_function(session.prepare_frame, frame, done=done, finished=self._task_finished)

    # ---------------------------------------------------------------- clear
    def _start_clear(self, objects: list[int]) -> None:
        session, stack, state = self._session, self._stack, self._snapshot()

        def done(result):
            if isinstance(result, Failure):
                self._error(f"could not clear: {result.message}")
                return
            for frame, ys, xs, obj, width in result.pixels:
                old = np.full(len(ys), obj, dtype=stack.labels.data.dtype)
                self._history.add_pixels(frame, ys, xs, old, np.zeros_like(old), width=width)
            self._commit(stack, state)
            self._applied = {k: v for k, v in self._applied.items() if k[0] not in objects}

        self._task = run_function(clear_work, session, objects, done=done, finished=self._task_finished)

    # ---------------------------------------------------------------- propagate
    def _start_propagation(self, direction: str, start, stop) -> None:
        session, stack = self._session, self._stack
        if session is None:
            self._error("nothing to propagate: add a point or a box first")
            return
        counter = Counter()
        try:
            undone = self._history.undone_frames(stack.labels, (stack.axis, stack.index))
            if undone:
                session.mark_stale(sorted(undone))
            results = session.propagate_results(direction, start, stop, progress=counter)
        except Exception as exc:
            self._error(str(exc))
            return
        self._stopping = False
        self._frames_seen = set()
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(True)
        self._set_status(f"Propagating {direction}…")
        worker = run_generator(
            with_progress, results, counter, yielded=self._on_frame, finished=self._on_propagation_finished
        )
        self._propagation = (worker, stack, self._snapshot())
        self._update_buttons()

    def _on_frame(self, item) -> None:
        if self._propagation is None:
            return
        if isinstance(item, Failure):
            self._error(f"propagation failed: {item.message}")
            return
        result, done, total = item
        stack = self._propagation[1]
        layer = stack.labels
        self._history.add_frame(result.frame, result.previous, self._keep_paint(stack, result))
        self._frames_seen.add(result.frame)  # "both" passes the prompted frame twice
        self._refresh_states()
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        if self._stopping:
            return
        self._set_status(f"Propagating: frame {result.frame} ({_frames(len(self._frames_seen))} done)")
        if self.follow_box.isChecked() and stack.axis is not None and stack.image in self.viewer.layers:
            self._show_frame(stack, result.frame)
        elif self._current_frame() == result.frame:
            layer.refresh()

    def _keep_paint(self, stack: Stack, result) -> np.ndarray:
        """The frame as written, with painted mask prompts put back exactly
        (the engine writes a prompted frame from its low-resolution mask)."""
        masks = [(obj, m.array) for (obj, f), m in self._masks.items()
                 if f == result.frame and obj in result.object_ids]
        if not masks or stack.labels is not self._labels:
            return result.labels
        view = labels_view(stack.labels.data, stack.axis, dict(stack.index))
        frame = np.array(view[result.frame], copy=True)
        for obj, mask in masks:
            frame[(frame == obj) & ~mask] = 0
            frame[mask] = obj
        view[result.frame] = frame
        return frame

    def _show_frame(self, stack: Stack, frame: int) -> None:
        image = stack.image
        pos = list(data_position(self._position(), self._image_shape()))
        pos[stack.axis] = frame
        world = image.data_to_world(pos)
        axis = self.viewer.dims.ndim - image.ndim + stack.axis
        self.viewer.dims.set_point(axis, world[stack.axis])
        stack.labels.refresh()

    def _on_propagation_finished(self) -> None:
        worker, stack, state = self._propagation
        self._propagation = None
        stopped = self._stopping
        self._stopping = False
        self._commit(stack, state)
        self._refresh_states()
        done = _frames(len(self._frames_seen))
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        if stopped:
            self._set_status(f"Stopped after {done} (Undo reverts them)")
        elif not self.status.text().startswith("Error"):
            self._set_status(f"Propagated {done} (Undo reverts them)" if self._frames_seen
                             else "Nothing to propagate: every frame is up to date")
        self._update_buttons()
        self.session_files.changed()  # autosave, if on
        self._want_prepare = True
        self._kick()


def _frames(n: int) -> str:
    return f"{n} frame" if n == 1 else f"{n} frames"
