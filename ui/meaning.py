"""What the latent dimensions mean (issue 26): Morpho-MNIST's measurements of the test split, each
dimension's report (|Spearman rho| with each measurement, MI with the class), the attribute directions
and their sliders, and where one digit's measurements fall among the test images of its class.

Everything is computed by ``vae.attributes`` and ``vae.morphometry``, once per model folder and weights
(the caches below); a rerun measures at most the two decoded images an attribute panel shows (a few ms
each). Morpho-MNIST's measurements are defined for handwritten digits: for a Fashion-MNIST model every
helper here returns None and the pages say why (``FOR_DIGITS``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from vae.attributes import TRAVERSED, Attributes, compute_attributes, dimension_label, dimension_report, load_attributes, move
from vae.latent import decode_images, tile
from vae.morphometry import DESCRIPTIONS, UNITS, load_measurements, load_measurements_metadata, measure

from .i18n import N_, _
from .images import test_images
from .models import Selection, test_encodings, weights_mtime

# Shown translated: _(SOURCE), _(FOR_DIGITS).format(data=...).
SOURCE = N_("Castro et al. (2019), Morpho-MNIST, Sec. 2.1")
FOR_DIGITS = N_("Morpho-MNIST's measurements (thickness, slant, width, height, area, length) are defined for "
                "MNIST's handwritten digit strokes, so this model ({data}) gets none: no dimension report, no "
                "attribute sliders. Pick an MNIST model in the sidebar to see them.")
ATTRIBUTE_SPAN = 2.0  # an attribute slider reaches ± this many test-split standard deviations of its measurement
# The measurements' (and the class's) names as a reader sees them; the stored names stay English.
NAMES = {"thickness": N_("thickness"), "slant": N_("slant"), "width": N_("width"), "height": N_("height"),
         "area": N_("area"), "length": N_("length"), "class": N_("class")}
METHODS = {"decile": N_("decile"), "regression": N_("regression"), "partial": N_("partial")}  # estimators' names
# percentile_sentence's sentences: (measurement, more than half below it) -> the sentence.
PLACED = {  # the measurement's name in each: "shorter" is said of a height and of a length
    ("thickness", True): N_("thickness {value}: thicker than {share:.0%} of the test {cls}s ({n:,})"),
    ("thickness", False): N_("thickness {value}: thinner than {share:.0%} of the test {cls}s ({n:,})"),
    ("slant", True): N_("slant {value}: more slanted to the right than {share:.0%} of the test {cls}s ({n:,})"),
    ("slant", False): N_("slant {value}: more slanted to the left than {share:.0%} of the test {cls}s ({n:,})"),
    ("width", True): N_("width {value}: wider than {share:.0%} of the test {cls}s ({n:,})"),
    ("width", False): N_("width {value}: narrower than {share:.0%} of the test {cls}s ({n:,})"),
    ("height", True): N_("height {value}: taller than {share:.0%} of the test {cls}s ({n:,})"),
    ("height", False): N_("height {value}: shorter than {share:.0%} of the test {cls}s ({n:,})"),
    ("area", True): N_("area {value}: larger than {share:.0%} of the test {cls}s ({n:,})"),
    ("area", False): N_("area {value}: smaller than {share:.0%} of the test {cls}s ({n:,})"),
    ("length", True): N_("length {value}: longer than {share:.0%} of the test {cls}s ({n:,})"),
    ("length", False): N_("length {value}: shorter than {share:.0%} of the test {cls}s ({n:,})"),
}
NEIGHBOURS = 15  # an upload's class, for a model without labels: the majority of its nearest test encodings


def digits(sel: Selection) -> bool:
    """True for an MNIST model: Morpho-MNIST's measurements apply."""
    return sel.config["dataset"] == "mnist"


def measurement_name(name: str) -> str:
    """A measurement's (or "class"'s) name in this run's language: "thickness", "粗细"."""
    return _(NAMES[name]) if name in NAMES else name


def describe(name: str) -> str:
    """What a measurement is (``vae.morphometry.DESCRIPTIONS``), in this run's language."""
    return _(DESCRIPTIONS[name])


def unit(name: str) -> str:
    """The measurement's unit as a reader sees it: px, px², rad."""
    return UNITS.get(name, "").replace("^2", "²")


def fmt(name: str, value: float, signed: bool = False) -> str:
    """'2.91 px', '+0.12 rad', '74 px^2'."""
    digits_ = 0 if name == "area" else 2
    return f"{value:{'+' if signed else ''}.{digits_}f} {unit(name)}"


# ------------------------------------------------------------------------ the test split's measurements


@st.cache_resource(show_spinner=False, max_entries=1)
def _stored_measurements() -> tuple[dict, dict]:
    return load_measurements("mnist", "test"), load_measurements_metadata("mnist", "test")


