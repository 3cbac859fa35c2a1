"""Pure aggregation: event tuples in, one window record per category and window out (no I/O)."""

from agent.aggregate.accumulator import Accumulator, new_accumulator
from agent.aggregate.apps import AppsAccumulator
from agent.aggregate.files import FilesAccumulator
from agent.aggregate.keyboard import KeyboardAccumulator
from agent.aggregate.mouse import MouseAccumulator
from agent.aggregate.timeline import window_end, window_start

__all__ = [
    "Accumulator",
    "AppsAccumulator",
    "FilesAccumulator",
    "KeyboardAccumulator",
    "MouseAccumulator",
    "new_accumulator",
    "window_end",
    "window_start",
]
