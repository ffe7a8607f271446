"""Almanac ML Lab kernel: settings, errors, the Parquet data store, sessions.

The kernel imports none of ``features``, ``ml``, ``viz`` or ``pages`` (docs/design.md §2).
"""

__version__ = "0.1.0"
