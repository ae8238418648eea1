"""The Chinese UI: the catalogue against the code (pybabel extract run here), the language's choice
(the browser's, the link's, the sidebar's), and what the translated pages show in either language."""

import re
import subprocess
import sys

import pytest
from babel.messages.pofile import read_po
from streamlit.testing.v1 import AppTest

from conftest import ROOT, rerun
from ui import i18n

PO = ROOT / "locales" / "zh_CN" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"\{(\w*)(?:[:!][^}]*)?\}")
CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef]")
# Three or more English words in a row; a word is two or more letters. What may stay English: the
# app's and the field's names, model names, code and file paths, units (i18n's allowlist).
ENGLISH_RUN = re.compile(r"\b[A-Za-z][a-z]+(?:[\s,;:]+[A-Za-z][a-z]+){2,}\b")
ALLOWED = ["VAE Latent Space Explorer", "Fashion-MNIST", "pretrained/NAME/README.md", "Language / 语言"]


def english_runs(text: str) -> list[str]:
    """The runs of three or more English words in ``text`` outside ALLOWED and outside model names
    (letters, digits and hyphens: mnist-vae-2d) and code spans."""
    for allowed in ALLOWED:
        text = text.replace(allowed, " ")
    text = re.sub(r"`[^`]*`|\b[\w.]+(?:-[\w.]+)+\b", " ", text)
    return ENGLISH_RUN.findall(text)


def extracted(tmp_path) -> dict[str, object]:
    """The messages ``pybabel extract`` finds in the code now (babel.cfg), by id."""
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k", "N_",
                    "-o", str(pot), "."], cwd=ROOT, check=True, capture_output=True)
    with open(pot, "rb") as f:
        return {m.id: m for m in read_po(f) if m.id}


def test_every_message_in_the_code_has_a_chinese_translation_and_the_catalogues_are_current(tmp_path):
    code = extracted(tmp_path)
    assert len(code) > 40  # the frame and the landing page at least
    with open(ROOT / "locales" / "messages.pot", "rb") as f:
        template = {m.id for m in read_po(f) if m.id}
    with open(PO, "rb") as f:
        catalogue = {m.id: m for m in read_po(f, locale="zh_CN") if m.id}
    assert set(code) == template, "locales/messages.pot is out of date: run pybabel extract (README, Languages)"
    assert set(code) == set(catalogue), "the .po file is out of date: run pybabel update (README, Languages)"
    for message in catalogue.values():
        assert message.string and not message.fuzzy, f"no Chinese for {message.id!r}"
        assert PLACEHOLDER.findall(message.id) == [] or (
            sorted(PLACEHOLDER.findall(message.id)) == sorted(PLACEHOLDER.findall(message.string))), message.id
        assert CJK.search(message.string) or not ENGLISH_RUN.search(message.id), f"left in English: {message.id!r}"


@pytest.mark.parametrize("locale, language", [
    ("zh", "zh-CN"), ("zh-CN", "zh-CN"), ("zh-Hans", "zh-CN"), ("zh-SG", "zh-CN"), ("zh-Hans-CN", "zh-CN"),
    ("zh_CN", "zh-CN"), ("zh-TW", "en"), ("zh-Hant-HK", "en"), ("en-US", "en"), ("de-DE", "en"), (None, "en"), ("", "en")])
def test_the_browsers_locale_picks_the_language(locale, language):
    assert i18n.browser_language(locale) == language


def test_outside_a_run_the_messages_are_english():
    assert i18n._("Start here") == "Start here" and i18n.language() == "en"
    assert i18n.translations("zh-CN").gettext("Start here") == "从这里开始"


def landing(locale: str | None = None, lang: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if locale:
        at.context["locale"] = locale
    if lang:
        at.query_params["lang"] = lang
    return rerun(at)


def texts(at: AppTest) -> list[str]:
    """What the landing page and the sidebar's frame show: text elements, labels, help, page links."""
    out = [e.value for kind in ("title", "subheader", "markdown", "caption", "warning", "info") for e in at.get(kind)]
    out += [link.proto.label for link in at.get("page_link")]
    out += [w.label for w in at.get("toggle")] + [w.help or "" for w in at.get("toggle")]
    out += list(at.get("arrow_data_frame")[0].value.columns) if at.get("arrow_data_frame") else []
    return out


def test_a_chinese_browser_gets_the_landing_page_and_the_frame_in_chinese():
    at = landing(locale="zh-CN")
    assert [s.value for s in at.subheader] == ["从哪里开始", "内置模型"]
    links = [link.proto.label for link in at.get("page_link")]
    assert "潜空间流形" in links and "1. 潜空间流形" in links and "理论：KL 散度与证据下界" in links
    assert at.sidebar.toggle[0].label == "投影模式"
    runs = {t: english_runs(t) for t in texts(at) if english_runs(t)}
    assert not runs, runs
    assert at.query_params["lang"] == "zh-CN"  # a link copied from here opens in Chinese


def test_the_same_page_in_english_shows_no_chinese():
    at = landing(locale="en-US")
    shown = texts(at)
    assert "Where to start" in shown and not any(CJK.search(t) for t in shown), [t for t in shown if CJK.search(t)]
    assert "lang" not in at.query_params


def test_a_link_and_the_sidebar_choose_over_the_browser():
    at = landing(locale="en-US", lang="zh-CN")
    assert at.subheader[0].value == "从哪里开始"
    at = landing(locale="zh-CN", lang="en")
    assert at.subheader[0].value == "Where to start"
    at.sidebar.selectbox(key="app/lang").select("zh-CN")
    rerun(at)
    assert at.subheader[0].value == "从哪里开始" and at.query_params["lang"] == "zh-CN"
    at.switch_page("pages/theory.py")
    rerun(at)
    assert at.sidebar.selectbox(key="app/lang").value == "zh-CN"  # the choice holds on every page


def test_a_language_the_app_does_not_have_is_ignored_and_said():
    at = landing(lang="fr")
    assert at.subheader[0].value == "Where to start"
    assert any("lang=fr (not en or zh-CN)" in w.value for w in at.warning)
