"""The conditional VAE: pick the class, keep the style (z), move the style, transfer a style."""

import hashlib

import streamlit as st
import torch

from ui import state
from ui.i18n import N_, _
from ui.images import download_png, pick_test_image, picker_settings, png_bytes, show_image, upload_image
from ui.models import APP_STATE, Selection, load_model, shipped_configs, shipped_models, weights_mtime
from vae.conditional import class_codes, class_decode, prior_styles, style_grid, style_transfer
from vae.latent import tile

STYLE_RANGE, STYLE_STEP = 3.0, 0.05  # each style slider: -3 to 3 prior standard deviations
SOURCES = (N_("A test image"), N_("Your own image"))  # the stored values (the URL's), shown translated
S = state.PageState("cvae", [
    state.Setting("class", int, 0, 0), state.Setting("seed", int, 0, 0, 100_000), state.Setting("rows", int, 5, 1, 10),
    state.Setting("source", str, SOURCES[0], options=SOURCES), *picker_settings("transfer_"),
])

# The sentences that name what one image shows, written out for each: "thing" is a digit, an item (of
# clothing) or a class (a folder's), Selection.thing a digit, an item or an image.
INTROS_CLASS_PRIOR = {
    "digit": N_("This VAE's encoder and decoder never see the digit. Its prior does: each digit y has its own learned "
                "mean, p(z|y) = N(μ_y, I), and the KL term pulls every image's code towards its class's mean, so the "
                "latent plane clusters by class by construction. A digit of class y is drawn as z = μ_y + ε with "
                "ε ~ N(0, I); ε, the offset from the mean, is the style (slant, stroke, size). Keep ε and change y to "
                "draw the same offset in another class's cloud."),
    "item": N_("This VAE's encoder and decoder never see the item. Its prior does: each item y has its own learned "
               "mean, p(z|y) = N(μ_y, I), and the KL term pulls every image's code towards its class's mean, so the "
               "latent plane clusters by class by construction. An item of class y is drawn as z = μ_y + ε with "
               "ε ~ N(0, I); ε, the offset from the mean, is the style (shade, cut, pattern). Keep ε and change y to "
               "draw the same offset in another class's cloud."),
    "class": N_("This VAE's encoder and decoder never see the class. Its prior does: each class y has its own learned "
                "mean, p(z|y) = N(μ_y, I), and the KL term pulls every image's code towards its class's mean, so the "
                "latent plane clusters by class by construction. An image of class y is drawn as z = μ_y + ε with "
                "ε ~ N(0, I); ε, the offset from the mean, is the style (colour, pose, background). Keep ε and change "
                "y to draw the same offset in another class's cloud."),
}
INTROS = {
    "digit": N_("The decoder p(x|z, y) is told the digit y, so the latent z is left to hold the style: slant, stroke, "
                "size. Keep z and change y to draw the same style as another digit (Sohn, Lee & Yan, 2015)."),
    "item": N_("The decoder p(x|z, y) is told the item y, so the latent z is left to hold the style: shade, cut, "
               "pattern. Keep z and change y to draw the same style as another item (Sohn, Lee & Yan, 2015)."),
    "class": N_("The decoder p(x|z, y) is told the class y, so the latent z is left to hold the style: colour, pose, "
                "background. Keep z and change y to draw the same style as another class (Sohn, Lee & Yan, 2015)."),
}
MANY_CLASS_PRIOR = {
    "digit": N_("z = μ_y + ε, ε ~ N(0, I): 36 samples around the mean of {name}, seed {seed}; the same ε whichever "
                "digit you pick"),
    "item": N_("z = μ_y + ε, ε ~ N(0, I): 36 samples around the mean of {name}, seed {seed}; the same ε whichever "
               "item you pick"),
    "class": N_("z = μ_y + ε, ε ~ N(0, I): 36 samples around the mean of {name}, seed {seed}; the same ε whichever "
                "class you pick"),
}
MANY = {"digit": N_("z ~ N(0, I), seed {seed}: the same 36 styles whichever digit you pick"),
        "item": N_("z ~ N(0, I), seed {seed}: the same 36 styles whichever item you pick"),
        "class": N_("z ~ N(0, I), seed {seed}: the same 36 styles whichever class you pick")}
EVERY = {"digit": N_("Same style, every digit"), "item": N_("Same style, every item"),
         "class": N_("Same style, every class")}
