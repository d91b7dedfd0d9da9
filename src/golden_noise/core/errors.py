"""The one exception type users catch for anything they can get wrong."""


class GoldenNoiseError(ValueError):
    """Bad input, a checkpoint that does not fit, or a corrupt file.

    Messages name what was expected and what was found, so a user can fix the call.
    """