def test_measurements() -> tuple[dict[str, np.ndarray], dict]:
    """(name -> float64 (N,), metadata): Morpho-MNIST's measurements of the MNIST test images at hand
    (``ui.images.test_images``: the whole split, or the bundled sample), in the same order. Shipped once,
    computed by ``python -m vae.morphometry`` (read-only here). Raises MeasurementsNotFoundError."""
    stored, meta = _stored_measurements()
    indices = test_images("mnist")[2].numpy()
    return {n: np.asarray(v, dtype=np.float64)[indices] for n, v in stored.items()}, meta


def data_line(n: int) -> str:
    """'Morpho-MNIST's measurements (Castro et al. 2019, Sec. 2.1) of 10,000 MNIST test images'."""
    return _("Morpho-MNIST's measurements ({source}) of {n:,} MNIST test images").format(source=_(SOURCE), n=n)


def units_table() -> str:
    """A markdown table of the measurements: what each is and its unit."""
    rows = [f"| {measurement_name(n)} | {unit(n)} | {describe(n)} |" for n in DESCRIPTIONS]
    return _("| measurement | unit | what it is |") + "\n| --- | --- | --- |\n" + "\n".join(rows)


# -------------------------------------------------------------------------- what each dimension tracks


@st.cache_data(show_spinner=False, max_entries=16)
def _report(folder: str, version: float, _sel: Selection) -> dict:
    mu, _logvar = test_encodings(_sel)
    labels = test_images("mnist")[1]
    measured, _meta = test_measurements()
    return dimension_report(mu, labels[: len(mu)], measured)


def report(sel: Selection) -> dict | None:
    """``vae.attributes.dimension_report`` of the model's test encodings (mu(x), mu(x, y) for a CVAE, the
    AE's codes) against the test split's measurements; None for a Fashion-MNIST model. Once per model
    folder and weights (16 models kept): about 4 s on a busy 2-core CPU for 10,000 images."""
    if not digits(sel):
        return None
    with st.spinner(_("Relating each latent dimension to the digits' measurements...")):
        return _report(sel.folder, weights_mtime(sel.folder), sel)


def slider_labels(sel: Selection) -> list[str | None]:
    """For each latent dimension, "slant, rho = 0.81" when it tracks one measurement clearly (|rho| >= 0.5,
    ``vae.attributes.dimension_label``), else None; all from one read of the cached report. In this run's
    language: ``dimension_label``'s words in English."""
    r = report(sel)
    labels = [None if r is None else dimension_label(r, j) for j in range(sel.config["latent_dim"])]
    return [None if lab is None else _("{measurement}, rho = {rho:.2f}").format(
        measurement=measurement_name(r["top"][j]["measurement"]), rho=r["top"][j]["rho"]) for j, lab in enumerate(labels)]


# ------------------------------------------------------------------------------ attribute directions


@st.cache_resource(show_spinner=False, max_entries=16)
def _attributes(folder: str, version: float, _sel: Selection) -> tuple[Attributes, str]:
    stored = load_attributes(folder)
    if stored is not None and not stored.is_stale(folder):
        return stored, "stored"
    mu, _logvar = test_encodings(_sel)
    measured, _meta = test_measurements()
    labels = test_images("mnist")[1][: len(mu)]
    return compute_attributes(mu, measured, labels=labels), "computed"


def attributes(sel: Selection) -> tuple[Attributes, str] | None:
    """(directions, "stored" or "computed"): the model's ``attributes.safetensors`` when it matches its
    weights, else the directions computed here from its test encodings (``vae.attributes.compute_attributes``,
    White's decile difference; a model trained in the app). None for a Fashion-MNIST model."""
    if not digits(sel):
        return None
    with st.spinner(_("Finding the attribute directions...")):
        return _attributes(sel.folder, weights_mtime(sel.folder), sel)


@dataclass
class AttributeMove:
    """What an attribute panel asked: an amount of each measurement (its units), and where to print the
    measured values once the page has decoded the moved code."""

    attrs: Attributes
    amounts: dict[str, float]
    slots: dict[str, object]

    def apply(self, z: torch.Tensor) -> torch.Tensor:
        """z (D,) moved along each direction by its amount, converted to z units (``Attributes.z_units``)."""
        for name, amount in self.amounts.items():
            if amount:
                z = move(z, self.attrs.directions[name], self.attrs.z_units(name, amount))
        return z

    @property
    def asked(self) -> str:
        """'thickness +0.60 px, slant -0.10 rad', or '' when every slider is at 0."""
        return _(", ").join(f"{measurement_name(n)} {fmt(n, a, True)}" for n, a in self.amounts.items() if a)

    def show_measured(self, before: torch.Tensor, after: torch.Tensor) -> None:
        """Print, beside each slider, the measurement of the decoded image at the moved code (``after``)
        and at the code itself (``before``), each float (1, 1, 28, 28) in [0, 1]."""
        m0 = measure(before.cpu())
        m1 = m0 if after is before else measure(after.cpu())  # nothing asked: one image, measured once
        for name, slot in self.slots.items():
            v0, v1 = float(m0[name][0]), float(m1[name][0])
            shown = measurement_name(name)
            if not np.isfinite(v1):
                slot.caption(_("{name}: the decoded image is blank, nothing to measure").format(name=shown))
            elif np.isfinite(v0) and self.amounts[name]:
                slot.caption(_("measured {name}: **{value}** ({change} from {before})").format(
                    name=shown, value=fmt(name, v1), change=fmt(name, v1 - v0, True), before=fmt(name, v0)))
            else:
                slot.caption(_("measured {name}: **{value}**").format(name=shown, value=fmt(name, v1)))