PICK = {"digit": N_("Pick the digit (the label y)"), "item": N_("Pick the item (the label y)"),
        "class": N_("Pick the class (the label y)")}
CONFIRM = {"digit": N_("Confirm its label: which digit is it?"), "item": N_("Confirm its label: which item is it?"),
           "class": N_("Confirm its label: which class is it?")}
PICK_SHOWN_CLASS_PRIOR = {
    "digit": N_("Pick the digit your image shows: its style is its offset from that class's mean."),
    "item": N_("Pick the item your image shows: its style is its offset from that class's mean."),
    "class": N_("Pick the class your image shows: its style is its offset from that class's mean."),
}
PICK_SHOWN = {
    "digit": N_("Pick the digit your image shows: the encoder needs its label to separate style from class."),
    "item": N_("Pick the item your image shows: the encoder needs its label to separate style from class."),
    "class": N_("Pick the class your image shows: the encoder needs its label to separate style from class."),
}
UPLOAD_LABELS = {"digit": N_("An image of one digit"), "item": N_("An image of one item"),
                 "image": N_("One image")}
UPLOAD_FIRST = {"digit": N_("Upload an image of a digit to borrow its style."),
                "item": N_("Upload an image of an item to borrow its style."),
                "image": N_("Upload an image to borrow its style.")}


def or_list(names: list[str]) -> str:
    """``names`` as "a or b or c", in this run's language."""
    out = names[0]
    for name in names[1:]:
        out = _("{first} or {second}").format(first=out, second=name)
    return out


def style_state(name: str) -> state.PageState:
    """The style of model ``name`` (its sliders' values), one URL parameter: ``style=0.5,-1``."""
    return state.PageState("cvae", [state.Setting("style", float, None, many=True)], scope=name)


def not_conditional(sel: Selection) -> None:
    """For a model without labels: the conditional models to switch to, each with a preview."""
    shipped, configs = shipped_models(), shipped_configs()
    cvaes = sorted((n for n, c in configs.items() if c.get("model") in ("cvae", "cvae_class_prior")),
                   key=lambda n: (configs[n]["dataset"] != "mnist", n))  # MNIST first
    st.info(_("{model} is not conditional: pick {models} in the sidebar to choose the class of what it draws.").format(
        model=sel.name, models=or_list(cvaes)) if cvaes else
        _("{model} is not conditional: pick a CVAE in the sidebar to choose the class of what it draws.").format(
            model=sel.name))
    for column, cvae in zip(st.columns(max(len(cvaes), 1)), cvaes):
        column.button(_("Switch to {model}").format(model=cvae), key=f"cvae_use_{cvae}", on_click=APP_STATE.set,
                      args=("model", cvae))
        png, width = preview(shipped[cvae], weights_mtime(shipped[cvae]), state.zoom())
        column.image(png, caption=_("{model}: three styles, each drawn as every class").format(model=cvae), width=width)


@st.cache_data(show_spinner=False, max_entries=8)
def preview(folder: str, version: float, zoom: int) -> tuple[bytes, int]:
    """A CVAE's three prior styles as every class: (PNG bytes, width in pixels), once per model and zoom
    (drawn on every visit of a model that is not conditional: 6% of the server's time under load)."""
    model = load_model(folder)[0]
    pixels = tile(style_grid(model, prior_styles(3, model.latent_dim, 0)), nrow=10, padding=2, scale=2 * zoom)
    return png_bytes(pixels), int(pixels.shape[1])


def intro(sel: Selection, thing: str) -> None:
    st.markdown(_((INTROS_CLASS_PRIOR if sel.class_prior else INTROS)[thing]))


def read_style(styles: state.PageState, d: int) -> list[float]:
    """The style sliders' values before they are drawn: each slider's own once it has one, else the
    state's (a link's, the session's, else 0), put under the sliders' keys and written back to the state
    and the URL."""
    kept = styles.get("style", default=(0.0,) * d, length=d, lo=-STYLE_RANGE, hi=STYLE_RANGE)
    z = [float(st.session_state.setdefault(f"{styles.key('style')}{i}", kept[i])) for i in range(d)]
    if tuple(z) != tuple(kept):
        styles.set("style", tuple(z))
        styles.get("style", default=(0.0,) * d, length=d, lo=-STYLE_RANGE, hi=STYLE_RANGE)  # and into the URL
    return z


