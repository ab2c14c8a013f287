"""User-facing errors.

Every mistake a user can make (a bad file, an unknown name, a mismatched adapter) raises a
subclass of :class:`PromptLearningError` whose message is one line that names the fix. The
CLI prints that line without a traceback and exits non-zero; library users can catch the
base class.
"""

from __future__ import annotations


class PromptLearningError(Exception):
    """Base of every error a user can cause; its message is one line naming the fix."""


class ConfigError(PromptLearningError, ValueError):
    """A configuration value is invalid or unknown."""


class UnknownNameError(ConfigError, KeyError):
    """An unknown task, method, backbone or head name was given."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(PromptLearningError, ValueError):
    """A data file is missing, empty, malformed or inconsistent."""


class ArtifactError(PromptLearningError, RuntimeError):
    """A packaged model or corpus could not be fetched, verified or read."""


class AdapterError(PromptLearningError, RuntimeError):
    """An adapter or checkpoint directory is missing, corrupt or for another backbone."""


class BackboneError(PromptLearningError, RuntimeError):
    """A backbone cannot be loaded or is not supported."""


class TrainingError(PromptLearningError, RuntimeError):
    """Training cannot go on (a diverged loss, a checkpoint that does not fit this run)."""
