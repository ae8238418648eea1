"""Each page's settings, kept for the session and shown in the URL, so that a link reopens a view.

Streamlit drops the state of a widget that a run does not draw: leave a page, or switch the manifold
to "Prior samples", and its sliders come back at their defaults. Here each setting lives in a store
of its own in the session (a key no widget owns, so Streamlit keeps it), and the widget is bound to
it on every run: ``st.slider(..., key=state.bind("grid"))``. ``bind`` puts the setting's value under
the widget's key when the widget has none (a page revisited, a link opened), copies the widget's
value back to the store when it has one, and writes it to the URL (``st.query_params``: only values
other than the default, so a link stays short).

The URL is read once per page and session: on the first run that draws the page (a link opened, a
reload, a hand-off from another page through ``open_page``). A value there that is unknown or out of
range is ignored, and ``notice()`` says which. After that the session's store wins, so a parameter
left in the URL from another model never overrides what the visitor set.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from typing import Any

import streamlit as st
from streamlit.runtime.state.session_state_proxy import get_session_state

from vae.errors import Message

from .i18n import N_, _, say

STORE = "state/"  # session-state keys of the stores: state/<page>/<scope>/<name>
READ = "state-url-read/"  # state-url-read/<page>: the page has read its URL in this session
LINKED = "state-url-value/"  # state-url-value/<widget key>: the value a link gave a setting, until ``narrow`` checks it
APP = "app"  # the settings every page has (the model)
UNSAID = "state-url-unsaid"  # session state: what a run that stopped early ignored after it could draw anything
NOTICE_ICON = ":material/link_off:"

_run = threading.local()  # this script run's page state and what its URL held that was ignored
_EVERY_PAGE: list[PageState] = []  # the app's own settings (the model), on every page


@dataclass(frozen=True)
class Setting:
    """One setting of a page: its URL parameter ``name``, type, default and the values it may take.

    kind: int, float, str or bool; lo and hi bound a number (inclusive); options list the values a
    choice may take (None: any); length, for a list of numbers (``many``), the count it must have;
    in_links False: kept in the address bar (a reload keeps it) but left out of the link that "Copy link
    to this view" copies (projector mode: the room's size, not the view's).
    """

    name: str
    kind: type = int
    default: Any = None
    lo: float | None = None
    hi: float | None = None
    options: tuple | None = None
    many: bool = False
    length: int | None = None
    unknown: str = N_("not one of the choices")  # the reason given for a value not among the options (marked N_)
    in_links: bool = True

    def parse(self, text: str) -> Any:
        """A URL parameter's text as a value; raises ValueError when it is not one this setting may take."""
        if self.many:
            values = tuple(self._one(part) for part in text.split(",")) if text else ()
            if self.length is not None and len(values) != self.length:
                raise ValueError(Message(N_("needs {length} values"), length=self.length))
            return values
        return self._one(text)

    def _one(self, text: str) -> Any:
        if self.kind is bool:
            if text not in ("0", "1", "true", "false"):
                raise ValueError(N_("not on or off"))
            return text in ("1", "true")
        if self.kind is str:
            value = text
        else:
            try:
                number = float(text)
            except ValueError:
                raise ValueError(N_("not a number")) from None
            if not math.isfinite(number):
                raise ValueError(N_("not a number"))
            if self.kind is int and not number.is_integer():
                raise ValueError(N_("not a whole number"))
            value = int(number) if self.kind is int else number
        self._check_one(value)
        return value

    def check(self, value: Any) -> None:
        """Raises ValueError (with the reason in a visitor's words) when ``value`` is not allowed."""
        if self.many:
            if not isinstance(value, (tuple, list)) or (self.length is not None and len(value) != self.length):
                raise ValueError(Message(N_("needs {length} values"), length=self.length))
            for v in value:
                self._check_one(v)
        else:
            self._check_one(value)

    def _check_one(self, value: Any) -> None:
        if value is None and self.default is None:
            return  # a setting whose default is "none of them" (the manifold's centre: the origin)
        if self.options is not None and value not in self.options:
            raise ValueError(self.unknown)
        if isinstance(value, bool) != (self.kind is bool) and self.options is None:
            raise ValueError(N_("of the wrong type"))
        if self.lo is not None and not value >= self.lo:
            raise ValueError(Message(N_("below {lo:g}"), lo=self.lo))
        if self.hi is not None and not value <= self.hi:
            raise ValueError(Message(N_("above {hi:g}"), hi=self.hi))

    def format(self, value: Any) -> str:
        if self.many:
            return ",".join(self._format_one(v) for v in value)
        return self._format_one(value)

    def _format_one(self, value: Any) -> str:
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    def valid(self, value: Any) -> bool:
        try:
            self.check(value)
        except (TypeError, ValueError):
            return False
        return True