def random_style(styles: state.PageState, d: int) -> None:
    """The "Random style" button's callback: a draw from N(0, I), clipped to the sliders and on their grid."""
    z = torch.randn(d).clamp(-STYLE_RANGE, STYLE_RANGE).tolist()
    styles.set("style", tuple(round(round(v / STYLE_STEP) * STYLE_STEP, 2) for v in z))
    for i in range(d):
        st.session_state.pop(f"{styles.key('style')}{i}", None)


def one_style(sel: Selection, label: int, style_name: str) -> torch.Tensor:
    """The picked class in the sliders' style, the picture above its sliders. Returns z float (1, d)."""
    model, names, d = sel.model, sel.class_names, sel.model.latent_dim
    styles = style_state(sel.name)
    st.subheader(_("One style"))
    picture = st.empty()
    read_style(styles, d)
    z = torch.tensor([[st.slider(f"{style_name}[{i}]", -STYLE_RANGE, STYLE_RANGE, step=STYLE_STEP,
                                 key=f"{styles.key('style')}{i}") for i in range(d)]])
    st.button(_("Random style"), icon=":material/casino:", on_click=random_style, args=(styles, d),
              help=_("A draw from N(0, I)"))
    style = ", ".join(f"{v:.2f}" for v in z[0].tolist())
    if sel.class_prior:
        code = ", ".join(f"{v:.2f}" for v in class_codes(model, z, label)[0].tolist())
        caption = _("{name} in the style {style_name} = ({style}), at z = μ_y + ε = ({code})").format(
            name=names[label], style_name=style_name, style=style, code=code)
    else:
        caption = _("{name} in the style {style_name} = ({style})").format(name=names[label], style_name=style_name,
                                                                           style=style)
    show_image(picture, tile(class_decode(model, z, label), nrow=1, scale=8 * state.zoom()), caption=caption)
    return z


def many_styles(sel: Selection, label: int, thing: str) -> None:
    """36 prior styles of the picked class, their seed kept in the page's state."""
    names, d = sel.class_names, sel.model.latent_dim
    seed = S.get("seed")
    st.subheader(_("36 random styles of {name}").format(name=names[label]))
    drawn = tile(class_decode(sel.model, prior_styles(36, d, seed), label), nrow=6, padding=2)
    scale = 3 * state.zoom()
    show_image(st, drawn.repeat(scale, 0).repeat(scale, 1),
               caption=_((MANY_CLASS_PRIOR if sel.class_prior else MANY)[thing]).format(name=names[label], seed=seed))
    st.button(_("New styles"), icon=":material/casino:",
              on_click=lambda: S.set("seed", int(torch.randint(100_000, ()).item())))
    download_png(drawn, f"{sel.name}-{names[label]}-36-styles", "cvae_styles_png")


def every_class(sel: Selection, z: torch.Tensor, thing: str, style_name: str) -> None:
    """The sliders' style and the first random ones, each decoded as every class."""
    names, d = sel.class_names, sel.model.latent_dim
    st.subheader(_(EVERY[thing]))
    rows = st.columns([1, 2])[0].slider(_("Styles (rows)"), 1, 10, key=S.bind("rows"))
    row_z = torch.cat([z, prior_styles(rows - 1, d, S.get("seed"))]) if rows > 1 else z
    every = tile(style_grid(sel.model, row_z), nrow=len(names), padding=2)
    scale = 3 * state.zoom()
    show_image(st, every.repeat(scale, 0).repeat(scale, 1),
               caption=_("Each row is one {style_name} decoded with every label; row 1 is the style of the sliders, the "
                         "rest are the first random styles above. Columns: {names}.").format(style_name=style_name,
                                                                                            names=_(", ").join(names)))
    download_png(every, f"{sel.name}-every-{thing}", "cvae_grid_png", container=st.columns([1, 2])[0])
    if sel.class_prior:
        means = sel.model.class_means.detach().cpu()
        gaps = torch.cdist(means, means).fill_diagonal_(float("inf"))
        i, j = divmod(int(gaps.argmin()), len(names))
        st.caption(_("The closest class means are those of {first} and {second}, {gap:.2f} apart in z against the "
                     "priors' unit standard deviation: their draws overlap, so the same ε can read as either class. "
                     "`bench/cvae_accuracy.py` counts how often a draw shows the class asked for.").format(
                         first=names[i], second=names[j], gap=float(gaps[i, j])))


