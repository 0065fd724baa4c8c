"""User-facing errors: one message that says what is wrong and how to fix it, exit code 2, no traceback."""


class UserError(Exception):
    """Something the user can fix (a bad seed line, config key, missing model). The CLI prints it and exits 2."""

    exit_code = 2

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []

    def __str__(self) -> str:
        return "\n".join([self.message, *self.details])
