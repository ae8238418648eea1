"""Interpolation: images decoded along a path between the encodings of two images, linear or slerp."""

from dataclasses import dataclass, replace

import plotly.graph_objects as go
import streamlit as st
import torch
from scipy.stats import chi

from ui import i18n, state
from ui.i18n import N_, _, say
from ui.charts import class_scatter
from ui.images import download_png, label_tiles, path_gif, pick_test_image, picker_settings, show_image, upload_image
from ui.models import Selection, test_encodings
from vae.latent import INTERPOLATIONS, decode_images, encode_images, interpolate, tile

SOURCES = (N_("a test image"), N_("an upload"))  # stored values (the URL's), English; shown through _
ENDS = ("start", "end")
OF = (N_("the start"), N_("the end"))
FROM = {"start": N_("**Start**: from"), "end": N_("**End**: from")}  # each end's radio, its upload's label
UPLOAD = {"start": N_("The start image"), "end": N_("The end image")}
METHODS = {"linear": N_("linear"), "slerp": N_("spherical (slerp)")}  # the radio's options
PATHS = {"linear": N_("linear"), "slerp": N_("slerp")}  # a path's name in the caption and the plot
STRIP_PX = 928  # the main column at a 1400 px window with the sidebar open (measured in Chromium)
PROJECTOR_STRIP_PX = 1230  # the same at 1920 x 1080 in projector mode (its wider sidebar; measured in Chromium)
GIF_SCALE = 8  # the GIF's pixel repetition: 224 x 224 px frames (times the projector's zoom)
S = state.PageState("interpolate", [
    state.Setting("start_from", str, SOURCES[0], options=SOURCES), state.Setting("end_from", str, SOURCES[0], options=SOURCES),
    *picker_settings("start_"),  # the two ends start on different test images: the end on example 1
    *[replace(s, default=1) if s.name == "end_example" else s for s in picker_settings("end_")],
    state.Setting("start_label", int, 0, 0), state.Setting("end_label", int, 0, 0),
    state.Setting("method", str, INTERPOLATIONS[0], options=INTERPOLATIONS), state.Setting("n", int, 8, 1, 20),
    state.Setting("of", str, OF[0], options=OF),
])


@dataclass(frozen=True)
class End:
    """One end of the path: the image float (1, C, H, W) in [0, 1], its label, what it is in words
    ("test image 3 (a 1)"), and in a file name ("test-image-3")."""

    x: torch.Tensor
    label: int
    what: str
    slug: str


def intro() -> None:
    st.title(_("Interpolation"))
    st.markdown(_(
        "Encode two images, walk a straight line (linear) or a great-circle arc (slerp) between their "
        "encodings mu, and decode each point. In d dimensions, draws from the prior N(0, I) lie near the "
        "sphere of radius about √d: the centre has the highest density, yet almost no draw lands near it, so codes "
        "there are atypical rather than improbable. A straight line between two typical codes passes closer "
        "to the centre than they are, shortest at its middle; the arc keeps a typical length (White, 2016). "
        "In 2 dimensions 90% of draws lie at radii 0.3 to 2.4, so a straight line between two of them stays among typical radii and the two paths differ little."
    ))


def choose_end(sel: Selection, end: str) -> End | None:
    """The widgets of one end (a test image or an upload); None while an upload end has no usable file."""
    names = sel.class_names
    source = st.radio(_(FROM[end]), SOURCES, horizontal=True, key=S.bind(f"{end}_from"), format_func=i18n.shown(SOURCES))
    if source == SOURCES[0]:
        x, label, index = pick_test_image(sel, f"{end}_", page_state=S)
        chosen = End(x, label, _("test image {index} (a {name})").format(index=index, name=names[label]),
                     f"test-image-{index}")
    else:
        x = upload_image(f"{S.key(end)}_upload", label=_(UPLOAD[end]), style=sel.preprocess_style)
        label = (st.selectbox(_("Its class (the CVAE's label y)"), range(len(names)), format_func=lambda i: names[i],
                              key=S.bind(f"{end}_label", hi=len(names) - 1)) if sel.label_decoder else 0)
        chosen = None if x is None else End(x, label, _("your upload"), "upload")
    if chosen is not None:  # the chosen end, small, so both ends are in view while choosing
        show_image(st, tile(chosen.x, nrow=1, scale=3 * state.zoom()), caption=chosen.what)
    return chosen


