"""The widget's background work: one model task at a time in napari's
``thread_worker`` (build/sync the session and decode clicks, encode the
current slice, clear objects, *Segment all*, and the long runs: propagate
and *Track all*), each write recorded as one undo step of the Labels layer.

A part the widget holds (``widget.runner``). It owns the session, what was
applied to it, the requests waiting and the running work; it reads the
layers and prompts through the :class:`~napari_sam2._qt.layer_binding.LayerBinding`
and records steps through the :class:`~napari_sam2._qt.recorder.Recorder`
it is given, and tells the widget what happened through its signals.
Order of priority when idle: clear objects > apply prompt changes >
intensity > a run (propagate, Segment all, Track all) > prepare the
current slice.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal

from ..layers import FramePrompt, labels_view, next_object_id
from .auto_jobs import LabelsBefore, Run, new_objects, propagated, tracked
from .frame_strip import NOT_REACHED
from .jobs import Counter, Stack, SyncJob, clear_work, image_snapshot, intensity_work, sync_work, with_progress
from .steps import PaintedMask
from .tasks import Failure, run_function, run_generator

PREPARE_DELAY_MS = 250  # debounce of the image encoding after the slice changes
SYNC_DELAY_MS = 20  # coalesces the events of one edit of the prompt layers


class Runner(QObject):
    """Schedules and runs the model work of the widget."""

    status = Signal(str)
    error = Signal(str)
    changed = Signal()  # what can be done changed (started or finished work)
    states_changed = Signal()  # the frames' states may have changed
    candidates = Signal(object)  # SAM's candidates for the selected object's clicks (jobs.Candidates or None)
    edited = Signal()  # a correction or a run was applied (time to autosave)
    progress = Signal(int, int)  # frames done, total of a run (0, 0: started)
    run_ended = Signal()
    frame_written = Signal(object, int)  # (stack, frame) written by a run
    prepared = Signal(int, float)  # frame encoded, seconds it took

    def __init__(self, *, binding, recorder, intensity, loading: Callable[[], bool],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._binding = binding
        self._recorder = recorder
        self._intensity = intensity  # the IntensityChoice: value() is the range a new session starts with
        self._loading = loading  # whether a model is loading
        self._model = None
        self._session = None
        self._stack: Stack | None = None
        self._applied: dict = {}
        self._generation = 0
        self._task = None  # the running one-off worker (sync, prepare, clear, Segment all)
        self._run: Run | None = None
        self._stopping = False
        self._want_sync = False
        self._want_prepare = False
        self._want_run: tuple | None = None  # (kind, args) of propagate / segment / track
        self._want_clear: list[int] = []
        self._want_intensity = False  # the intensity choice changed since the session took it
        self._range_value = None  # the intensity range the session was given
        # prompts an undo/redo put back, for the next sync (see SyncJob.restored)
        self._restored: dict | None = None
        self._restored_stack: Stack | None = None
        self._closed = False
        self._sync_timer = QTimer(self, singleShot=True, interval=SYNC_DELAY_MS)
        self._sync_timer.timeout.connect(self.request_sync)
        self._prepare_timer = QTimer(self, singleShot=True, interval=PREPARE_DELAY_MS)
        self._prepare_timer.timeout.connect(self._request_prepare)

    # ---------------------------------------------------------------- state
    @property
    def model(self):
        return self._model

    @property
    def session(self):
        return self._session

    @property
    def running(self) -> str | None:
        """The kind of long run going on ("propagate", "track") or None."""
        return None if self._run is None else self._run.kind

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def busy(self) -> bool:
        """Work running or waiting to run."""
        return bool(
            self._task is not None
            or self._run is not None
            or self._sync_timer.isActive()
            or self._want_sync
            or self._want_clear
            or self._want_run is not None
            or (self._want_intensity and self._session is not None)
        )

    def refusal(self, *, single: str | None) -> str | None:
        """Why a run cannot be asked for now (None: it can); ``single``: what
        to say on a single image (None: it can run there)."""
        b = self._binding
        if b.image is None:
            return "choose an image first"
        if single is not None and b.axis is None:
            return single
        if self._model is None and not self._loading():
            return "load a model first"
        if self._run is not None:
            what = "a propagation" if self._run.kind == "propagate" else "Track all"
            return f"{what} is already running; stop it first"
        return None

    def frame_states(self, obj: int | None = None) -> np.ndarray | None:
        """Per frame: ``FRAME_*`` of ``obj`` or of all objects (None); None
        without an image."""
        if self._binding.image is None:
            return None
        session = self._session
        if session is not None and not hasattr(session, "frame_states"):
            return None  # an engine without frame states (before issue 18's engine part)
        if session is None or (obj is not None and obj not in session.object_ids):
            return np.full(self._binding.num_frames(), NOT_REACHED, dtype=np.int8)
        return np.asarray(session.frame_states(obj), dtype=np.int8)

    def set_model(self, model) -> None:
        """Work with ``model`` from now on (the next kick uses it)."""
        self._model = model

    def close(self) -> None:
        self._closed = True
        self.stop()
        self._sync_timer.stop()
        self._prepare_timer.stop()

    def current_stack(self) -> Stack | None:
        """What a session is built for now (None without a model or image)."""
        b = self._binding
        if self._model is None or not b.ensure_layers():
            return None
        return Stack(b.image, b.labels, self._model, b.axis, tuple(sorted(b.fixed_index().items())))

    def forget_session(self) -> None:
        """Drop the session (a new one is built, and the prompts replayed, on
        the next need); a worker still using the old one finishes unseen."""
        self._generation += 1
        self._session = None
        self._stack = None
        self._applied = {}
        self._range_value = None
        self._want_clear = []  # objects of the old session
        self.states_changed.emit()

    def adopt(self, session, stack: Stack) -> None:
        """Use ``session`` (opened from a file), which holds the prompts as
        the binding has them now."""
        self.forget_session()
        self._session, self._stack = session, stack
        self._applied = self._binding.wanted_prompts(stack.axis, dict(stack.index))
        self._range_value = tuple(session.intensity_range)

    def note_restored(self) -> None:
        """An undo/redo put prompts back: their frames show the labels already."""
        stack = self.current_stack() if self._model is not None else None
        if stack is not None:
            self._restored = self._binding.wanted_prompts(stack.axis, dict(stack.index))
            self._restored_stack = stack

    # ---------------------------------------------------------------- requests
    def schedule_sync(self) -> None:
        self._sync_timer.start()

    def request_sync(self) -> None:
        self._want_sync = True
        self.kick()

    def on_dims(self) -> None:
        """The viewer moved: encode the new slice soon (not during a run)."""
        if self._binding.image is not None and self._run is None:
            self._prepare_timer.start()

    def _request_prepare(self) -> None:
        self._want_prepare = True
        self.kick()

    def prepare_later(self) -> None:
        """Encode the slice on screen when nothing else waits."""
        self._want_prepare = True

    def request_run(self, kind: str, *args) -> None:
        """After the prompts are applied: ``("propagate", direction, start,
        stop)``, ``("segment", frame, options)`` or ``("track", start, stop,
        options, detect_every, divisions)``."""
        self._want_run = (kind, args)
        self._want_sync = True
        self.kick()

    def cancel_runs(self) -> None:
        self._want_run = None

    def request_clear(self, obj: int) -> bool:
        """Clear ``obj``'s pixels through the engine (False: it has none there)."""
        if self._session is None or obj not in self._session.object_ids:
            return False
        self._want_clear.append(obj)
        return True

    def request_intensity(self) -> None:
        self._want_intensity = True
        self.kick()

    def stop(self) -> None:
        """Stop the run after the frame being computed."""
        if self._run is None or self._stopping:
            return
        self._stopping = True
        # thread-safe: ends a propagation or Track all after the frame being
        # computed (Track all then segments no further frame)
        self._run.session.stop()
        self._run.worker.quit()
        self.status.emit("Stopping…")
        self.changed.emit()

    # ---------------------------------------------------------------- scheduling
    def kick(self) -> None:
        """Start the next piece of background work, if none is running."""
        if self._closed or self._task is not None or self._run is not None:
            return
        if self._model is None and self._loading():
            return  # a model is loading: what is asked for runs once it is there
        stack = self.current_stack()
        if stack is None:
            if self._want_run is not None and self._model is None:
                self.error.emit("load a model first")
            self._want_run = None
            self._want_sync = self._want_prepare = False
            self._want_clear = []
            self.changed.emit()
            return
        if not stack.same(self._stack):
            self._session, self._applied = None, {}
            self._want_sync = self._want_sync or self._want_prepare or self._want_run is not None
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
        elif self._want_run is not None:
            (kind, args), self._want_run = self._want_run, None
            self._want_clear = []
            {"propagate": self._start_propagation, "segment": self._start_segment,
             "track": self._start_track}[kind](*args)
        elif self._want_prepare:
            self._want_prepare = False
            self._want_clear = []
            self._start_prepare()
        else:
            self._want_clear = []
        self.changed.emit()

    def _task_finished(self) -> None:
        self._task = None
        self.states_changed.emit()
        self.kick()

    def _kick_later(self) -> None:
        QTimer.singleShot(0, self.kick)

    def _commit(self, stack: Stack, state) -> bool:
        return self._recorder.commit(stack, state, with_state=stack.labels is self._binding.labels)

    # ---------------------------------------------------------------- sync
    def _start_sync(self, stack: Stack) -> None:
        axis, index = stack.axis, dict(stack.index)
        try:
            wanted = self._binding.wanted_prompts(axis, index)
        except Exception as exc:
            self.error.emit(f"cannot read the prompts: {exc}")
            return
        session = self._session if stack.same(self._stack) else None
        restored = self._restored if stack.same(self._restored_stack) else None
        self._restored = self._restored_stack = None
        if session is not None and wanted == self._applied and self._binding.lineage == session.lineage_state():
            return self._kick_later()
        binding = self._binding
        job = SyncJob(
            stack=stack,
            session=session,
            image=image_snapshot(binding.image),
            labels=binding.labels.data,
            position=tuple(binding.position()),
            applied=self._applied if session is not None else {},
            wanted=wanted,
            generation=self._generation,
            restored=restored,
            intensity=self._intensity.value() if session is None else self._range_value,
            focus=self._candidate_focus() if restored is None else None,
            state=binding.snapshot(),
        )
        if session is None:
            self.status.emit("Preparing the stack…")
        self._task = run_function(sync_work, job, self._model, done=self._on_synced, finished=self._task_finished)

    def _candidate_focus(self):
        """(object, frame) whose candidates to show: the selected object's
        latest click or box, else the frame on screen."""
        obj = self._binding.current_object
        if obj is None:
            return None
        last = self._binding.last_prompt
        return last if last is not None and last[0] == obj else (obj, self._binding.current_frame())

    def _on_synced(self, result) -> None:
        if isinstance(result, Failure):
            self._want_run = None
            self.error.emit(result.message)
            return
        job = result.job
        if job.restored is None or result.changes:
            for frame, previous, labels in result.changes:
                self._recorder.add_frame(frame, previous, labels)
            self._commit(job.stack, job.state)
        if job.generation == self._generation and job.stack.same(self.current_stack()):
            if result.session is not self._session:
                self._range_value = job.intensity
            self._session, self._stack, self._applied = result.session, job.stack, result.applied
        for message in result.errors:
            self.error.emit(message)
        if job.focus is not None:
            self.candidates.emit(result.candidates)
        if result.changes:
            self.status.emit(f"Segmented frame {', '.join(str(c[0]) for c in result.changes)}")
        if result.changes or result.applied != job.applied or result.lineage_changed:
            self.edited.emit()

    # ---------------------------------------------------------------- intensity
    def _start_intensity(self) -> None:
        session, stack, value = self._session, self._stack, self._intensity.value()
        if value == self._range_value:
            return self._kick_later()
        frame, state = self._binding.current_frame(), self._binding.snapshot()

        def done(result):
            if isinstance(result, Failure):
                self.error.emit(f"could not use the intensity range {value}: {result.message}")
                return
            self._range_value = value
            for f, previous, labels in result:
                self._recorder.add_frame(f, previous, labels)
            self._commit(stack, state)
            lo, hi = session.intensity_range
            self.status.emit(
                f"Intensity range {lo:g} to {hi:g}: frames are encoded again when needed; "
                "propagate to redo the tracked frames."
            )

        self.status.emit("Applying the intensity range…")
        self._task = run_function(intensity_work, session, value, frame, done=done, finished=self._task_finished)

    # ---------------------------------------------------------------- prepare
    def _start_prepare(self) -> None:
        session = self._session
        if session is None:
            return
        frame = self._binding.current_frame()
        if session.is_prepared(frame):
            return
        self.status.emit(f"Computing image features of frame {frame}…")
        started = time.monotonic()

        def done(result):
            if isinstance(result, Failure):
                self.error.emit(f"could not encode frame {frame}: {result.message}")
            else:
                self.prepared.emit(frame, time.monotonic() - started)

        self._task = run_function(session.prepare_frame, frame, done=done, finished=self._task_finished)

    # ---------------------------------------------------------------- clear
    def _start_clear(self, objects: list[int]) -> None:
        session, stack, state = self._session, self._stack, self._binding.snapshot()

        def done(result):
            if isinstance(result, Failure):
                self.error.emit(f"could not clear: {result.message}")
                return
            for frame, ys, xs, obj, width in result.pixels:
                old = np.full(len(ys), obj, dtype=stack.labels.data.dtype)
                self._recorder.add_pixels(frame, ys, xs, old, np.zeros_like(old), width=width)
            self._commit(stack, state)
            self._applied = {k: v for k, v in self._applied.items() if k[0] not in objects}

        self._task = run_function(clear_work, session, objects, done=done, finished=self._task_finished)

    # ---------------------------------------------------------------- Segment all
    def _start_segment(self, frame: int, options) -> None:
        session, stack = self._session, self._stack
        if session is None:
            return  # the sync that should have made it failed (and said why)
        self.status.emit(f"Segment all: finding the objects on frame {frame}…")

        def done(result):
            if isinstance(result, Failure):
                self.error.emit(f"Segment all failed: {result.message}")
            elif session is not self._session or not stack.same(self.current_stack()):
                self.error.emit("the image, labels or slice changed while segmenting; press Segment all again")
            else:
                self._add_segmented(stack, frame, result, options)

        self._task = run_function(session.segment_everything, frame, options, done=done,
                                  finished=self._task_finished)

    def _add_segmented(self, stack: Stack, frame: int, result, options) -> None:
        """The objects found that the labels do not hold yet become objects
        with their masks as prompts (one undo step)."""
        binding = self._binding
        view = labels_view(stack.labels.data, stack.axis, dict(stack.index))
        previous = np.array(view[frame], copy=True)
        first = next_object_id(stack.labels.data, binding.object_ids)
        found = new_objects(result, previous, first_id=first, overlap=options.new_object_overlap)
        if not found:
            self.status.emit(f"Segment all: no new objects on frame {frame} "
                             f"({len(result.objects)} found, all segmented already).")
            return
        frame_labels = previous.copy()
        for obj, mask in found:
            frame_labels[mask] = obj
        view[frame] = frame_labels
        self._recorder.add_frame(frame, previous, frame_labels)
        binding.add_objects([obj for obj, _ in found], {(obj, frame): PaintedMask(m) for obj, m in found})
        self._commit(stack, binding.snapshot())
        self.schedule_sync()  # the masks become the new objects' prompts in the engine
        self.status.emit(f"Segment all: {len(found)} objects on frame {frame} (Undo removes them).")

    # ---------------------------------------------------------------- runs
    def _start_propagation(self, direction: str, start, stop) -> None:
        session, stack = self._session, self._stack
        if session is None:
            self.error.emit("nothing to propagate: add a point or a box first")
            return
        counter = Counter()
        try:
            self._mark_undone(session, stack)
            results = session.propagate_results(direction, start, stop, progress=counter)
        except Exception as exc:
            self.error.emit(str(exc))
            return
        self._begin("propagate", stack, session, None, propagated(results), counter)
        self.status.emit(f"Propagating {direction}…")

    def _start_track(self, start, stop, options, detect_every: int, divisions) -> None:
        session, stack = self._session, self._stack
        if session is None:
            return  # the sync that should have made it failed (and said why)
        counter = Counter()
        try:
            self._mark_undone(session, stack)
            results = session.track_everything("forward", start, stop, options=options, detect_every=detect_every,
                                               divisions=divisions, progress=counter)
        except Exception as exc:
            self.error.emit(f"Track all: {exc}")
            return
        lo = 0 if start is None else int(start)
        hi = session.num_frames - 1 if stop is None else int(stop)
        view = labels_view(stack.labels.data, stack.axis, dict(stack.index))
        before = LabelsBefore(view, lo, hi)
        self._begin("track", stack, session, before, tracked(results, before), counter)
        # the engine numbers new objects from one above every id and label
        self._run.first_new = max(int(np.max(view)), *session.object_ids, 0) + 1
        self.status.emit(f"Track all: finding the objects on frame {lo}…")

    def _mark_undone(self, session, stack: Stack) -> None:
        """Frames whose labels were undone or repainted are computed again."""
        undone = self._recorder.undone_frames(stack.labels, (stack.axis, stack.index))
        if undone:
            session.mark_stale(sorted(undone))

    def _begin(self, kind, stack, session, before, items, counter) -> None:
        self._stopping = False
        worker = run_generator(with_progress, items, counter, yielded=self._on_frame, finished=self._on_run_finished)
        self._run = Run(kind, worker, stack, self._binding.snapshot(), session, before)
        self.progress.emit(0, 0)
        self.changed.emit()

    def _on_frame(self, item) -> None:
        run = self._run
        if run is None:
            return
        if isinstance(item, Failure):
            run.failed = True
            what = "propagation" if run.kind == "propagate" else "Track all"
            self.error.emit(f"{what} failed: {item.message}")
            return
        written, done, total = item
        labels = self._binding.keep_paint(run.stack, written.frame, written.labels, written.object_ids)
        self._recorder.add_frame(written.frame, written.previous, labels)
        run.seen.add(written.frame)
        run.found.update(written.object_ids)
        self.states_changed.emit()
        self.progress.emit(done, total)
        if self._stopping:
            return
        n = _frames(len(run.seen))
        if run.kind == "propagate":
            self.status.emit(f"Propagating: frame {written.frame} ({n} done)")
        else:
            self.status.emit(f"Track all: frame {written.frame} ({n} done, {len(run.found)} objects)")
        self.frame_written.emit(run.stack, written.frame)

    def _on_run_finished(self) -> None:
        run, self._run = self._run, None
        stopped, self._stopping = self._stopping, False
        state = self._finish_track(run) if run.kind == "track" else run.state
        self._commit(run.stack, state)
        self.states_changed.emit()
        self.run_ended.emit()
        done = _frames(len(run.seen))
        what = "Propagated" if run.kind == "propagate" else "Track all:"
        if stopped:
            self.status.emit(f"Stopped after {done} (Undo reverts them)")
        elif run.failed:
            pass  # the error stays on the status line
        elif run.kind == "track":
            n = len(run.found & (run.ids_before | run.new_ids))
            left = f", {len(run.lost)} left" if run.lost else ""
            self.status.emit(f"{what} {n} objects on {done}, {len(run.new_ids)} new{left} (Undo reverts it)")
        else:
            self.status.emit(f"{what} {done} (Undo reverts them)" if run.seen
                             else "Nothing to propagate: every frame is up to date")
        self.changed.emit()
        self.edited.emit()
        self._want_prepare = True
        self.kick()

    def _finish_track(self, run: Run):
        """After Track all: frames it wrote without handing them over (a
        stopped run) join the step; the objects it found join the widget,
        those still tracked with their mask prompts; the objects it stopped
        tracking (they left) keep their labels but lose their prompts, as in
        the engine (Undo brings them back); the lineage is the engine's
        (divisions found). Returns the prompt state the step ends with."""
        view = labels_view(run.stack.labels.data, run.stack.axis, dict(run.stack.index))
        for f in run.before.frames:
            if f in run.seen:
                continue
            now, then = np.asarray(view[f]), run.before.frame(f)
            if not np.array_equal(now, then):
                self._recorder.add_frame(f, then, np.array(now, copy=True))
                ids = np.unique(now)
                run.found.update(int(i) for i in ids[ids != 0])
        masks = {}
        for rec in run.session.prompt_records():
            if rec.id not in run.ids_before:
                masks.update({(int(rec.id), int(f)): PaintedMask(p.mask)
                              for f, p in rec.frames.items() if p.mask is not None})
        run.new_ids = {i for i in run.found if i >= run.first_new} | {obj for obj, _ in masks}
        run.lost = run.ids_before - set(run.session.object_ids)
        if run.session is not self._session or run.stack.labels is not self._binding.labels:
            return run.state
        self._applied = {key: p for key, p in self._applied.items() if key[0] not in run.lost}
        self._applied.update({key: FramePrompt(mask=m) for key, m in masks.items()})
        for obj in run.lost:
            self._binding.forget_object(obj)
        self._binding.add_objects(run.new_ids, masks)
        self._binding.set_lineage(run.session.lineage_state())
        return self._binding.snapshot()


def _frames(n: int) -> str:
    return f"{n} frame" if n == 1 else f"{n} frames"
