"""Expected stops of a run: the message says what happened and what to do, and the command line
prints it as one line (jax_bert/cli.py). A bug is anything else, and keeps its traceback."""


class RunStopped(RuntimeError):
    """A run stopped for a reason the user can act on (diverged, a lost peer process, ...)."""


class TrainingDiverged(RunStopped):
    """A non-finite loss or gradient norm."""


class PeerLost(RunStopped):
    """Another process of a multi-process run stopped answering."""


def peer_lost_message(cause: str, me: int, n: int) -> str:
    """What a process of an n-process run says when another one went away (`cause`: the error seen)."""
    who = f"process {1 - me}" if n == 2 else "another process"
    cause = " ".join(cause.split())[:160]
    return (f"{who} of this {n}-process run is gone ({cause}); process {me} stopped too. Restart every process "
            f"with the same command: the run resumes from its last checkpoint.")