def path_settings(sel: Selection, ends: list[End]) -> tuple[str, int, int | None]:
    """(method, number of images between the ends, the CVAE's label for the path or None)."""
    c1, c2, c3 = st.columns(3)
    method = c1.radio(_("Interpolation"), INTERPOLATIONS, horizontal=True, key=S.bind("method"),
                      format_func=i18n.shown(INTERPOLATIONS, METHODS.get),
                      help=_("linear: (1 - t) z0 + t z1. slerp: along the great circle from z0's direction to "
                             "z1's at constant angular speed (Shoemake 1985; White 2016, 'Sampling Generative "
                             "Networks'), the length going linearly from |z0| to |z1|."))
    n = c2.slider(_("Images between the ends"), 1, 20, key=S.bind("n"))
    y_path = None
    if sel.label_decoder:
        of = c3.radio(_("Decode the path with the class of"), OF, horizontal=True, key=S.bind("of"), format_func=i18n.shown(OF),
                      help=_("The CVAE's z holds the style; the label y picks the class."))
        y_path = ends[OF.index(of)].label
    return method, n, y_path


def show_strip(sel: Selection, ends: list[End], strip: torch.Tensor, method: str, n: int, y_path: int | None) -> None:
    """The images of the path, each captioned with its t in the page's own text (readable on a phone,
    where a row of images wraps), at the largest integer scale (2 to 4, to 8 in projector mode) that
    keeps them in one row of the main column, else at 2, wrapped; never resampled."""
    zoom = state.zoom()
    column = STRIP_PX if zoom == 1 else PROJECTOR_STRIP_PX
    side = strip.shape[-1]  # the images' size in pixels (28 for MNIST)
    scale = max(2, min(4 * zoom, column // ((n + 4) * side)))
    labels = [_("image"), "t = 0", *[f"t = {i / (n + 1):.2f}" for i in range(1, n + 1)], "t = 1", _("image")]
    frames = [tile(f[None], nrow=1, scale=scale) for f in strip]
    st.image(frames, caption=labels, width=side * scale, output_format="PNG")
    values = dict(start=ends[0].what, end=ends[1].what, n=n, m=n + 1, method=_(PATHS[method]))
    if sel.label_decoder:
        st.caption(_("Left to right: {start}, its reconstruction, {n} images decoded at t = 1/{m} ... {n}/{m} of the "
                     "{method} path, the reconstruction of {end}, and that image; path decoded with y = {y}.").format(
                         y=sel.class_names[y_path], **values))
    else:
        st.caption(_("Left to right: {start}, its reconstruction, {n} images decoded at t = 1/{m} ... {n}/{m} of the "
                     "{method} path, the reconstruction of {end}, and that image.").format(**values))


def downloads(sel: Selection, ends: list[End], strip: torch.Tensor, recon: torch.Tensor, frames: torch.Tensor,
              method: str, n: int) -> None:
    """The strip as a PNG (its t labels drawn in) and the path as an animated GIF, named after the model,
    the two ends and the method."""
    name = f"{sel.name}-{ends[0].slug}-to-{ends[1].slug}-{method}"
    labels = ["image", "t = 0", *[f"{i / (n + 1):.2f}" for i in range(1, n + 1)], "t = 1", "image"]
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    with c1:
        download_png(label_tiles(tile(strip, nrow=n + 4, padding=1), labels, n + 4, strip.shape[-2] + 1, font=9), name,
                     "interp_png")
    scale = GIF_SCALE * state.zoom()
    c2.download_button(_("Download GIF"), lambda: path_gif(recon, frames, scale=scale), f"{name}.gif", "image/gif",
                       key="interp_gif", icon=":material/animated_images:",
                       help=_("The path as an animation, there and back, {w} x {h} px.").format(
                           w=strip.shape[-1] * scale, h=strip.shape[-2] * scale))


def norm_caption(path: torch.Tensor, d: int) -> str:
    """|z| along the path against a prior draw's: |z| of z ~ N(0, I_d) follows the chi distribution
    with d degrees of freedom, mean sqrt(2) Γ((d+1)/2) / Γ(d/2) (1.25 for d = 2, about √d for large d)."""
    norms, prior = path.norm(dim=1), chi(d)
    return _("|z| along the path: {start:.2f} at the start, {end:.2f} at the end, lowest {low:.2f}. "
             "Latent dimension {d}: a prior draw's |z| follows the chi distribution with {d} degrees of freedom, "
             "mean {mean:.2f}, median {median:.2f}, 90% of draws from {lo:.2f} "
             "to {hi:.2f} (√{d} = {root:.2f}).").format(
                 start=float(norms[0]), end=float(norms[-1]), low=float(norms.min()), d=d, mean=prior.mean(),
                 median=prior.median(), lo=prior.ppf(0.05), hi=prior.ppf(0.95), root=d ** 0.5)


def path_plane(sel: Selection, path: torch.Tensor, method: str) -> None:
    """A 2-d model's path over the test encodings, coloured by class."""
    test = sel.test_images()
    labels, source = test[1], say(test[3])
    zoom = state.zoom()
    fig = class_scatter(test_encodings(sel)[0], labels, sel.class_names, size=3 * zoom, opacity=0.4)
    p = path.numpy()
    # WebGL traces draw over SVG ones, so the path is WebGL too, after the encodings: on top.
    fig.add_trace(go.Scattergl(x=p[:, 0], y=p[:, 1], mode="lines+markers",
                               name=_("{method} path").format(method=_(PATHS[method])),
                               line={"color": "black", "width": 3 * zoom},
                               marker={"size": 8 * zoom, "color": "black", "line": {"color": "white", "width": 1}}))
    fig.add_trace(go.Scattergl(x=p[[0, -1], 0], y=p[[0, -1], 1], mode="markers+text", text=[_("start"), _("end")],
                               textposition="top center", textfont={"size": 14 * zoom, "color": "black"},
                               showlegend=False, marker={"size": 16 * zoom, "symbol": ["star", "square"], "color": "black",
                                                         "line": {"color": "white", "width": 2}}))
    fig.update_layout(height=560 if zoom == 1 else 760, dragmode=False, margin={"l": 0, "r": 0, "t": 30, "b": 0}, xaxis_title="z[0]",
                      yaxis_title="z[1]", xaxis={"constrain": "domain"}, yaxis={"scaleanchor": "x", "constrain": "domain"},
                      font={"size": 12 * zoom})
    fig.update_xaxes(tickfont_size=12 * zoom, title_font_size=14 * zoom)  # over the theme's own sizes
    fig.update_yaxes(tickfont_size=12 * zoom, title_font_size=14 * zoom)
    st.plotly_chart(fig)
    st.caption(_("The path over the encodings mu of {source}, coloured by class, each encoded with its own label y.")
               .format(source=source) if sel.label_decoder else
               _("The path over the encodings mu of {source}, coloured by class.").format(source=source))


def render(sel: Selection) -> None:
    model = sel.model
    intro()
    ends = []
    for col, end in zip(st.columns(2, gap="large"), ENDS):
        with col:
            ends.append(choose_end(sel, end))
    if any(e is None for e in ends):  # return, not st.stop(): a stopped run keeps the state of the widgets it did not
        # draw on the server while the browser drops them, and they came back showing their defaults
        st.info(_("Upload an image for each end set to an upload, or pick a test image."))
        return
    method, n, y_path = path_settings(sel, ends)

    x = torch.cat([e.x for e in ends])
    y = torch.tensor([e.label for e in ends])
    mu = encode_images(model, x, y if sel.label_decoder else None)[0]
    path = interpolate(mu[0], mu[1], n + 2, method)  # t = 0, 1/(n+1), ..., 1
    recon = decode_images(model, mu, y).cpu()  # the decoder's mean at each end's mu: its reconstruction
    frames = decode_images(model, path[1:-1], y_path).cpu()
    strip = torch.cat([x[:1], recon[:1], frames, recon[1:], x[1:]])
    show_strip(sel, ends, strip, method, n, y_path)
    downloads(sel, ends, strip, recon, frames, method, n)
    st.caption(norm_caption(path, model.latent_dim))
    if model.latent_dim == 2:
        path_plane(sel, path, method)


if __name__ == "__main__":
    import app

    app.run_page(render)
