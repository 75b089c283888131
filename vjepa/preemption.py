"""Checkpoint-then-requeue on the scheduler's preemption signal.

SLURM jobs submitted by submitit get SIGUSR2 shortly before their time limit or on preemption
(``--signal=USR2@<delay>``; ``$SUBMITIT_PREEMPT_SIGNAL`` names another), and submitit's own handler then
pickles the job and requeues it at once, while the training step is still running.

Inside ``stop_on_signal(request_stop)`` the signal (and SIGTERM) only calls ``request_stop()``: the trainer writes a
checkpoint at the next step boundary and raises ``Interrupted``. When ``Interrupted`` leaves the block, the
handler installed before is called as if the signal had just arrived: under submitit it requeues the job
(and exits), which then resumes from the checkpoint. Without such a handler (a plain ``python -m
vjepa.train``) ``Interrupted`` propagates. A signal during the last step lets a run without probes complete:
no requeue. Once training is done the checkpoint of the final step is on disk, so a signal before or during
the end-of-run probes aborts them at once (``Trainer.request_stop`` raises from the handler; where Python
cannot raise, as inside a finaliser, they finish and are kept) and raises ``Interrupted``, handed over the
same way: the status is ``interrupted`` and the requeued job goes straight to the probes.

SIGTERM stops the same way but is never handed over: the run checkpoints at the next step, its status is
``interrupted`` and the process exits (``python -m vjepa.train``: status 75), under submitit too, whose own
SIGTERM handler only logs "Bypassing signal SIGTERM" (it would leave the job training until a SIGKILL).
That is how a local sweep stops its runs (``sweeps/sweeper.py``), and how ``scancel`` (SIGTERM, then
SIGKILL after SLURM's KillWait) leaves a checkpoint when the step in flight ends in time.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from vjepa.trainer import Interrupted


def preemption_signal() -> signal.Signals:
    """The signal submitit sends before a timeout or on preemption (same variable and default as submitit)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


@contextmanager
def stop_on_signal(
    request_stop: Callable[[], None], signum: int | None = None, stop_signals=(signal.SIGTERM,)
) -> Iterator[None]:
    """``signum`` (default: the preemption signal) and ``stop_signals`` call ``request_stop`` inside the
    block. When ``Interrupted`` leaves it, the previous handler of ``signum`` is called if that signal was
    received (under submitit: requeue); a stop by ``stop_signals`` alone (SIGTERM: a sweep stopped, a
    ``kill``, ``scancel``) just raises, so the run ends with a checkpoint and is not requeued. Every handler
    is restored first, so a signal after the block gets what it got before (submitit: logged and ignored)."""
    signum = preemption_signal() if signum is None else signum
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    signums = [signum, *(s for s in stop_signals if s != signum)]
    previous = {s: signal.getsignal(s) for s in signums}
    received = []

    def handler(sig, frame):
        received.append(sig)
        request_stop()

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    for s in signums:
        signal.signal(s, handler)
    try:
        yield
    except Interrupted as exc:
        restore()
        if signum in received and callable(previous[signum]):
            print(
                f"[vjepa] {exc}; handing over to the previous {signal.Signals(signum).name} handler",
                file=sys.stderr,
                flush=True,
            )
            previous[signum](signum, None)
        elif received:
            names = ", ".join(dict.fromkeys(signal.Signals(s).name for s in received))
            print(f"[vjepa] {exc} ({names}): the run stops here", file=sys.stderr, flush=True)
        raise
    finally:
        restore()
