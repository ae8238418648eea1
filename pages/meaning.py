"""What the dimensions mean: each latent dimension against Morpho-MNIST's measurements and the class (a
heat map), the model's disentanglement and attribute-traversal scores, and the beta sweep's trade-off."""

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from ui import meaning
from ui.charts import CLASS_COLORS
from ui.i18n import N_, _, error_message
from ui.models import Selection, shipped_metrics, shipped_models, test_metrics
from vae.attributes import GOAL_OTHERS, MIN_LABEL_RHO, TRAVERSED
from vae.morphometry import MeasurementsNotFoundError

SWEEP = [("mnist-vae-10d-beta1", 1), ("mnist-vae-10d-beta2", 2), ("mnist-vae-10d-beta4", 4), ("mnist-vae-10d-beta8", 8)]
SCORES = {  # what each score means, in one sentence (shown translated: _(SCORES[name]))
    "MIG": N_("Mutual information gap (Chen et al. 2018): for each factor, the gap between the two dimensions that "
              "know most about it, over the factor's entropy; 1 when each factor lives in one dimension alone."),
    "SAP": N_("Separated attribute predictability (Kumar et al. 2018): for each factor, how much better the best single "
              "dimension predicts it than the second best; high when one dimension suffices."),
    "DCI D": N_("DCI disentanglement (Eastwood & Williams 2018): how much each dimension is used for one factor only, "
                "from a random forest's feature importances; 1 when every dimension serves one factor."),
    "DCI C": N_("DCI completeness: how much each factor is captured by one dimension only; 1 when no factor is spread "
                "over several dimensions."),
    "DCI I": N_("DCI informativeness: how well the forests predict the factors from the code on held-out images "
                "(accuracy for the class, R² for the measurements); 1 is perfect."),
}
# metrics.json's words for the codes scored ("codes" of "disentanglement", vae.attributes), translated where shown.
CODES = (N_("encoder means mu(x) of the MNIST test split"), N_("encoder means mu(x, y) of the MNIST test split"),
         N_("codes z = f(x) of the MNIST test split (plain AE)"), N_("encoder means"))


def render(sel: Selection) -> None:
    st.title(_("What the dimensions mean"))
    st.markdown(_(
        "Which property of a digit does each latent dimension follow? Each dimension of the encoder's mean μ(x) "
        "is compared, over the MNIST test split, with Morpho-MNIST's measurements of the same images "
        "({source}: stroke thickness, slant, width, height, area, length) by |Spearman ρ| (rank "
        "correlation: 1 when the measurement rises or falls monotonically with z_j), and with the class by "
        "mutual information. The sliders page names the measurement a slider tracks, and moves z along "
        "thickness, slant, width and height.").format(source=_(meaning.SOURCE)))
    if not meaning.digits(sel):
        st.info(_(meaning.FOR_DIGITS).format(data=sel.dataset_title))
    else:
        try:
            per_model(sel)
        except MeasurementsNotFoundError as err:
            st.error(error_message(err))
    sweep()


def per_model(sel: Selection) -> None:
    rep = meaning.report(sel)
    d, n = len(rep["top"]), rep["n_images"]
    st.subheader(_("{model}: each dimension against each measurement").format(model=sel.name))
    codes = (_("codes z = f(x) (a plain autoencoder)") if not sel.model.variational else
             _("encoder means μ(x, y), each test image with its own label") if sel.conditional else _("encoder means μ(x)"))
    left, right = st.columns([3, 2], gap="large")
    left.plotly_chart(meaning.heatmap(rep), key="meaning_heatmap", config={"displayModeBar": False})
    left.caption(_("Rows: the {d} latent dimensions ({codes}). Left: |Spearman ρ| with each measurement; right: "
                   "plug-in mutual information I(z_j; class) on 20 equal-width bins of z_j, in nats (at most "
                   "log 10 = 2.30). Over {data}. Hover a cell for ρ's sign.").format(
        d=d, codes=codes, data=meaning.data_line(n)))
    with right:
        labelled = list(enumerate(meaning.slider_labels(sel)))
        named = [_("- **z[{j}]**: {label}").format(j=j, label=lab) for j, lab in labelled if lab]
        st.markdown(_("**What a slider tracks most**") + "  \n" + (
            "\n".join(named) if named else
            _("No dimension tracks one measurement with |ρ| ≥ {rho}.").format(rho=MIN_LABEL_RHO)))
        st.caption(_("A dimension is named when |ρ| ≥ {rho} (the ranks then share a quarter of their "
                     "variance); a negative ρ: the measurement falls as z_j grows. The sliders page and the manifold's "
                     "axes use the same names.").format(rho=MIN_LABEL_RHO))
        with st.expander(_("The measurements and their units")):
            st.markdown(meaning.units_table())
            st.caption(_("{source}: measured after 4× upsampling and a threshold at half the intensity "
                         "range, in pixels of the 28×28 image; computed once for the test split "
                         "(`python -m vae.morphometry`) and shipped.").format(source=_(meaning.SOURCE)))
    scores(sel)


