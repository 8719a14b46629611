"""Exceptions and warnings of the evaluator, with messages that name the file, video and key."""
from __future__ import annotations

from typing import Optional


class EvaluationInputError(ValueError):
    """Malformed ground truth or predictions: the message names the source, the video and the key."""

    def __init__(self, source: str, problem: str, video: Optional[str] = None, key: Optional[str] = None):
        where = source
        if video is not None:
            where += f", video {video!r}"
        if key is not None:
            where += f", key {key!r}"
        super().__init__(f"{where}: {problem}")
        self.source, self.problem, self.video, self.key = source, problem, video, key


class EvaluationWarning(UserWarning):
    """A tolerated oddity of the input (skipped or false-positive predictions, empty classes)."""
