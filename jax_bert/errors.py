"""Expected stops of a run: the message says what happened and what to do, and the command line
prints it as one line (jax_bert/cli.py). A bug is anything else, and keeps its traceback."""


class RunStopped(RuntimeError):
    """A run stopped for a reason the user can act on (diverged, a lost peer process, ...)."""


class TrainingDiverged(RunStopped):
    """A non-finite loss or gradient norm."""


class PeerLost(RunStopped):
    """Another process of a multi-process run stopped answering."""