def attribute_sliders(sel: Selection, key: str, container=st) -> AttributeMove | None:
    """One slider per traversed attribute (thickness, slant, width, height), in the measurement's units
    (± ``ATTRIBUTE_SPAN`` test-split standard deviations), each with a slot under it for the measured value.
    None for a Fashion-MNIST model. ``key`` keeps the pages' sliders apart."""
    found = attributes(sel)
    if found is None:
        return None
    attrs, where = found
    amounts, slots = {}, {}
    for i, name in enumerate([n for n in TRAVERSED if n in attrs.directions]):
        if i % 2 == 0:  # two a row, a row at a time: stacked on a phone in the same order
            cols = container.columns(2)
        col = cols[i % 2]
        reach = float(np.round(ATTRIBUTE_SPAN * attrs.std[name], 2 if name == "slant" else 1))
        step = 0.01 if name == "slant" else 0.05
        amounts[name] = col.slider(
            _("{name} ({unit})").format(name=measurement_name(name), unit=unit(name)), -reach, reach, 0.0, step,
            format="%+.2f", key=f"{key}_{name}",
            help=_("Moves z along the {name} direction by the asked change in {unit} ({scale:.3g} z units per {unit}): "
                   "{description}. The value under the slider is measured on the decoded image.").format(
                name=measurement_name(name), unit=unit(name), scale=attrs.scale[name], description=describe(name)))
        slots[name] = col.empty()
    method = _(METHODS[attrs.method]) if attrs.method in METHODS else attrs.method
    how = (_("Directions stored with the model (attributes.safetensors; {method} estimator: White (2016), mean code of "
             "the top 10% minus the bottom 10% of the {n:,} test images by each measurement). Measured as in {source}.")
           if where == "stored" else
           _("Directions computed here from this model's test encodings (no attributes.safetensors matches its weights; "
             "{method} estimator: White (2016), mean code of the top 10% minus the bottom 10% of the {n:,} test images by "
             "each measurement). Measured as in {source}."))
    container.caption(how.format(method=method, n=attrs.n_images, source=_(SOURCE)))
    return AttributeMove(attrs, amounts, slots)


# --------------------------------------------------------------------------------------- one digit


def percentile(name: str, value: float, cls: int) -> tuple[float, int]:
    """(share of the test images of class ``cls`` whose measurement is below ``value``, their count)."""
    measured, _meta = test_measurements()
    labels = test_images("mnist")[1].numpy()
    v = measured[name][labels == cls]
    v = v[np.isfinite(v)]
    return float((v < value).mean()) if len(v) else float("nan"), int(len(v))


def percentile_sentence(name: str, value: float, cls: int, class_name: str) -> str:
    """'thickness 3.40 px: thicker than 82% of the test 7s (1,028)'."""
    share, n = percentile(name, value, cls)
    more = share >= 0.5
    return _(PLACED[name, more]).format(value=fmt(name, value), share=share if more else 1 - share, cls=class_name, n=n)


def read_class(sel: Selection, mu: torch.Tensor) -> int:
    """The class a model without labels reads a code as: the majority among the ``NEIGHBOURS`` nearest
    test encodings (Euclidean distance between encoder means)."""
    codes, _logvar = test_encodings(sel)
    labels = test_images("mnist")[1][: len(codes)]
    near = torch.cdist(mu.reshape(1, -1).float(), codes).flatten().topk(NEIGHBOURS, largest=False).indices
    return int(torch.bincount(labels[near], minlength=10).argmax())


