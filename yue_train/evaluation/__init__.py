"""Evaluation of generated songs: music metrics (``metrics/``), scoring a folder of songs, the report.

A metric takes audio (and what is known about the song: lyrics, genres, the generation report) and returns
numbers; metrics are registered by name so recipes and ``yue-eval`` choose them in config. The package
needs numpy only at import; each metric imports its own model package when it is built."""