class PageState:
    """The settings of one page (``page``: its URL path, "" for the default page), optionally per
    ``scope`` (a model's name, where the values only make sense for that model: the sliders' z)."""

    def __init__(self, page: str, settings: list[Setting], scope: str | None = None):
        self.page, self.scope = page, scope
        self.settings = {s.name: s for s in settings}
        pages = _EVERY_PAGE if page == APP else getattr(_run, "pages", None)
        if pages is not None:
            pages.append(self)

    def key(self, name: str) -> str:
        """The session-state key of the widget bound to setting ``name``."""
        return "/".join(p for p in (self.page or "manifold", self.scope, name) if p is not None)

    def _store(self, name: str) -> str:
        return STORE + self.key(name)

    def bind(self, name: str, **changes) -> str:
        """The widget key for setting ``name``, with its value in place: call it in the widget's
        ``key=`` argument and give the widget no value of its own. ``changes`` replace fields of the
        Setting for this run (a default or a range that depends on the model)."""
        setting = replace(self.settings[name], **changes) if changes else self.settings[name]
        key, state = self.key(name), st.session_state
        if key in state and setting.valid(_plain(state[key])):
            value = _plain(state[key])
            # Written again when the browser did not send the widget's value with this run: a widget that
            # a run did not draw (a run that stopped before it) keeps its key in the session, and
            # Streamlit sends the browser a value only when the key was written in the run that draws it
            # again; else the widget showed its own default while the page used the kept value. Not
            # written when the browser has the widget: a value written back reaches the browser with the
            # run's output and undid a change made meanwhile (a slider's second key press, sent while
            # the first one's run was drawing, came back as the first one's value).
            if not _browser_sent(key):
                state[key] = state[key]
        else:
            value = self._initial(setting)
            state[key] = list(value) if setting.many else value
        state[self._store(name)] = value
        _write_url(setting, value)
        return key

    def suggest(self, name: str, value: Any) -> None:
        """Start setting ``name`` at ``value`` in a session that has no value of its own yet (the
        browser's language); a link's value still wins, and so does the visitor's later choice."""
        st.session_state.setdefault(self._store(name), value)

    def get(self, name: str, **changes) -> Any:
        """The setting's value without a widget (one the page keeps itself: a list, a seed)."""
        setting = replace(self.settings[name], **changes) if changes else self.settings[name]
        value = self._initial(setting)
        st.session_state[self._store(name)] = value
        _write_url(setting, value)
        return value

    def set(self, name: str, value: Any) -> None:
        """Change a setting from code (a button, a click on a chart): the widget shows it on the next
        run. Call it from a callback, or before ``st.rerun``, not after its widget was drawn."""
        st.session_state[self._store(name)] = value
        st.session_state.pop(self.key(name), None)

    def narrow(self, name: str, usable, reason: str) -> tuple:
        """Keep only the values of list setting ``name`` that ``usable(value)`` accepts (the test images a
        map holds), in the store and the URL, and return them. Those left out that a link gave are said in
        the link's notice, with ``reason`` (English: marked with ``N_``, or a ``vae.errors.Message``); a
        link's values are checked once, so a value the visitor's later choice leaves out is not said."""
        setting, value = self.settings[name], self.get(name)
        linked = st.session_state.get(LINKED + self.key(name)) or ()
        st.session_state[LINKED + self.key(name)] = ()
        kept = tuple(v for v in value if usable(v))
        refused = tuple(v for v in value if not usable(v) and v in linked)
        if refused:
            _ignore(name, setting.format(refused), reason)
        if kept != value:
            st.session_state[self._store(name)] = kept
            _write_url(setting, kept)
        return kept

    def _initial(self, setting: Setting) -> Any:
        """The value a setting starts a run with when its widget has none: the URL's (read once per
        page and session), else the store's, else the default."""
        if not st.session_state.get(READ + self.page):
            text = st.query_params.get(setting.name)
            if text is not None:
                try:
                    value = setting.parse(text)
                    st.session_state.setdefault(LINKED + self.key(setting.name), value)
                    return value
                except (TypeError, ValueError) as err:
                    _ignore(setting.name, text, _reason(err))
        stored = st.session_state.get(self._store(setting.name))
        return stored if stored is not None and setting.valid(stored) else setting.default


