"""The mistakes a user can make, as one family: everything else the package raises is a bug.

Each class derives from :class:`UserError` *and* from the builtin the code raised before the family existed
(``ValueError``, ``KeyError``, ``TypeError``, ``FileNotFoundError``, ``IndexError``), so code and tests that
catch the builtin keep working. The app and the CLI catch only :class:`UserError` and show its message as one
line; any other exception reaching them is a bug and is reported with its traceback (the CLI prints it, the
app logs it and shows a generic message).

Imports nothing from the package: every floor may raise these.
"""

from __future__ import annotations

__all__ = [
    "ArgumentError",
    "CardError",
    "ImageError",
    "InputError",
    "MissingFileError",
    "NotFoundError",
    "NumericError",
    "OutOfRangeError",
    "UserError",
    "WeightsError",
]


class UserError(Exception):
    """A request the package cannot satisfy because of what the caller asked for; the message says why and,
    where it can, what to ask for instead."""


class InputError(UserError, ValueError):
    """An argument with a value the package cannot use: an unknown name or method, a number out of its range,
    a tensor of the wrong shape."""


class ImageError(InputError):
    """An input that is not an image we can use, with a message saying why."""


class WeightsError(UserError, ValueError):
    """A weights request that cannot be satisfied (unknown tag, missing or corrupt file, wrong labels)."""


class CardError(WeightsError):
    """A model card that cannot be used: not JSON, a missing or malformed field, or a contradiction with
    its checkpoint or with the variant asked for. The message names the card file and the field."""


class NotFoundError(UserError, KeyError):
    """A name looked up that is not there (a trace name, a module, a row)."""

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument (quotes, escaped newlines); a message reads as written.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class OutOfRangeError(UserError, IndexError):
    """An index outside what a sequence holds."""


class ArgumentError(UserError, TypeError):
    """An argument of a type the function does not take (a tensor where a LoadedModel belongs, say)."""


class NumericError(UserError, FloatingPointError):
    """What was asked for cannot be computed in floating point (the probability of an explained class that
    underflows to 0); the message says what to ask for instead."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder named by the user that does not exist."""
