"""SIGTERM and SIGINT: the run ends cleanly (workers stopped, summary, exit 143/130)."""

from __future__ import annotations


class Terminated(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an error
    """The process received SIGTERM (a SLURM time limit, ``kill``, ``docker stop``)."""

    code = 143  # 128 + SIGTERM

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum

    def describe(self) -> str:
        import signal

        return f"terminated by {signal.Signals(self.signum).name} (e.g. a job's time limit)"


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def handle_signals() -> None:
    """SIGTERM ends the run like Ctrl-C: workers stopped, summary, exit 143."""
    import signal

    signal.signal(signal.SIGTERM, _raise_terminated)


def ignore_signals() -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
