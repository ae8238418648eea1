"""The latent space's health on the pages (issue 27): where the aggregate posterior q(z) lives against
the prior p(z), its holes, and whether an input is out of distribution. The numbers come from
``vae.health`` and ``vae.ood``; this module caches them per model and draws them."""

from __future__ import annotations

import math
import re

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image, ImageDraw

from vae.data import DATASET_NAMES
from vae.health import HOLE_THRESHOLD, PRIOR_LEVEL, hole_share, is_hole, log_density_ratio, prior_radius
from vae.ood import CHOSEN, COMBINED, combined, is_out_of_distribution, ood_scores, percentile

from .i18n import N_, _
from .models import Selection, shipped_metrics, test_encodings, weights_mtime

THRESHOLDS = (0.01, 0.03, 0.1, 0.3, 1.0)  # q(z)/p(z) below which a point of the prior's region is a hole
HOLE_RED = (230, 40, 40)
SOURCE = N_("Hoffman & Johnson (2016), ELBO surgery")  # shown translated: _(SOURCE)
OOD_SOURCE = N_("Serrà et al. (2020), Sec. 3")
# ood_section's headline for each kind of input ("upload", "drawing", "test image": the callers' values).
OUT_OF_DISTRIBUTION = {"upload": N_("This upload is out of distribution for {model}"),
                       "drawing": N_("This drawing is out of distribution for {model}"),
                       "test image": N_("This test image is out of distribution for {model}")}


def has_standard_prior(sel: Selection) -> bool:
    """A q(z|x) and the prior N(0, I): a VAE, IWAE or CVAE (not an autoencoder or the class-prior VAE)."""
    return bool(sel.model.variational) and not sel.class_prior


# ---------------------------------------------------------------- the aggregate posterior and its holes


@st.cache_data(show_spinner=False, max_entries=32)
def _ratio(folder: str, version: float, dims: tuple[int, int], points: bytes, _sel: Selection) -> np.ndarray:
    mu, logvar = test_encodings(_sel)
    z = torch.frombuffer(bytearray(points), dtype=torch.float64).view(-1, 2)
    return log_density_ratio(z, mu, logvar, list(dims)).numpy()


def log_ratio(sel: Selection, z: torch.Tensor, dims: tuple[int, int]) -> np.ndarray:
    """log q(z) - log p(z) at the points z (M, 2) of the plane of ``dims``, float64 (M,), q the mixture
    of the test encodings' posteriors (their two-dimensional marginal when d > 2); cached per model."""
    return _ratio(sel.folder, weights_mtime(sel.folder), tuple(dims), z.double().contiguous().numpy().tobytes(), sel)


@st.cache_data(show_spinner=False, max_entries=32)
def _share(folder: str, version: float, dims: tuple[int, int], threshold: float, _sel: Selection):
    mu, logvar = test_encodings(_sel)
    return hole_share(mu, logvar, list(dims), threshold)


def holes_share(sel: Selection, dims: tuple[int, int], threshold: float):
    """``vae.health.hole_share`` over the test encodings at hand, cached per model, plane and threshold."""
    with st.spinner(_("Counting the holes...")):
        return _share(sel.folder, weights_mtime(sel.folder), tuple(dims), float(threshold), sel)


def threshold_picker(key: str, container=st) -> float:
    return container.select_slider(
        _("Hole threshold q(z) / p(z)"), THRESHOLDS, value=HOLE_THRESHOLD, key=key,
        help=_("Where the encoder puts less than this fraction of the prior's density, inside the prior's "
               "central 95% region, the plane is marked as a hole: the prior draws z there, but no image is encoded there."))


