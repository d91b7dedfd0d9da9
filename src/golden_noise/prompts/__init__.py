"""Prompts from wherever users keep them (`prompts.sources`): files, the toy world, named
benchmark sets (`prompts.sets`), hub datasets."""