def scores(sel: Selection) -> None:
    st.subheader(_("Disentanglement scores"))
    shipped = sel.name in shipped_models() and sel.folder == shipped_models()[sel.name]
    dis, tr = sel.metrics.get("disentanglement"), sel.metrics.get("attribute_traversal")
    how = (_("`python -m vae.attributes pretrained/NAME --write` has not scored this model yet") if shipped else
           _("a model trained in the app is not scored here (the scores fit forests and decode thousands of images, a "
             "minute of CPU); its dimension report above and its attribute directions are computed from its test "
             "encodings, so no traversal score is needed for its sliders to work"))
    if not dis:
        st.info(_("No disentanglement scores: {how}.").format(how=how))
    else:
        p = dis["protocol"]
        values = {"MIG": (dis.get("mig") or {}).get("score"), "SAP": (dis.get("sap") or {}).get("score"),
                  "DCI D": dis["dci"]["disentanglement"], "DCI C": dis["dci"]["completeness"],
                  "DCI I": dis["dci"]["informativeness"]}
        row = st.container(horizontal=True, gap="large")  # five in a row; wrapped, not stacked, on a phone
        for name, v in values.items():
            row.metric(name, _("n/a") if v is None else f"{v:.2f}", help=_(SCORES[name]), width="content")
        st.markdown("\n".join(_("- **{name}**: {text}").format(name=k, text=_(v)) for k, v in SCORES.items()))
        st.caption(_("Against the factors {factors} on {n:,} MNIST test images ({codes}); measurements from {source}; "
                     "from metrics.json (`python -m vae.attributes`). 0 to 1, higher is more disentangled.").format(
            factors=_(", ").join(meaning.measurement_name(f) for f in p["factors"]), n=p["n_images"],
            codes=_(dis.get("codes", CODES[-1])), source=_(meaning.SOURCE)))
    st.subheader(_("Attribute traversal"))
    if not tr:
        st.info(_("No traversal score: {how}.").format(how=how))
        return
    rows = []
    for name, e in tr["per_attribute"].items():
        others = {k: v for k, v in e["other_abs_rho"].items() if k in GOAL_OTHERS}
        worst = max(others, key=others.get)
        rows.append({_("attribute"): meaning.measurement_name(name), _("median ρ"): f"{e['rho']:.2f}",
                     _("class kept"): None if e.get("class_kept") is None else f"{e['class_kept']:.0%}",
                     _("other factors, max |ρ|"): _("{value:.2f} ({name})").format(value=others[worst], name=meaning.measurement_name(worst)),
                     _("measured / asked"): f"{e['calibration']:.2f}"})
    st.dataframe(rows, hide_index=True, width="stretch")
    p = tr["protocol"]
    goal = tr.get("goal") or {}
    met = (_(" Issue 26's goal (ρ ≥ 0.9 for thickness and slant, class kept ≥ 90%, others ≤ 0.3): met.") if goal.get("met")
           else _(" Issue 26's goal (ρ ≥ 0.9 for thickness and slant, class kept ≥ 90%, others ≤ 0.3): not met."))
    st.caption(_("{n_codes} test codes moved along each direction from −2 to +2 standard deviations of the "
                 "measurement in {n_steps} steps, decoded and measured again ({source}): the median "
                 "Spearman ρ between the step and the measured value (1: it grows all the way), the share of decodes a "
                 "pixel classifier still reads as the digit's class, the largest median |ρ| of the other traversed "
                 "factors (thickness, slant, width, height), and the measured change over the asked one.").format(
        n_codes=p["n_codes"], n_steps=p["n_steps"], source=_(meaning.SOURCE)) + (met if goal else ""))


