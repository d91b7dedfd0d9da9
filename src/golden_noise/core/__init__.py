"""Shared by every stage, importing nothing else of the package: the error type, crash-safe
writes, progress bars, setting checks, distribution, the seed -> noise convention, weight
files, per-sample latent norms, the version, and the layer table (`core.layers`)."""
