"""The one exception type users catch for anything they can get wrong."""


class GoldenNoiseError(ValueError):
    """Bad input, a checkpoint that does not fit, or a corrupt file.

    Messages name what was expected and what was found, so a user can fix the call.
    """


def first_few(names: list[str], most: int = 5) -> str:
    """`names` for an error message: the first `most`, then how many more (a message that
    lists thousands of shards helps nobody)."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more
