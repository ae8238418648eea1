"""The Chinese UI: the catalogue against the code (pybabel extract run here), the language's choice
(the browser's, the link's, the sidebar's), and what the translated pages show in either language."""

import ast
import io
import json
import pickle
import re
import subprocess
import sys

import pytest
from babel.messages.pofile import read_po
from google.protobuf.message import Message
from streamlit.testing.v1 import AppTest

from conftest import ROOT, rerun
from ui import i18n

PO = ROOT / "locales" / "zh_CN" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"\{(\w*)(?:[:!][^}]*)?\}")
CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef]")
# Three or more English words in a row; a word is two or more letters. What may stay English: the
# app's and the field's names, model names, code and file paths, units (i18n's allowlist).
ENGLISH_RUN = re.compile(r"\b[A-Za-z][a-z]+(?:[\s,;:]+[A-Za-z][a-z]+){2,}\b")
ALLOWED = ["VAE Latent Space Explorer", "Fashion-MNIST", "pretrained/NAME/README.md", "Language / 语言",
           # papers' titles and authors' names, cited as they are
           "Sampling Generative Networks", "van der Maaten", "Auto-Encoding Variational Bayes",
           "Is the latent space healthy?"]  # a section of the (English) README, named so that it can be found


def english_runs(text: str) -> list[str]:
    """The runs of three or more English words in ``text`` outside ALLOWED and outside model names
    (letters, digits and hyphens: mnist-vae-2d) and code spans."""
    for allowed in ALLOWED:
        text = text.replace(allowed, " ")
    text = re.sub(r"`[^`]*`|\b[\w.]+(?:-[\w.]+)+\b", " ", text)
    return ENGLISH_RUN.findall(text)


# What a user reads on a page: every text field of every element's and block's message (headings,
# Markdown, captions, alerts, widget labels, help and options, expander and tab labels, metric labels),
# the titles and tooltip titles of chart specs (Vega-Lite, Plotly), and table column names.
TEXT_FIELDS = {"label", "body", "help", "options", "placeholder", "caption", "title", "text", "description",
               "tab_labels", "default_text"}
SPEC_KEYS = {"title", "text", "description", "label"}


