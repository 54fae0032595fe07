"""The one error type a user can cause; the CLI prints its message as one line and exits non-zero."""


class HarnessError(Exception):
    """A problem the user can act on (Docker down, bad schedule, port in use, ...).

    The message is one readable line; `detail` may hold a longer text (e.g. a node's log tail)
    that the CLI prints below it.
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail
