"""Words that ``vae`` gives a person, kept as English templates and their values, so that a UI can say
them in its own language: the errors a user's input can cause (an upload, a model's name, a server too
busy to train) and the descriptions the app shows (how an upload was framed).

A ``Message`` is the English sentence itself (a ``str``: print it, compare it, log it), and remembers the
``str.format`` template(s) it was made from and their values. Templates are marked with ``N_`` for
``pybabel extract`` (babel.cfg); the app translates each template and fills it in (``ui.i18n.say``), and the
values (file names, sizes, a decoder's own words) stay as they are; ``format_size`` says every size.
"""

from __future__ import annotations


def format_size(n: int) -> str:
    """A count of bytes as a person reads it, in binary units named as such (IEC 80000-13: 1 KiB = 1024
    bytes, 1 MiB = 2**20): "512 B", "340 KiB", "7.25 MiB", "64 MiB", "12 GiB"; three significant digits,
    a whole number of bytes below 1 KiB. The one size formatter of every message (an upload's, a folder's,
    a limit's), so that a size and the limit it is measured against say the same unit. The unit symbols
    are not translated. n: int >= 0; raises ValueError for a negative n."""
    if n < 0:
        raise ValueError(f"a size is at least 0 bytes, got {n}")
    if n < 1024:
        return f"{int(n)} B"
    x = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        x /= 1024
        if x < 1023.5 or unit == "PiB":  # 1023.5 KiB and up would round to "1024 KiB": said as MiB instead
            break
    return f"{x:.3g} {unit}" if x < 100 else f"{x:.0f} {unit}"


def N_(message: str) -> str:  # noqa: N802 (gettext's name)
    """Mark ``message`` for the catalogue (pybabel extract -k N_); it is returned as it is."""
    return message


class Message(str):
    """``template.format(**params)``, remembering ``parts``: ((template, params), ...) in order, one per
    ``Message`` joined with ``+``; a plain ``str`` added to one is a part with template None (said as it
    is). Raises KeyError when a template names a field that ``params`` lacks."""

    parts: tuple[tuple[str | None, dict | str], ...]

    def __new__(cls, template: str, /, **params) -> Message:
        self = super().__new__(cls, template.format(**params))
        self.parts = ((template, params),)
        return self

    @classmethod
    def _joined(cls, parts) -> Message:
        self = super().__new__(cls, "".join(t.format(**p) if t is not None else p for t, p in parts))
        self.parts = tuple(parts)
        return self

    def __add__(self, other: str) -> Message:
        return Message._joined(self.parts + _parts(other))

    def __radd__(self, other: str) -> Message:
        return Message._joined(_parts(other) + self.parts)

    def __reduce__(self):  # pickled by its parts (str's own way would format the English text again)
        return Message._joined, (self.parts,)


def to_json(text: str) -> str | list:
    """``text`` as JSON-able data that keeps a Message's parts (for a process boundary): a plain str as
    it is, a Message as [[template or None, params or text], ...], a Message value as such a list too.
    A value that is not a str, int, float or bool is kept as its str."""
    if not isinstance(text, Message):
        return str(text)
    return [[t, p if t is None else {k: v if isinstance(v, (int, float, bool)) else to_json(v) for k, v in p.items()}]
            for t, p in text.parts]


def from_json(data: str | list) -> str:
    """The inverse of ``to_json``: a Message, or the plain str."""
    if isinstance(data, str):
        return data
    return Message._joined([(t, p if t is None else {k: from_json(v) if isinstance(v, (str, list)) else v
                                                      for k, v in p.items()}) for t, p in data])


def _parts(text: str) -> tuple:
    return text.parts if isinstance(text, Message) else ((None, str(text)),)


class UserError(Exception):
    """A mistake in what the user gave, or a limit of the server, said so that they can act on it.

    ``str(err)`` is the English sentence; ``err.message`` the ``Message`` (``Message(template, **params)``
    is built from the arguments). Raises KeyError when the template names a field ``params`` lacks."""

    def __init__(self, template: str, /, **params):
        self.message = template if isinstance(template, Message) else Message(template, **params)
        super().__init__(str(self.message))

    def __reduce__(self):  # across processes: a subclass's own arguments may differ from (template, params)
        return _rebuilt, (type(self), str(self), self.__dict__)


def _rebuilt(cls: type, text: str, state: dict) -> UserError:
    err = cls.__new__(cls)
    Exception.__init__(err, text)
    err.__dict__.update(state)
    return err
