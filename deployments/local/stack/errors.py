"""The one error the stack raises: which part failed, why, and where its log is."""

from pathlib import Path

from deployments.local.stack.processes import log_tail

LOG_TAIL_LINES = 20


class StackError(Exception):
    """A part could not be installed, started or checked; the message says which and why."""

    def __init__(self, message: str, part: str | None = None, log_path: Path | None = None):
        super().__init__(message)
        self.part = part
        self.log_path = log_path

    def report(self) -> str:
        """The message plus the tail of the part's log file, for humans."""
        text = f"stack: ERROR: {self}"
        if self.log_path is not None:
            tail = log_tail(self.log_path, LOG_TAIL_LINES)
            text += f"\n--- last {LOG_TAIL_LINES} lines of {self.log_path} ---\n{tail}"
            text += f"--- full log: {self.log_path} ---"
        return text
