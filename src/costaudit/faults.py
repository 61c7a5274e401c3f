"""Named pause points for crash-safety tests.

The crash tests kill costaudit with SIGKILL at chosen moments (mid-read, mid-transaction,
mid-report), or hold it still while they read the store. A pause point does nothing unless
``COSTAUDIT_PAUSE_AT`` names it; then it writes ``COSTAUDIT_PAUSE_FILE`` (so the test knows the
process got there) and waits: until ``COSTAUDIT_RESUME_FILE`` exists when that is set, else to be
killed, for at most ``COSTAUDIT_PAUSE_SECONDS`` (default 60; the pause then just ends). Production
runs never set these variables.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def pause_point(name: str) -> None:
    """Stop here if a test asked to; otherwise return at once."""
    if os.environ.get("COSTAUDIT_PAUSE_AT") != name:
        return
    marker = os.environ.get("COSTAUDIT_PAUSE_FILE")
    if marker:
        Path(marker).write_text(f"{os.getpid()} {name}\n")
    resume = os.environ.get("COSTAUDIT_RESUME_FILE")
    deadline = time.monotonic() + float(os.environ.get("COSTAUDIT_PAUSE_SECONDS", "60"))
    while time.monotonic() < deadline:
        if resume and Path(resume).exists():
            return
        time.sleep(0.02)