def digit_section(sel: Selection, x: torch.Tensor, mu: torch.Tensor, label: int | None, label_is_true: bool) -> None:
    """Reconstruct's part of issue 26: the input's measurements, each placed among the test images of the
    class it is read as, and attribute sliders on its code ("your 7, thicker"), decoded and measured.

    x: float (1, 1, 28, 28) in [0, 1]; mu: its code (D,); label: its class when known (a test image's,
    or the one picked for a conditional model), else None (then ``read_class``).
    """
    st.subheader(_("Its measurements, and the same digit thicker, slanted, wider, taller"))
    if not digits(sel):
        st.info(_(FOR_DIGITS).format(data=sel.dataset_title))
        return
    names = sel.class_names
    if label is None:
        cls = read_class(sel, mu)
        why = _("the class of most of its {k} nearest test encodings (this model reads it as a {cls})").format(
            k=NEIGHBOURS, cls=names[cls])
    else:
        cls = label
        why = _("its test label") if label_is_true else _("the class picked for it")
    values = measure(x.cpu())
    measured, meta = test_measurements()
    left, right = st.columns([1, 1], gap="large")
    with left:
        if not np.isfinite(values["thickness"][0]):
            st.warning(_("The input is blank after Morpho-MNIST's threshold (0.5): nothing to measure."))
        else:
            st.markdown("\n".join(f"- {percentile_sentence(n, float(values[n][0]), cls, names[cls])}"
                                  for n in ("thickness", "slant", "width", "height", "area", "length")))
        st.caption(_("Measured on the 28×28 input as in {source} (4× upsampling, threshold 0.5); compared with the test "
                     "images of class {cls} ({why}) among the {n:,} MNIST test images' stored measurements, their count "
                     "in brackets (units: px, px² for area, rad for slant, positive when the top leans right).").format(
            source=_(SOURCE), cls=names[cls], why=why, n=len(measured["thickness"])))
    with right:
        picture = st.container()  # the images above their sliders: in view on a phone while a slider moves
        moved = attribute_sliders(sel, "rec_attr")
        y = cls if sel.label_decoder else None
        base = decode_images(sel.model, mu.reshape(1, -1).float(), y).cpu()
        after = decode_images(sel.model, moved.apply(mu.float()).reshape(1, -1), y).cpu()
        moved.show_measured(base, after)
        pair = tile(torch.cat([base, after]), nrow=2, padding=2, scale=4)
        caption = (_("its reconstruction, and decoded from its code moved as asked: {asked}").format(asked=moved.asked)
                   if moved.asked else _("its reconstruction, and decoded from its code moved as asked (no change asked yet)"))
        if y is not None:
            caption = _("{caption}; decoded with y = {y}").format(caption=caption, y=names[y])
        picture.image(pair, width=pair.shape[1], output_format="PNG", caption=caption)


# --------------------------------------------------------------------------------------- the heat map


def heatmap(rep: dict, height: int | None = None) -> go.Figure:
    """The dimension report as two heat maps sharing the rows (one per latent dimension): |Spearman rho|
    with each measurement (0 to 1), and the mutual information with the class (nats, 0 to log 10)."""
    names, d = rep["measurements"], len(rep["spearman_abs"])
    rows = [f"z[{j}]" for j in range(d)]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, column_widths=[0.8, 0.2], horizontal_spacing=0.03)
    signed = np.asarray(rep["spearman"])
    fig.add_trace(go.Heatmap(
        z=rep["spearman_abs"], x=[measurement_name(n) for n in names], y=rows, zmin=0, zmax=1, colorscale="Blues", name="|rho|",
        text=np.round(rep["spearman_abs"], 2).tolist(), texttemplate="%{text:.2f}", customdata=signed.tolist(),
        hovertemplate=_("%{y} and %{x}: |ρ| %{z:.2f} (ρ %{customdata:+.2f})") + "<extra></extra>",
        colorbar=dict(title="|ρ|", x=1.0, len=0.45, y=0.75, thickness=10)), row=1, col=1)
    mi = [[v] for v in rep["class_mi_nats"]]  # (D, 1), as lists: the chart's data stays readable JSON
    fig.add_trace(go.Heatmap(
        z=mi, x=[measurement_name("class")], y=rows, zmin=0, zmax=float(np.log(10)), colorscale="Oranges", name="MI",
        text=np.round(mi, 2).tolist(), texttemplate="%{text:.2f}",
        hovertemplate=_("%{y}: I(z; class) %{z:.2f} nats") + "<extra></extra>",
        colorbar=dict(title=_("nats"), x=1.0, len=0.45, y=0.22, thickness=10)), row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    fig.update_layout(height=height or max(280, 130 + 24 * d), dragmode=False, margin=dict(l=0, r=0, t=10, b=0),
                      font=dict(size=12))
    # The column names on top, where a tall map (20 dimensions) shows them without scrolling.
    fig.update_xaxes(side="top", tickangle=-45)
    fig.update_xaxes(title_text=_("|Spearman ρ| with"), title_standoff=4, row=1, col=1)
    fig.update_xaxes(title_text=_("MI, nats"), title_standoff=4, row=1, col=2)
    return fig