def _browser_sent(key: str) -> bool:
    """Whether the browser sent a value for the widget with this key with the rerun now running (it
    sends one for each widget it shows). Reads Streamlit's session state (1.67: the key's widget id and
    the run's incoming widget states); False where those are not found, so the value is written."""
    try:
        inner = get_session_state()._state
        widget_id = inner._key_id_mapper.get_id_from_key(key, None)
        return widget_id is not None and widget_id in inner._new_widget_state.states
    except (AttributeError, TypeError):
        return False


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _write_url(setting: Setting, value: Any) -> None:
    """The value in the URL: set when it is not the default, removed when it is."""
    params = st.query_params
    if value == setting.default or value is None:
        if setting.name in params:
            del params[setting.name]
    else:
        text = setting.format(value)
        if params.get(setting.name) != text:
            params[setting.name] = text


def _reason(err: Exception) -> str:
    """Why a URL value was refused, in English (a ``str``: a ``vae.errors.Message`` or a reason marked with
    ``N_``, which ``notice`` translates)."""
    reason = err.args[0] if len(err.args) == 1 and isinstance(err.args[0], str) else None
    return reason if reason is not None else str(err)


def _said(reason: str) -> str:
    """A reason of ``_reason`` in this run's language."""
    if isinstance(reason, Message):
        return say(reason)
    return _(reason) if reason else reason


def _ignore(name: str, text: str, reason: str) -> None:
    ignored = getattr(_run, "ignored", None)
    if ignored is not None and (name, text, reason) not in ignored:
        ignored.append((name, text, reason))
        _say_ignored()
    if name in st.query_params:
        del st.query_params[name]


def _say_ignored() -> None:
    box = getattr(_run, "notice", None)
    if box is not None and _run.ignored:
        box.warning(notice(_run.ignored), icon=NOTICE_ICON)


def not_in_links() -> list[str]:
    """The URL parameters of the settings every page has that copied links leave out (``Setting.in_links``)."""
    return [s.name for p in _EVERY_PAGE for s in p.settings.values() if not s.in_links]


def zoom() -> int:
    """2 in projector mode (the sidebar's toggle: images, their ticks and the page's fonts larger), else 1.
    Pages multiply the pixel scale of what they draw by it."""
    return 2 if st.session_state.get(STORE + APP + "/projector") else 1


def begin_run() -> None:
    """Start collecting this run's page states and ignored URL values (app.py, before the page), with
    what the run before ignored and could not say (``end_run``)."""
    _run.pages, _run.ignored, _run.notice = [], list(st.session_state.pop(UNSAID, [])), None


def say_ignored_in(box) -> None:
    """From now on say this run's ignored URL values in ``box`` (an ``st.empty`` above the page), each as
    soon as it is ignored: a page that stops early (``st.stop`` while a new map is computed) draws
    nothing after the stop, so a notice drawn once the page ran would be lost."""
    _run.notice = box
    _say_ignored()


def end_run(page: str, completed: bool = True) -> list[tuple[str, str, str]]:
    """After the page ran: drop the URL's parameters no setting of this page knows (once per page and
    session, on the run that read its URL), mark the URL read, and return every ignored
    (parameter, text, reason). ``completed`` False (the page stopped early or asked for a rerun): the
    parameters dropped here are kept for the next run to say."""
    ignored = list(getattr(_run, "ignored", None) or [])
    states = [*_EVERY_PAGE, *(getattr(_run, "pages", None) or [])]
    unknown = []
    if not st.session_state.get(READ + page):
        known = {name for p in states for name in p.settings}
        for name in [n for n in st.query_params if n not in known]:
            unknown.append((name, st.query_params[name], N_("not a setting of this page")))
            del st.query_params[name]
    for name in {page, *(p.page for p in states)}:
        st.session_state[READ + name] = True
    if unknown and not completed:
        st.session_state[UNSAID] = unknown
    _run.pages, _run.ignored, _run.notice = None, None, None
    return ignored + unknown


def notice(ignored: list[tuple[str, str, str]]) -> str:
    """One line, in this run's language, on what a link held that was ignored: 'Ignored from the link,
    showing the defaults instead: grid=9999 (above 30).'"""
    part = _("{setting} ({reason})")
    parts = [part.format(setting=f"{name}={text if len(text) <= 24 else text[:21] + '...'}", reason=_said(reason))
             for name, text, reason in ignored]
    return _("Ignored from the link, showing the defaults instead: {settings}.").format(settings=_("; ").join(parts))
