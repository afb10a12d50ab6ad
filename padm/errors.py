"""User-facing errors.

Library code raises :class:`UserError` (a ``ValueError``) for mistakes a user can fix: bad paths, wrong
image shapes, unreadable files.  The command line turns it into a one-line message and a non-zero exit
code, never a traceback.
"""


class UserError(ValueError):
    """A mistake in user input, reported as one clear line."""
