"""The simulator clock: simulated time = start + real elapsed * scale + manual advances."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class SimClock:
    """Monotonic simulated time in epoch seconds; tests drive it with `advance`."""

    def __init__(self, scale: float = 1.0, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._scale = float(scale)
        self._start = float(
            start if start is not None else int(time.time())
        )  # whole seconds: reproducible offsets
        self._t0 = time.monotonic()
        self._offset = 0.0

    @property
    def scale(self) -> float:
        return self._scale

    def now(self) -> float:
        """Simulated epoch seconds."""
        with self._lock:
            return self._start + (time.monotonic() - self._t0) * self._scale + self._offset

    def now_dt(self) -> datetime:
        """Simulated time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now(), UTC)

    def advance(self, seconds: float) -> float:
        """Move simulated time forward; returns the new simulated time."""
        if seconds < 0:
            raise ValueError("the simulator clock only moves forward")
        with self._lock:
            self._offset += float(seconds)
        return self.now()

    def set_scale(self, scale: float) -> None:
        """Change the speed without jumping: time so far is kept."""
        with self._lock:
            now_mono = time.monotonic()
            self._offset += (now_mono - self._t0) * self._scale
            self._t0 = now_mono
            self._scale = float(scale)
