"""Progress of a long job: a tqdm bar on a terminal, a log line every N seconds otherwise.

A job whose stderr goes to a file, a pipe or a cluster's log collector (SLURM, Ray, ``nohup``) still says how
far it is: ``gallery cirr-val-blip: 12800/50000 img (25.6%), 41.3 img/s, ETA 15m01s``.
"""

from __future__ import annotations

import logging
import os
import sys
import time

log = logging.getLogger("precompute")

#: default seconds between two progress lines when stderr is not a terminal
PROGRESS_EVERY = 30.0


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Counts finished items of ``total``; ``update(n)`` adds, ``set(n)`` sets (aggregate counters)."""

    def __init__(self, total: int, desc: str, unit: str, every: float = PROGRESS_EVERY) -> None:
        self.total, self.desc, self.unit, self.every = int(total), desc, unit, float(every)
        self.n = 0
        self.postfix = ""
        self._t0 = self._last = time.monotonic()
        self._bar = None
        if sys.stderr.isatty() and not os.environ.get("TQDM_DISABLE"):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                             smoothing=0.1)

    def update(self, n: int) -> None:
        """``n`` more items finished."""
        self.set(self.n + n)

    def set(self, n: int) -> None:
        """``n`` items finished in all (never beyond ``total``)."""
        n = min(int(n), self.total)
        if self._bar is not None:
            self._bar.update(n - self.n)
        self.n = n
        now = time.monotonic()
        if self._bar is None and now - self._last >= self.every:
            self._last = now
            log.info("%s", self.line())

    def set_postfix(self, **values) -> None:
        """Extra ``key=value`` fields shown after the counts (e.g. a training loss)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())
        if self._bar is not None:
            self._bar.set_postfix(**values)

    def line(self) -> str:
        """``desc: n/total unit (pct), rate unit/s, ETA``."""
        elapsed = time.monotonic() - self._t0
        rate = self.n / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * self.n / self.total if self.total else 100.0
        eta = _duration((self.total - self.n) / rate) if rate > 0 else "?"
        return (f"{self.desc}: {self.n}/{self.total} {self.unit} ({pct:.1f}%), {rate:.1f} {self.unit}/s, "
                f"ETA {eta}, elapsed {_duration(elapsed)}" + (f", {self.postfix}" if self.postfix else ""))

    def close(self) -> None:
        """Close the bar, or log the final line."""
        if self._bar is not None:
            self._bar.close()
        else:
            log.info("%s", self.line())