def _spec_strings(obj, out: list[str]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in SPEC_KEYS and isinstance(v, str):
                out.append(v)
            elif k in SPEC_KEYS and isinstance(v, list) and all(isinstance(x, str) for x in v):
                out.append(" ".join(v))
            else:
                _spec_strings(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _spec_strings(v, out)


def _proto_strings(msg: Message, out: list[str]) -> None:
    for field, value in msg.ListFields():
        values = list(value) if field.is_repeated else [value]
        if field.type == field.TYPE_MESSAGE:
            for v in values:
                if isinstance(v, Message):
                    _proto_strings(v, out)
        elif field.type == field.TYPE_STRING and field.name == "spec":
            for v in values:
                try:
                    _spec_strings(json.loads(v), out)
                except ValueError:
                    pass
        elif field.type == field.TYPE_STRING and field.name in TEXT_FIELDS:
            out.extend(v for v in values if "<script" not in v and "<style" not in v)  # the frame's own HTML


def page_texts(at: AppTest) -> list[str]:
    """Every string the page shows a reader (above)."""
    out: list[str] = []

    def visit(node) -> None:
        if isinstance(getattr(node, "proto", None), Message):
            _proto_strings(node.proto, out)
        if type(node).__name__ == "Dataframe":
            out.extend(str(c) for c in node.value.columns)
        for child in getattr(node, "children", {}).values():
            visit(child)

    visit(at._tree)
    return out


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
        ids = message.id if isinstance(message.id, tuple) else (message.id,)  # ngettext: (singular, plural)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)  # one form in Chinese
        assert all(strings) and not message.fuzzy, f"no Chinese for {message.id!r}"
        for string in strings:
            assert sorted(set(PLACEHOLDER.findall(ids[-1]))) == sorted(set(PLACEHOLDER.findall(string))), message.id
            assert CJK.search(string) or not ENGLISH_RUN.search(ids[0]), f"left in English: {message.id!r}"


def test_no_module_that_translates_hides_the_translation_function():
    """``_, x = f()`` inside a function that also calls ``_()`` makes ``_`` local there: the call then
    raises UnboundLocalError (or calls the tuple's item). A throwaway name must be another one."""
    hidden = []
    for path in sorted([ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")]):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store):
                hidden.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not hidden, hidden


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
    assert "潜空间流形" in links and "1. 潜空间流形" in links and "理论：KL 项与证据下界" in links
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


def test_vae_says_a_users_mistake_in_english_and_the_app_in_chinese(monkeypatch):
    from vae.folders import FolderDatasetError, load_folder
    from vae.preprocess import ImageError, preprocess_image

    with pytest.raises(ImageError) as err:
        preprocess_image(b"")
    assert str(err.value) == "The file is empty: choose an image file (PNG, JPEG, BMP, GIF, WebP or TIFF)."
    assert i18n.error_message(err.value) == str(err.value)  # outside a run, English
    monkeypatch.setattr(i18n, "language", lambda: "zh-CN")
    assert i18n.error_message(err.value) == "文件是空的：请选择一个图像文件（PNG, JPEG, BMP, GIF, WebP or TIFF）。"
    with pytest.raises(FolderDatasetError) as err:
        load_folder(b"PK not a zip", name="faces.zip", cache_dir=None)
    assert i18n.error_message(err.value) == "faces.zip 不是 zip 文件：请上传一个图像文件夹的 .zip 压缩包。"
    assert pickle.loads(pickle.dumps(err.value)).message.parts == err.value.message.parts  # from a training child


def test_a_message_keeps_its_parts_through_joining_and_pickling(monkeypatch):
    from vae.errors import N_, Message

    where = Message(N_("zip"))
    said = Message(N_("the {where} {name} holds no images: put PNG or JPEG files in it, one subfolder per class."),
                   where=where, name="{x}.zip") + " (2)"
    assert said == "the zip {x}.zip holds no images: put PNG or JPEG files in it, one subfolder per class. (2)"
    again = pickle.loads(pickle.dumps(said))
    assert again == said and again.parts == said.parts
    monkeypatch.setattr(i18n, "language", lambda: "zh-CN")
    assert i18n.say(again) == "压缩包 {x}.zip 中没有图像：请放入 PNG 或 JPEG 文件，每个类别一个子文件夹。 (2)"
    assert i18n.say("plain text") == "plain text"


def test_a_message_crosses_a_process_boundary_as_json(monkeypatch):
    """A training child's TaskFailed reaches the server as JSON (vae.runner): the parts must survive."""
    from vae.errors import N_, Message, from_json, to_json

    said = Message(N_("Training diverged: {error}."), error=Message(
        N_("the loss became {loss} in epoch {epoch}; try a lower learning rate"), loss=float("nan"), epoch=3))
    again = from_json(json.loads(json.dumps(to_json(said))))
    assert again == said == "Training diverged: the loss became nan in epoch 3; try a lower learning rate."
    monkeypatch.setattr(i18n, "language", lambda: "zh-CN")
    assert i18n.say(again) == "训练发散：损失在第 3 轮变成了 nan；请尝试更低的学习率。"
    assert from_json(to_json("plain")) == "plain"


# ---------------------------------------------------------------- every page, in both languages

def digit_png() -> bytes:
    """A hand-drawn-looking 7: dark ink on light paper, as a phone photo of a digit would be."""
    from PIL import Image, ImageDraw

    im = Image.new("L", (120, 160), 235)
    ImageDraw.Draw(im).line([(20, 30), (100, 30), (55, 140)], fill=20, width=12)
    buffer = io.BytesIO()
    im.save(buffer, "PNG")
    return buffer.getvalue()


def upload_an_image(at: AppTest) -> None:
    at.file_uploader[0].set_value(("seven.png", digit_png(), "image/png"))


def choose(key: str, value):
    """An action: set the widget of session-state ``key`` to ``value`` (a stored value, not its label),
    as a click would."""
    def action(at: AppTest) -> None:
        next(w for w in at.main if getattr(w, "key", None) == key).set_value(value)
    return action


# (page, model, link settings, then an action): each page with the models that change what it shows and
# its main controls set once, through the link (ui.state reads them as the controls' values) or a click.
WALK = [
    ("home", "mnist-vae-2d", {}, None),
    ("manifold", "mnist-vae-2d", {"overlay": "1", "holes": "1"}, choose("manifold/spacing", "linear")),
    ("manifold", "mnist-vae-20d", {}, choose("manifold/others", "a random draw")),
    ("manifold", "mnist-vae-20d", {"view": "Prior samples"}, choose("manifold/view", "Reconstructions")),
    ("manifold", "fashion-vae-2d", {"view": "Reconstructions"}, None),
    ("manifold", "mnist-cvae", {}, None),
    ("manifold", "mnist-ae-2d", {}, None),
    ("reconstruct", "mnist-vae-2d", {}, None),
    ("reconstruct", "mnist-iwae-binarized", {"k": "1000"}, None),
    ("reconstruct", "fashion-cvae", {}, None),
    ("reconstruct", "mnist-vae-2d", {"input": "Upload"}, upload_an_image),
    ("reconstruct", "mnist-vae-20d", {"input": "Draw"}, None),
    ("sliders", "mnist-vae-2d", {}, None),
    ("sliders", "mnist-vae-20d", {"holes": "1", "inactive": "1"}, None),
    ("sliders", "mnist-cvae", {}, None),
    ("sliders", "fashion-vae-2d", {}, None),
    ("meaning", "mnist-vae-10d-beta4", {}, None),
    ("meaning", "mnist-vae-2d", {}, None),
    ("meaning", "fashion-vae-2d", {}, None),
    ("interpolate", "mnist-vae-2d", {"n": "12"}, choose("interpolate/method", "slerp")),
    ("interpolate", "mnist-cvae", {"of": "the end"}, None),
    ("interpolate", "fashion-vae-2d", {"start_from": "an upload"}, upload_an_image),
    ("cvae", "mnist-cvae", {"class": "3", "rows": "3"}, None),
    ("cvae", "fashion-cvae", {"source": "Your own image"}, upload_an_image),
    ("cvae", "mnist-cvae-class-prior", {}, None),
    ("cvae", "mnist-vae-2d", {}, None),
    ("embeddings", "mnist-vae-2d", {}, None),
    ("embeddings", "mnist-vae-2d", {"method": "pca", "box": "1"}, choose("embeddings/colour", "kl")),
    ("embeddings", "mnist-vae-2d", {"on": "plane"}, None),
    ("embeddings", "fashion-cvae", {}, None),
    ("ae_vs_vae", "mnist-ae-2d", {"span": "4"}, None),
    ("ae_vs_vae", "fashion-vae-2d", {}, None),
    ("theory", "mnist-vae-2d", {"mu": "2"}, choose("theory/sigma", 1.5)),
    ("theory", "mnist-cvae-class-prior", {}, None),
    ("theory", "mnist-iwae-binarized", {}, None),
]


def walked(page: str, model: str, settings: dict, action, lang: str) -> AppTest:
    """The page in ``lang`` with ``model`` and ``settings`` from the link, after ``action``; no exception, no
    value of the link ignored."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for key, value in {"lang": lang, "model": model, **settings}.items():
        at.query_params[key] = value
    if page != "home":
        at.switch_page(f"pages/{page}.py")
    rerun(at)
    if action:
        action(at)
        rerun(at)
    assert not any("lang=" in w.value or "model=" in w.value for w in at.warning), [w.value for w in at.warning]
    return at


@pytest.mark.parametrize("page, model, settings, action", WALK, ids=[f"{p}-{m}-{i}" for i, (p, m, *_) in enumerate(WALK)])
def test_every_page_in_chinese_has_no_english_sentence(page, model, settings, action):
    at = walked(page, model, settings, action, "zh-CN")
    shown = page_texts(at)
    assert sum(bool(CJK.search(t)) for t in shown) > 10
    runs = {t[:120]: english_runs(t) for t in shown if english_runs(t)}
    assert not runs, runs


@pytest.mark.parametrize("page, model, settings, action", WALK, ids=[f"{p}-{m}-{i}" for i, (p, m, *_) in enumerate(WALK)])
def test_every_page_in_english_has_no_chinese(page, model, settings, action):
    at = walked(page, model, settings, action, "en")
    chinese = [t[:120] for t in page_texts(at) if CJK.search(t) and "语言" not in t and "简体中文" not in t]
    assert not chinese, chinese
