"""The one exception type users see.

Library code raises :class:`QgnnError` (or a subclass) for anything the user can fix: a bad file,
an unknown name, an out-of-range value. The CLI prints its message on one line and exits non-zero;
anything else is a bug and keeps its traceback.
"""


class QgnnError(Exception):
    """A problem with the user's input, stated so that they can fix it."""


class DataError(QgnnError):
    """A graph file or dataset that is missing, malformed or inconsistent."""


class ModelFileError(QgnnError):
    """A model or artefact file that is corrupted, truncated, tampered with or of another version."""


class ConfigError(QgnnError):
    """An option or configuration value that is not valid."""