def transfer_source(sel: Selection, thing: str, source_col, result_col):
    """The image to borrow a style from and its label: (image (1, C, H, W) or None, label or None,
    its test image number, None for an upload). An upload's label is asked for each new image."""
    names = sel.class_names
    with source_col:
        words = {v: _(v) for v in SOURCES}  # looked up now: AppTest calls format_func after the run, in English
        source = st.radio(_("Image"), SOURCES, horizontal=True, key=S.bind("source"), format_func=words.get)
        if source == SOURCES[0]:
            x, true_label, index = pick_test_image(sel, "transfer_", page_state=S)
            given = st.selectbox((_("Its label (whose mean is subtracted; the test set says {name})") if sel.class_prior
                                  else _("Its label (told to the encoder; the test set says {name})")).format(
                                     name=names[true_label]),
                                 range(len(names)), index=true_label, format_func=lambda c: names[c])
            return x, given, index
        x = upload_image(f"{S.key('transfer')}_upload", label=_(UPLOAD_LABELS[sel.thing]), style=sel.preprocess_style)
    if x is None:
        result_col.info(_(UPLOAD_FIRST[sel.thing]))
        return None, None, None
    image_id = hashlib.sha1(x.numpy().tobytes()).hexdigest()[:12]  # each new image asks for its own label
    given = result_col.segmented_control(_(CONFIRM[thing]), range(len(names)), wrap=True,
                                         key=f"cvae_upload_label_{image_id}", format_func=lambda c: names[c])
    return x, given, None


def transfer(sel: Selection, thing: str, style_name: str) -> None:
    """Style transfer: encode an image with its label, decode its style with every label."""
    names, zoom = sel.class_names, state.zoom()
    st.subheader(_("Style transfer"))
    if sel.class_prior:
        st.markdown(_("Encode an image to find its code μ (the mean of q(z|x)); its style is the offset from its "
                      "class's mean, ε = μ − μ_y. Then draw that ε at every class's mean."))
    else:
        st.markdown(_("Encode an image with its label to find its style z (the mean of q(z|x, y)), then decode "
                      "that z with every label."))
    source_col, result_col = st.columns([1, 2], gap="large")
    x, given, index = transfer_source(sel, thing, source_col, result_col)
    if x is None:
        return
    if given is None:
        show_image(source_col, tile(x, nrow=1, scale=4 * zoom), caption=(
            _("your image, as the model sees it") if index is None else
            _("test image #{index}, as the model sees it").format(index=index)))
        result_col.info(_((PICK_SHOWN_CLASS_PRIOR if sel.class_prior else PICK_SHOWN)[thing]))
        return
    style, images = style_transfer(sel.model, x, int(given))
    show_image(source_col, tile(x, nrow=1, scale=4 * zoom), caption=(
        _("your image, encoded as {name}") if index is None else
        _("test image #{index}, encoded as {name}")).format(index=index, name=names[given]))
    show_image(result_col, tile(images, nrow=(len(names) + 1) // 2, padding=2, scale=3 * zoom),
               caption=_("Its style {style_name} = ({style}) decoded as {names} (left to right, then the second row); "
                         "the {name} is the reconstruction.").format(
                   style_name=style_name, style=", ".join(f"{v:.2f}" for v in style.tolist()), names=_(", ").join(names),
                   name=names[given]))


def render(sel: Selection) -> None:
    st.title(_("Conditional VAE: pick the class, keep the style"))
    if not sel.model.conditional:
        not_conditional(sel)
        return
    names = sel.class_names
    thing = sel.thing if sel.builtin else "class"  # a digit, an item (of clothing), or a class folder
    style_name = "ε" if sel.class_prior else "z"
    intro(sel, thing)
    label = st.segmented_control(_(PICK[thing]), range(len(names)), wrap=True, required=True,
                                 key=S.bind("class", hi=len(names) - 1), format_func=lambda c: names[c])
    one, many = st.columns([1, 2], gap="large")
    with one:
        z = one_style(sel, label, style_name)
    with many:
        many_styles(sel, label, thing)
    every_class(sel, z, thing, style_name)
    transfer(sel, thing, style_name)


if __name__ == "__main__":
    import app

    app.run_page(render)
