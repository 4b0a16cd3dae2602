"""Errors a user can fix (exit code 2) versus failed runs (exit code 1)."""


class GraceError(Exception):
    """Base class: a one-line message that names the file, row or field at fault."""

    exit_code = 1


class UserInputError(GraceError):
    """Bad config or bad data: reported before anything starts, exit code 2."""

    exit_code = 2


class ConfigError(UserInputError):
    pass


class DataError(UserInputError):
    pass


class ServerError(GraceError):
    """The model server could not be started, died, or never became ready."""
