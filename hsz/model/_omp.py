"""Tame OpenMP spin-waiting before torch loads libgomp (imported first by ``hsz.model``).

libgomp's threads spin ~300k iterations at every barrier before sleeping.  On a machine whose
cores are busy with other jobs, a spinning thread waits for a sibling that is not scheduled,
and a fit becomes 10-30x slower: measured on the 2-core box with ~5 other runnable jobs,
900 ms per band by default, 34 ms with ``GOMP_SPINCOUNT=1000``, 47 ms with
``OMP_WAIT_POLICY=PASSIVE``.  A short spin keeps the idle-machine speed.

Only a default: a value the user set wins, and nothing happens if torch was imported first
(libgomp reads the variable once, when it loads).
"""

from __future__ import annotations

import os

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")
