"""Stage I driver (`collection.collect`): prompts x seeds -> scored, filtered pairs in an NPD."""
