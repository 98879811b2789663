"""conveyor-memory: an in-process backend with every capability that makes sense in one process."""

from conveyor_memory.backend import MemoryBackend, MemoryConfig

__all__ = ["MemoryBackend", "MemoryConfig"]
