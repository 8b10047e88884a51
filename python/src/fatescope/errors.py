"""One error type for bad user input, so the CLI can report it cleanly and exit non-zero."""


class InputError(Exception):
    """Bad input: the message names the file, the row or key, and what was expected."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)
