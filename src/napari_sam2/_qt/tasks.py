"""Background work in napari's ``thread_worker``, with errors turned into values.

Model work never raises inside a worker thread: the wrappers here catch the
exception and hand back a :class:`Failure`, which the widget shows as a
napari notification (napari's own relay would show a traceback, and a
``RuntimeError`` from a generator worker would be swallowed as an "aborted
thread").
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, NamedTuple

from napari.qt.threading import create_worker


class Failure(NamedTuple):
    """An exception raised by work done in a worker thread."""

    error: BaseException

    @property
    def message(self) -> str:
        text = str(self.error).strip()
        if isinstance(self.error, (ValueError, RuntimeError, TypeError, IndexError, KeyError, OSError)):
            return text or type(self.error).__name__
        return f"{type(self.error).__name__}: {text}" if text else type(self.error).__name__


def _call(func: Callable, args: tuple) -> Any:
    try:
        return func(*args)
    except Exception as exc:  # shown as a notification by the widget
        return Failure(exc)


def _iterate(make: Callable[..., Iterator], args: tuple) -> Iterator:
    try:
        items = make(*args)
    except Exception as exc:
        yield Failure(exc)
        return
    try:
        for item in items:
            yield item
    except Exception as exc:
        yield Failure(exc)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _relay(items: Iterator) -> Iterator:
    yield from items


def run_function(func: Callable, *args, done: Callable[[Any], None], finished: Callable[[], None]):
    """Run ``func(*args)`` in a worker; ``done(result_or_Failure)`` then
    ``finished()`` are called in the main thread."""
    worker = create_worker(_call, func, args, _start_thread=False)
    worker.returned.connect(done)
    worker.finished.connect(finished)
    worker.start()
    return worker


def run_generator(
    make: Callable[..., Iterator],
    *args,
    yielded: Callable[[Any], None],
    finished: Callable[[], None],
):
    """Iterate ``make(*args)`` in a worker; each item (or a final
    :class:`Failure`) goes to ``yielded`` in the main thread. ``worker.quit()``
    stops it before the next item; ``finished()`` runs in any case, after
    which the iteration is closed (in the main thread, between items), so a
    stopped engine generator runs its clean-up."""
    gen = _iterate(make, args)
    worker = create_worker(_relay, gen, _start_thread=False)
    worker.yielded.connect(yielded)
    worker.finished.connect(gen.close)  # first: the session is free again
    worker.finished.connect(finished)
    worker.start()
    return worker
