"""hpctl's trainer: two-stage Keras transfer learning driven by spec.resolved.json.

See trainer/README.md and docs/run-directory.md (the contract with the Go side).
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PREEMPTED = 99


class InputError(Exception):
    """Bad input (spec, data folders, weights file). The trainer exits 2 with the message."""


class Preempted(Exception):
    """SIGUSR2 arrived; state of the last completed epoch is on disk. The trainer exits 99."""
