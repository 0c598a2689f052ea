"""The exceptions hsz raises on purpose.

Every message is written to be shown to a user as a single line: it names the
file or value at fault and, where it can, what to do about it.  The CLI maps
:class:`HszError` to exit status 1 and :class:`UsageError` to exit status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class HszError(Exception):
    """Base class: an operation failed for a reason the user can act on.

    ``option`` names the request parameter at fault (a keyword of the library call, such
    as ``"extrapolate"``), so that a front end can point at its own spelling of it (the CLI
    adds ``--extrapolate``); messages themselves never name command-line flags.
    """

    def __init__(self, message: str = "", *, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class UsageError(HszError):
    """The request itself is malformed (bad option value, impossible combination)."""


class ReadError(HszError):
    """An input cube could not be read or is not a valid hyperspectral cube."""


class WriteError(HszError):
    """An output could not be written (exists, unsupported format, I/O failure)."""


class FormatError(HszError):
    """A ``.hsz`` file is damaged, truncated, or of a version this build cannot read."""


class RateError(HszError):
    """A requested rate cannot be met by any model hsz can build.

    ``smallest_bpppb`` is the estimated lowest rate that can be met, where one is known, so
    that a script can retry there instead of parsing the message.
    """

    def __init__(self, message: str, smallest_bpppb: float | None = None) -> None:
        super().__init__(message, option="bpppb")
        self.smallest_bpppb = smallest_bpppb