def mark_holes(picture: np.ndarray, holes: np.ndarray, cell: float, outline: list[tuple[float, float] | None] | None) -> np.ndarray:
    """The tiled grid with each hole cell (``holes`` bool (n, n), row 0 at the top) framed in red and
    lightly tinted; ``outline``: the prior's central region as pixel points (x, y), None where it leaves
    the picture, drawn dashed in yellow."""
    image = Image.fromarray(picture).convert("RGB")
    mask = Image.new("L", image.size, 0)
    cells = [(c * cell, r * cell, (c + 1) * cell - 1, (r + 1) * cell - 1) for r, c in zip(*np.nonzero(holes))]
    for box in cells:
        ImageDraw.Draw(mask).rectangle(box, fill=70)
    image = Image.composite(Image.new("RGB", image.size, HOLE_RED), image, mask)
    draw = ImageDraw.Draw(image)
    for box in cells:
        draw.rectangle(box, outline=HOLE_RED, width=max(1, int(cell // 14)))
    if outline:
        for a, b in list(zip(outline, outline[1:]))[::2]:  # every other segment: dashed
            if a is not None and b is not None:
                draw.line([a, b], fill=(255, 210, 0), width=2)
    return np.asarray(image)


def hole_caption(sel: Selection, dims: tuple[int, int], threshold: float, cells: tuple[int, int] | None = None) -> str:
    """The holes in words: what they are, ``cells`` = (hole cells, all cells) of a grid if given, and the
    share of the prior's mass in them with its standard error."""
    share = holes_share(sel, dims, threshold)
    d = sel.model.latent_dim
    pooled = (_(" For this CVAE, q(z) pools the posteriors of every class, while the grid decodes the class picked: "
                "a region a single class's codes leave empty need not show as a hole.") if sel.label_decoder else "")
    plane = "" if d == 2 else _(
        " This is the plane of z[{a}] and z[{b}] alone: q(z) there is the two-dimensional marginal of the "
        "{d}-dimensional aggregate posterior, and a hole in it is a hole in those two coordinates, whatever the "
        "others are.").format(a=dims[0], b=dims[1], d=d)
    hole = (_("A hole: where q(z) / p(z) < {threshold:g} inside the prior's central {level:.0%} region (dashed circle). "
              "q(z) is the mixture of the posteriors q(z|x) of {n:,} test images ({source}). Prior mass in holes: {mass}.")
            if cells is None else
            _("A hole: where q(z) / p(z) < {threshold:g} inside the prior's central {level:.0%} region (dashed circle): "
              "{holes} of {cells} cells. q(z) is the mixture of the posteriors q(z|x) of {n:,} test images ({source}). "
              "Prior mass in holes: {mass}."))
    return hole.format(threshold=threshold, level=PRIOR_LEVEL, holes=cells and cells[0], cells=cells and cells[1],
                       n=share.n_posteriors, source=_(SOURCE), mass=mass(share)) + plane + pooled


def mass(share) -> str:
    """A HoleShare in words: the share ± its standard error, or, when no draw fell in a hole, the rule of
    three's 95% upper bound 3 / n."""
    if share.share == 0:
        return _("none of {n:,} draws from the prior fell in a hole (below {bound:.2%} at 95% confidence)").format(
            n=share.n_draws, bound=3 / share.n_draws)
    return _("{share:.1%} ± {se:.1%} (Monte Carlo, {n:,} draws from the prior, ± one standard error)").format(
        share=share.share, se=share.se, n=share.n_draws)


def grid_holes(sel: Selection, coords: torch.Tensor, dims: tuple[int, int], centre: tuple[float, float],
               threshold: float) -> np.ndarray:
    """Which of the n x n cell centres of a manifold grid (``coords`` (n,) relative to ``centre``) are
    holes: bool (n, n) with row 0 at the top, as ``vae.latent.manifold_grid`` tiles them."""
    n = coords.shape[0]
    rows, cols = torch.meshgrid(coords.flip(0).double() + centre[1], coords.double() + centre[0], indexing="ij")
    z = torch.stack([cols.reshape(-1), rows.reshape(-1)], 1)
    return is_hole(z, torch.from_numpy(log_ratio(sel, z, dims)), threshold).numpy().reshape(n, n)


def _pad_mesh(sel: Selection, lo: list[float], hi: list[float], steps: int = 61):
    """(xs, ys, log q(z)/p(z) (steps, steps)) over the box [lo, hi] of a 2-d model's plane."""
    xs, ys = np.linspace(lo[0], hi[0], steps), np.linspace(lo[1], hi[1], steps)
    gx, gy = np.meshgrid(xs, ys)
    value = log_ratio(sel, torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1)), (0, 1)).reshape(steps, steps)
    return xs, ys, value


def density_layer(fig, sel: Selection, lo: list[float], hi: list[float], threshold: float) -> None:
    """Under the traces of a latent-pad figure: a Plotly contour of log10 q(z)/p(z) over the box [lo, hi]
    (blue where the encoder puts more mass than the prior, red where less), the prior's 95% circle, and
    the line q(z)/p(z) = threshold inside it, around the holes; the figure's own traces stay on top."""
    xs, ys, value = _pad_mesh(sel, lo, hi)
    above = fig.data
    fig.data = ()
    fig.add_trace(go.Contour(x=xs, y=ys, z=(value / math.log(10)).clip(-3, 3), zmin=-3, zmax=3, colorscale="RdBu",
                             opacity=0.45, ncontours=12, contours=dict(coloring="heatmap", showlines=False),
                             name="log10 q(z)/p(z)", showscale=False,  # the caption says the colours: no bar to crowd a phone
                             hovertemplate="z = (%{x:.2f}, %{y:.2f}): log10 q(z)/p(z) = %{z:.2f}<extra></extra>"))
    r = prior_radius(2)
    t = np.linspace(0, 2 * np.pi, 120)
    fig.add_trace(go.Scatter(x=r * np.cos(t), y=r * np.sin(t), mode="lines",
                             name=_("prior's {level:.0%} region").format(level=PRIOR_LEVEL),
                             line=dict(color="#b58900", dash="dash", width=1.5), hoverinfo="name", showlegend=False))
    gx, gy = np.meshgrid(xs, ys)
    inside = np.where(gx**2 + gy**2 <= r * r, value, np.nan)  # a hole is inside the prior's region only
    fig.add_trace(go.Contour(x=xs, y=ys, z=inside, showscale=False, name=_("hole: q/p < {threshold:g}").format(threshold=threshold),
                             contours=dict(start=math.log(threshold), end=math.log(threshold), size=1, coloring="none"),
                             line=dict(color="rgb(230,40,40)", width=2.5), hoverinfo="skip", showlegend=False))
    fig.add_traces(list(above))


# ---------------------------------------------------------------- out of distribution


@st.cache_data(show_spinner=False, max_entries=64)
def _ood(folder: str, version: float, pixels: bytes, _sel: Selection) -> dict[str, float]:
    x = torch.frombuffer(bytearray(pixels), dtype=torch.float32).view(1, 1, 28, 28)
    device = next(_sel.model.parameters()).device
    s = ood_scores(_sel.model, x.to(device), _sel.config["likelihood"], _sel.config["sigma"])
    return {k: float(v[0]) for k, v in s.items()}


def ood_verdict(sel: Selection, x: torch.Tensor, framed: bool = True) -> dict | None:
    """The out-of-distribution scores of one image x (1, 1, 28, 28) and where they fall among the test
    split's ("ood" in metrics.json; ``framed``: among the test images framed as uploads are, for an
    upload or a drawing): {"scores": {name: value}, "percentiles": {name: 0-100}, "out": bool by the
    chosen score, "chosen", "fits": the fitted scores used}; None for a model without fitted thresholds."""
    fitted = sel.metrics.get("ood")
    if not fitted:
        return None
    framed = framed and "framed" in fitted
    fits = fitted["framed" if framed else "scores"]
    scores = _ood(sel.folder, weights_mtime(sel.folder), x.float().contiguous().numpy().tobytes(), sel)
    chosen = fitted.get("chosen", CHOSEN)
    if COMBINED in fits:
        scores = {**scores, COMBINED: combined(scores, fits)}
    return {"scores": scores, "chosen": chosen, "fits": fits, "framed": framed,
            "percentiles": {k: percentile(scores[k], f) for k, f in fits.items()},
            "out": is_out_of_distribution(scores[chosen], fits[chosen])}


def ood_section(sel: Selection, x: torch.Tensor, what: str = "upload", container=st) -> dict | None:
    """The verdict on one input, in words: its chosen score's percentile among the test images, and an
    st.warning when it is above the threshold (a share ``fpr`` of test images are). ``what``: "upload",
    "drawing" (both judged against the test images framed as uploads are) or "test image". Returns the verdict."""
    if not sel.builtin:
        container.caption(_("The out-of-distribution check is fitted for the MNIST and Fashion-MNIST models only: its "
                            "complexity score reads grey images of one object on a dark background."))
        return None
    v = ood_verdict(sel, x, framed=what != "test image")
    if v is None:
        container.caption(_("No out-of-distribution threshold was fitted for this model "
                            "(`python -m vae.ood {folder} --write` fits one on its test split).").format(folder=sel.folder))
        return None
    chosen, p = v["chosen"], v["percentiles"]
    f = v["fits"][chosen]
    items = _("handwritten digits") if sel.config["dataset"] == "mnist" else _("Fashion-MNIST's clothes and shoes")
    code = "−ELBO" if sel.model.variational else _("reconstruction term (an autoencoder has no ELBO)")
    if chosen == COMBINED:
        line = (_("Its {code} ({elbo:.0f} nats) is above {p_elbo:.0f}% of the {n:,} test images, framed as uploads are, "
                  "and its complexity-corrected score ({source}: {complexity:.0f} bits) above {p_complexity:.0f}% of "
                  "them; the test flags an input when the larger of the two is above {threshold:.1f}%, which leaves "
                  "{fpr:.0%} of the test images above it.") if v["framed"] else
                _("Its {code} ({elbo:.0f} nats) is above {p_elbo:.0f}% of the {n:,} test images, and its "
                  "complexity-corrected score ({source}: {complexity:.0f} bits) above {p_complexity:.0f}% of them; the "
                  "test flags an input when the larger of the two is above {threshold:.1f}%, which leaves {fpr:.0%} of "
                  "the test images above it.")).format(
            code=code, elbo=v["scores"]["neg_elbo"], p_elbo=p["neg_elbo"], n=f["n"], source=_(OOD_SOURCE),
            complexity=v["scores"]["complexity_corrected"], p_complexity=p["complexity_corrected"],
            threshold=100 * f["threshold"], fpr=f["fpr"])
    else:
        words = {"neg_elbo": code, "complexity_corrected": _("complexity-corrected score ({source})").format(
            source=_(OOD_SOURCE))}.get(chosen, chosen)
        line = (_("Its {score} ({value:.0f}) is above {p:.0f}% of the {n:,} test images, framed as uploads are; the "
                  "threshold, {threshold:.0f}, leaves {fpr:.0%} of them above it.") if v["framed"] else
                _("Its {score} ({value:.0f}) is above {p:.0f}% of the {n:,} test images; the threshold, {threshold:.0f}, "
                  "leaves {fpr:.0%} of them above it.")).format(
            score=words, value=v["scores"][chosen], p=p[chosen], n=f["n"], threshold=f["threshold"], fpr=f["fpr"])
    if v["out"]:
        headline = _(OUT_OF_DISTRIBUTION[what]) if what in OUT_OF_DISTRIBUTION else f"This {what} is out of distribution for {{model}}"
        container.warning(_(
            "**{headline}**: it is unlike the {items} the model was trained on. The model still encodes it somewhere "
            "and decodes something that looks like its training data, so its reconstruction, its place in the latent "
            "space and its scores say little about this input: do not trust them.").format(
            headline=headline.format(model=sel.name), items=items), icon=":material/report:")
        container.caption(line)
    else:
        container.caption(_("In distribution by this test. {line}").format(line=line))
    return v


# ---------------------------------------------------------------- the ELBO's surgery


def shipped_surgeries() -> dict[str, dict]:
    """Name -> "elbo_surgery" of every shipped model that has one (``models.shipped_metrics``)."""
    return {name: m["elbo_surgery"] for name, m in shipped_metrics().items() if m.get("elbo_surgery")}


def surgery_data(data: str) -> str:
    """metrics.json's "mnist test split, all 10,000 images" (``vae.health``) in this run's language."""
    m = re.fullmatch(r"(\S+) test split, all ([\d,]+) images", data)
    return _("{dataset} test split, all {n} images").format(dataset=DATASET_NAMES.get(m[1], m[1]), n=m[2]) if m else data


def surgery_section(sel: Selection) -> None:
    """The Theory page's last part: the average KL split into the index-code mutual information and the
    marginal KL, for the model picked and for every shipped model (metrics.json, ``vae.health``)."""
    st.subheader(_("The average KL, carved up: ELBO surgery"))
    st.latex(r"\begin{aligned}&\frac{1}{N}\sum_{n=1}^{N}\mathrm{KL}\big(q(z|x_n)\,\|\,p(z)\big)\\"  # short lines: a phone
             r"&\quad= \underbrace{I_q(n; z)}_{\le\,\log N} + \underbrace{\mathrm{KL}\big(q(z)\,\|\,p(z)\big)}_{\text{" + _("the prior's mismatch") + r"}},\\"
             r"&q(z) = \frac{1}{N}\sum_{n=1}^{N} q(z|x_n)\end{aligned}")
    st.caption(_("{source}: the KL term of the ELBO, averaged over the data, is the information the code keeps "
                 "about which image it came from, plus how far the aggregate posterior q(z) is from the prior. "
                 "A prior equal to q(z) would remove the second and keep the first; where the second is large, the prior "
                 "draws codes where no image lives (the holes on the Latent manifold). `vae.health.elbo_surgery` estimates "
                 "both.").format(source=_(SOURCE)))
    s = sel.metrics.get("elbo_surgery")
    if not s:
        st.caption((_("Not measured for {model} (`python -m vae.health {folder} --write`; it needs the prior N(0, I), "
                      "which a class-prior model does not have).") if sel.class_prior else
                    _("Not measured for {model} (`python -m vae.health {folder} --write`).")).format(
            model=sel.name, folder=sel.folder))
    else:
        m = st.columns(3)
        m[0].metric(_("Average KL"), f"{s['avg_kl']:.2f} nats", help=_("Closed form, over the test split."))
        m[1].metric("I_q(n; z)", f"{s['mutual_information']:.2f} nats", help=_(
            "± {se:.3f} (Monte Carlo standard error); at most log N = {log_n:.2f} for N = {n:,} images.").format(
            se=s["mutual_information_se"], log_n=s["log_n"], n=s["n"]))
        m[2].metric("KL(q(z) ‖ p(z))", f"{s['marginal_kl']:.2f} nats",
                    help=_("± {se:.3f} (Monte Carlo standard error).").format(se=s["marginal_kl_se"]))
        st.caption(_("{model}, {data}: {draws} draws z ~ q(z|x_n) per image, log q(z) as the log-mean-exp over all {n:,} "
                     "posteriors. The two parts add up to {mc:.2f} ± {se:.3f} nats, the closed-form average KL {kl:.2f} "
                     "within Monte Carlo error.").format(
            model=sel.name, data=surgery_data(s["data"]), draws=s["draws"], n=s["n"], mc=s["avg_kl_mc"],
            se=s["avg_kl_mc_se"], kl=s["avg_kl"]))
    rows = shipped_surgeries()
    if rows:
        names = sorted(rows, key=lambda k: rows[k]["avg_kl"])
        fig = go.Figure([
            go.Bar(y=names, x=[rows[k]["mutual_information"] for k in names], orientation="h", name="I_q(n; z)",
                   marker_color="#4c78a8", hovertemplate=_("%{y}: I = %{x:.2f} nats") + "<extra></extra>"),
            go.Bar(y=names, x=[rows[k]["marginal_kl"] for k in names], orientation="h", name="KL(q(z) ‖ p(z))",
                   marker_color="#e45756", hovertemplate=_("%{y}: marginal KL = %{x:.2f} nats") + "<extra></extra>")])
        log_n = next(iter(rows.values()))["log_n"]
        fig.add_vline(x=log_n, line_dash="dot", line_color="gray", annotation_text=f"log N = {log_n:.2f}",
                      annotation_position="top")
        fig.update_layout(barmode="stack", height=60 + 26 * len(names), dragmode=False, xaxis_title=_("nats"),
                          margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25),
                          yaxis=dict(tickfont=dict(size=12)))
        st.plotly_chart(fig, key="theory_surgery", config={"displayModeBar": False})
        st.caption(_("Every shipped model with the prior N(0, I), over its test split: the mutual information stops near "
                     "log N, and what more KL a larger latent space spends goes to the prior's mismatch (the paper's "
                     "finding on binarized MNIST). README, \"Is the latent space healthy?\", has the table and the "
                     "paper's numbers."))
