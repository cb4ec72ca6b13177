"""The next window of requests prepared while the judge scores this one.

A run hands its backend windows of requests (``Backend.score_windows``). Preparing a window
(store look-ups, the judge's tokenisation) is host work; done between windows it leaves the
engine idle. ``Prefetch`` runs the preparation in one producer thread, ``depth`` windows ahead
through a bounded queue, so the engine's loop only takes what is ready. Whatever the producer
raises is raised in the consumer, where the run would have raised it; closing the consumer stops
the producer and waits for it, so nothing keeps using a tokenizer or store after a run ends.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Windows prepared ahead of the one being scored; 0 prepares each when it is taken (the old,
#: sequential order: tests and ``benchmarks/pipeline.py`` compare the two).
DEPTH = 1
#: What ``get(block=False)`` returns while the next window is still being prepared.
NOT_READY: Any = object()
_END = object()


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetch(Generic[T]):
    """Items of ``source`` made in a producer thread, at most ``depth`` ahead, in order."""

    def __init__(self, source: Iterable[T], depth: int | None = None) -> None:
        self._source = iter(source)
        self._depth = DEPTH if depth is None else depth
        self._stop = threading.Event()
        self._done = False
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(self._depth, 1))
        self._thread: threading.Thread | None = None
        if self._depth > 0:
            self._thread = threading.Thread(
                target=self._produce, name="judgekit-prefetch", daemon=True
            )
            self._thread.start()

    def _produce(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as error:  # handed to the consumer, raised there
            self._put(_Raised(error))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def get(self, block: bool = True) -> T | Any:
        """The next item; ``NOT_READY`` when ``block`` is False and it is still being made.

        Raises ``StopIteration`` after the last item, and what the producer raised.
        """
        if self._done:
            raise StopIteration
        if self._thread is None:
            item = next(self._source, _END)
        else:
            try:
                item = self._queue.get(block=block)
            except queue.Empty:
                return NOT_READY
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Raised):
            self._done = True
            raise item.error
        return item

    def __iter__(self) -> Iterator[T]:
        while True:
            try:
                yield self.get()
            except StopIteration:
                return

    def close(self) -> None:
        """Stop the producer and wait for it (it finishes the item in hand)."""
        self._done = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        elif hasattr(self._source, "close"):
            self._source.close()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
