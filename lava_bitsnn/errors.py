"""The one exception type the command-line tools turn into a one-line message."""


class BitsnnError(Exception):
    """A problem the user can fix (bad input, missing file, unsupported layer)."""


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived during a run, which then stopped cleanly (exit 128 + signal).
    A BaseException, like KeyboardInterrupt, so no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum
