"""Errors a user can cause. Each message says what to do; the CLI prints it as one line."""


class AjusteError(Exception):
    """Base for every error we expect users to meet and fix themselves."""


class ModelFilesError(AjusteError):
    """A model file or folder is missing, incomplete or corrupt."""


class IndexBusyError(AjusteError):
    """The embedded index is held by another Ajuste process."""


class StoreUnavailableError(AjusteError):
    """The Qdrant server cannot be reached or refused us."""


class DocumentError(AjusteError):
    """A document cannot be read as text."""