def sweep_metrics() -> tuple[list[tuple[int, str, dict]], list[str]]:
    """([(beta, name, metrics.json)] of the beta sweep's models that have a test -ELBO, [missing names])."""
    found, missing, shipped = [], [], shipped_metrics()
    for name, beta in SWEEP:
        m = shipped.get(name, {})
        if "neg_elbo" in test_metrics(m):
            found.append((beta, name, m))
        else:
            missing.append(name)
    return found, missing


def sweep_figure(found: list[tuple[int, str, dict]]) -> go.Figure:
    """-ELBO (y) against MIG and against each attribute's median traversal rho (x), one point per beta."""
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=(_("against MIG"), _("against the traversal ρ")))
    with_mig = [(b, m) for b, _name, m in found if (m.get("disentanglement") or {}).get("mig")]
    fig.add_trace(go.Scatter(
        x=[m["disentanglement"]["mig"]["score"] for _beta, m in with_mig], y=[test_metrics(m)["neg_elbo"] for _beta, m in with_mig],
        text=[f"β={b}" for b, _m in with_mig], mode="lines+markers+text", textposition="top center", name="MIG",
        marker=dict(size=10, color="black"), line=dict(color="black", width=1),
        hovertemplate=_("%{text}: MIG %{x:.3f}, -ELBO %{y:.1f} nats") + "<extra></extra>"), row=1, col=1)
    with_tr = [(b, m) for b, _name, m in found if m.get("attribute_traversal")]
    for i, name in enumerate(TRAVERSED):
        pts = [(b, m["attribute_traversal"]["per_attribute"][name]["rho"], test_metrics(m)["neg_elbo"])
               for b, m in with_tr if name in m["attribute_traversal"]["per_attribute"]]
        fig.add_trace(go.Scatter(
            x=[p[1] for p in pts], y=[p[2] for p in pts], text=[f"β={p[0]}" for p in pts], mode="lines+markers",
            name=meaning.measurement_name(name), marker=dict(size=9, color=CLASS_COLORS[i]),
            line=dict(color=CLASS_COLORS[i], width=1),
            hovertemplate=_("{text}: {name} ρ {x}, -ELBO {y} nats").format(
                text="%{text}", name=meaning.measurement_name(name), x="%{x:.2f}", y="%{y:.1f}") + "<extra></extra>"),
            row=1, col=2)
    fig.update_yaxes(title_text=_("test −ELBO (nats)"), row=1, col=1)
    fig.update_xaxes(title_text="MIG", rangemode="tozero", row=1, col=1)
    fig.update_xaxes(title_text=_("median traversal ρ"), row=1, col=2)
    fig.update_layout(height=360, dragmode=False, margin=dict(l=0, r=0, t=40, b=0), font=dict(size=12),
                      legend=dict(orientation="h", y=-0.25, x=0))
    fig.update_annotations(font_size=12)
    return fig


def sweep() -> None:
    st.subheader(_("The β sweep: fit against disentanglement"))
    found, missing = sweep_metrics()
    st.markdown(_("β-VAE (Higgins et al. 2017) weighs the KL term by β: a larger β presses q(z|x) towards the prior, "
                  "which may separate the factors (a higher MIG, cleaner traversals) at the cost of a worse fit "
                  "(a higher −ELBO). Four 10-d VAEs, trained alike but for β (`pretrained/train.sh`)."))
    if found:
        st.plotly_chart(sweep_figure(found), key="meaning_sweep", config={"displayModeBar": False})
        unscored = [name for _beta, name, m in found if not m.get("disentanglement") or not m.get("attribute_traversal")]
        st.caption(_("Test −ELBO in nats per image (MNIST test split, 10,000 grey-level images scored as Bernoulli "
                     "targets; for β ≠ 1 the ELBO itself, not the loss trained on). MIG and the traversal ρ as above "
                     "(metrics.json).")
                   + (_(" Not scored yet by `python -m vae.attributes`: {names} (shown by its −ELBO only where a score "
                        "exists).").format(names=_(", ").join(unscored)) if unscored else ""))
    if missing:
        st.info(_("Still missing (being trained, or not trained yet): {names}.").format(names=_(", ").join(missing)))


if __name__ == "__main__":
    import app

    app.run_page(render)
