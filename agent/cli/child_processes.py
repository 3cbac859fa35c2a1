"""Child processes that end with the process that started them, even when it is killed outright.

``consentry demo`` starts a store, an agent and a virtual display. Its ``finally`` blocks stop them
when it is interrupted or terminated, but SIGKILL (``kill -9``, the OOM killer) runs no code: without
this the store would keep its port and the agent the employee's vault open, with nobody to stop them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def end_with_this_process() -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets SIGTERM (its clean stop) when this
    process dies. Linux only (prctl's PR_SET_PDEATHSIG); elsewhere None, and the ``finally`` blocks
    are all there is.

    Start such children from the main thread: Linux sends the signal when the thread that started
    the child ends, not only the process.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    parent = os.getpid()

    def in_the_child() -> None:
        if prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return in_the_child
