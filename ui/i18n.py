"""The app's words in English or Simplified Chinese: gettext catalogues managed with Babel.

Every word a page shows goes through ``_`` (``ngettext`` where a count picks the form); a string
defined at import time (a table of page titles) is marked with ``N_`` and translated where it is shown;
words that ``vae`` gives a person (``vae.errors.Message``: an upload's framing, the error raised for a
user's mistake) are said by ``say`` and ``error_message``. The messages live in
``locales/messages.pot`` (``pybabel extract``, babel.cfg) and ``locales/zh_CN/LC_MESSAGES/messages.po``
(``pybabel update``); the ``.po`` file is compiled in memory when the server first needs it, so no
``.mo`` file is kept or installed. README.md "Languages" gives the commands; ``locales/glossary.md`` the
Chinese terms the translation uses.

The language: ``?lang=en`` or ``?lang=zh-CN`` in the URL, else the one this session picked in the
sidebar, else the browser's (``st.context.locale``: zh, zh-CN, zh-Hans and zh-SG, and their longer
forms such as zh-Hans-CN, pick Chinese; everything else English).
"""

from __future__ import annotations

import functools
import gettext
import io
import re
from pathlib import Path

import streamlit as st
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from streamlit.runtime.scriptrunner import get_script_run_ctx

from vae.errors import Message, UserError

LOCALES = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"
LANGUAGES = {"en": "English", "zh-CN": "简体中文"}  # URL value -> the name shown in the sidebar
CATALOGUES = {"zh-CN": "zh_CN"}  # URL value -> the catalogue's folder under locales/
LANGUAGE_KEY = "i18n/language"  # session state: this run's language, set by the frame before the page


def N_(message: str) -> str:  # noqa: N802 (gettext's name)
    """Mark a string for the catalogue without translating it (a constant defined at import time)."""
    return message


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of ``language`` (a key of LANGUAGES), compiled from its ``.po`` file once per
    process; English is the messages themselves. Raises FileNotFoundError when the ``.po`` is missing."""
    if language not in CATALOGUES:
        return gettext.NullTranslations()
    with open(LOCALES / CATALOGUES[language] / "LC_MESSAGES" / f"{DOMAIN}.po", "rb") as f:
        catalog = read_po(f, locale=CATALOGUES[language])
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def browser_language(locale: str | None) -> str:
    """The language for a browser's ``navigator.language``: "zh-CN" for Simplified Chinese's tags (zh,
    zh-CN, zh-Hans, zh-SG and their longer forms), else "en". Traditional Chinese (zh-TW, zh-HK,
    zh-Hant) is English until it has a catalogue of its own."""
    parts = (locale or "").replace("_", "-").lower().split("-")
    if parts[0] != "zh":
        return "en"
    rest = set(parts[1:])
    return "en" if rest & {"tw", "hk", "mo", "hant"} else "zh-CN"


def language() -> str:
    """This run's language (a key of LANGUAGES); English outside a Streamlit run."""
    if get_script_run_ctx(suppress_warning=True) is None:  # a bare import, a command-line tool
        return "en"
    return st.session_state.get(LANGUAGE_KEY, "en")


def _(message: str) -> str:
    """``message`` in this run's language."""
    return translations(language()).gettext(message)


def sentences(*parts: str) -> str:
    """Translated sentences as one paragraph: a space between them, as English writes it, but none after
    a Chinese full stop (or other full-width punctuation)."""
    return re.sub(r"([\u3000-\u303f\uff00-\uffef]) ", r"\1", " ".join(p for p in parts if p))


def shown(options, message=None):
    """A widget's ``format_func`` for stored values ``options``: each shown as ``_(message(value))``
    (``message``: a value's English label, default the value itself), translated now, in this run.
    Not ``format_func=_``: AppTest calls a format_func again between runs, where no run says the
    language, and then cannot find the English label among the Chinese ones. Raises KeyError for a
    value not in ``options``."""
    labels = {v: _(message(v) if message else v) for v in options}
    return labels.__getitem__


def ngettext(singular: str, plural: str, n: int) -> str:
    """``singular`` or ``plural`` (as ``n`` asks) in this run's language; Chinese has one form."""
    return translations(language()).ngettext(singular, plural, n)


def say(text: str) -> str:
    """``text`` in this run's language when it is a ``vae.errors.Message`` (each template translated and
    filled in with its values, themselves said when they are Messages); any other string as it is."""
    if not isinstance(text, Message):
        return text
    return "".join(p if t is None else _(t).format(**{k: say(v) for k, v in p.items()}) for t, p in text.parts)


def error_message(err: Exception) -> str:
    """What ``err`` says, in this run's language: a ``vae.errors.UserError``'s message translated
    (``say``); any other exception's own (English) text."""
    return say(err.message) if isinstance(err, UserError) else str(err)
