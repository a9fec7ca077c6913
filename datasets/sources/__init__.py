"""Formats, readers and converters, used before training or by `predict`: NTU RGB+D `.skeleton` files, MSR
Action3D, any folder of per-clip files, videos, and the built-in synthetic generator. A new format goes here."""
