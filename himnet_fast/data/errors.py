"""Errors and warnings of the data layer.

Every problem found in a data file names the file, the video (when one is concerned)
and what is wrong, so a user can open the file and fix the entry.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union


class DataFormatError(ValueError):
    """A data file is missing, unreadable or inconsistent.

    Attributes: ``file`` (the path concerned), ``video`` (the video name or ``None``),
    ``problem`` (what is wrong, in words).
    """

    def __init__(self, file: Union[str, Path], problem: str, video: Optional[str] = None):
        self.file = str(file)
        self.video = video
        self.problem = problem
        where = f"{self.file}: video {video!r}: " if video is not None else f"{self.file}: "
        super().__init__(where + problem)


class DataWarning(UserWarning):
    """Suspicious but tolerated content of a data file (e.g. a ground-truth segment that
    ends after the video's duration, as found in the public THUMOS14 annotations)."""
