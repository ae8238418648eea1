"""Embeddings: a t-SNE, UMAP or PCA map of the encoder's means (an autoencoder's codes) for test images;
hover or tap, select, compare."""

import os
import threading
import time
from dataclasses import dataclass

import streamlit as st
import torch

from ui import health, policy, state
from ui.charts import FEW, map_chart
from ui.i18n import N_, _, say
from ui.images import kept_upload, png_data_urls, show_image, thumbnails_url, upload_image
from ui.maps import new_map
from ui.models import Selection, test_encodings, weights_mtime
from vae.embeddings import (METHODS, PERPLEXITY, STORED, UMAP_PARAMS, Embedding, EmbeddingError, Placer, choose_map,
                            compute_embedding, default_n, embedding_csv, embedding_file, load_embedding,
                            match_positions, perplexity_bounds, points_in_rect, positions_of, restrict,
                            sample_indices, sample_path, umap_neighbours, weights_sha256)
from vae.errors import Message
from vae.evaluate import per_image
from vae.latent import decode_images, encode_images, tile
from vae.map_jobs import MapKey

MAX_SHOWN = FEW  # selected images shown with their reconstructions, a page of them at a time
# each image's ELBO parts, to colour by (the CSV's column names, in English; shown translated)
PARTS = {"neg_elbo": N_("-ELBO"), "recon": N_("reconstruction"), "kl": N_("KL")}
CHARTS = ("map", "plane")  # the method's map, and a 2-d model's raw latent plane
S = state.PageState("embeddings", [
    state.Setting("method", str, "tsne", options=tuple(METHODS)), state.Setting("perplexity", int, 30, 5, 100),
    state.Setting("seed", int, 0, 0, 10_000), state.Setting("colour", str, "class", options=("class", *PARTS)),
    state.Setting("box", bool, False), state.Setting("k", int, 8, 4, 24), state.Setting("k_upload", int, 8, 4, 24),
])
SEEN = "embeddings-seen"  # session state: chart key -> the selection it reported last
GENERATION = "embeddings-generation"  # session state: bumped by "Clear selection", so the charts start afresh


def model_state(name: str) -> state.PageState:
    """The page's settings that belong to model ``name``: N (its default depends on the model's stored
    maps), the perplexity of a model with fewer than 301 test images (its range depends on them), and the
    selection, kept as test indices ("picked", from clicks and taps) or as a rectangle
    ("rect": x0, x1, y0, y1, from Box select) on one chart ("on"), and the page of selected images shown."""
    return state.PageState("embeddings", [
        state.Setting("n", int, 2000, 2), state.Setting("perplexity", int, 30, 5, 100),  # a small map's (below 301)
        state.Setting("picked", int, (), 0, many=True),
        state.Setting("rect", float, None, many=True, length=4),
        state.Setting("on", str, "map", options=CHARTS, unknown=N_("a chart this model does not have")),
        state.Setting("page", int, 1, 1),
    ], scope=name)


@dataclass(frozen=True)
class Words:
    """How the page names a model's encodings: a VAE's means of q(z|x), a plain autoencoder's codes."""

    codes: str  # "means" or "codes" (which of the page's sentences to say, not shown as it is)
    z: str  # the encoding of x: "mu(x)" or "f(x)"
    plane: str  # the latent plane's caption: what it is, and of the prior (in this run's language)

    @staticmethod
    def of(sel: Selection) -> "Words":
        if not sel.model.variational:
            return Words("codes", "f(x)", _("The raw latent plane: the codes z = f(x) themselves, no projection. A "
                                            "plain autoencoder has no prior: nothing pulls its codes towards the "
                                            "origin or sets their scale."))
        if sel.class_prior:
            return Words("means", "mu(x)", _("The raw latent plane: mu(x) itself, no projection. Each class's prior "
                                             "N(mu_y, I) is centred on that class's own mean."))
        return Words("means", "mu(x)", _("The raw latent plane: mu(x) itself, no projection. The prior N(0, I) is "
                                         "centred at the origin."))


@dataclass
class Shown:
    """The map on the page: ``emb``, the positions of its images among the test images at hand, and how it
    came (precomputed, computed, or the stored map while a new one is computed)."""

    emb: Embedding
    positions: torch.Tensor
    how: str
    meanwhile: bool = False  # the stored map, shown until a new one is ready

    def key(self, sel: Selection) -> MapKey:
        """The map's cache key (its placer, the images placed on it)."""
        e = self.emb
        return MapKey(sel.folder, weights_mtime(sel.folder), e.method, e.n, e.perplexity, e.seed)


def umap_settings(neighbours: int = UMAP_PARAMS["n_neighbors"]) -> str:
    """UMAP's settings in words (``vae.embeddings.UMAP_SETTINGS``, in this run's language); ``neighbours``:
    a map's n_neighbors (``umap_neighbours``: fewer for a map of fewer than 17 images)."""
    return _("{n} neighbours, min_dist {d:g}").format(n=neighbours, d=UMAP_PARAMS["min_dist"])


# ---------------------------------------------------------------- cached work


@st.cache_data(show_spinner=False, max_entries=16)
def precomputed(folder: str, mtime: float, version: float, method: str = "tsne"):
    """The folder's stored map for ``method`` if its weights still match, else None; (map or None, why not:
    "" (it matches, or there is none), "other" (other weights) or "unusable", the error's text). Words in
    no language: cached for every session, whatever its language (``stored_map`` says them)."""
    try:
        emb = load_embedding(folder, method)
    except EmbeddingError as err:
        return None, "unusable", str(err)
    if emb is not None and emb.weights_sha256 != weights_sha256(folder):
        return None, "other", ""
    return emb, "", ""


def stored_map(folder: str, method: str):
    """The model folder's stored map for ``method`` if its weights still match (else None), and a note."""
    if method not in STORED:
        return None, ""
    path = os.path.join(folder, embedding_file(method))
    emb, why, error = precomputed(folder, os.path.getmtime(path) if os.path.exists(path) else 0.0,
                                  weights_mtime(folder), method)
    if why == "unusable":
        return None, _("The stored map is unusable ({error}); computing instead.").format(error=error)
    if why == "other":
        return None, _("The stored map is from other weights; computing instead.")
    return emb, ""


@st.cache_data(show_spinner=False, max_entries=32)
def computed(folder: str, version: float, n: int, _sel: Selection):
    """The PCA map of the first n test encodings (milliseconds, so on the script thread), once per model
    (folder and weights' version) and n; the map and the positions of its images. New t-SNE and UMAP
    maps are background jobs (``ui.maps``)."""
    images, labels, indices, _source = _sel.test_images()
    emb = compute_embedding(_sel.model, images, labels, indices, n, "pca",
                            first=sample_indices(sample_path(folder, _sel.config["dataset"])), mu=test_encodings(_sel)[0])
    return emb, match_positions(emb, indices)


@st.cache_data(show_spinner=False, max_entries=8)  # the spinner: at the call (its words in this run's language)
def image_parts(folder: str, version: float, test_indices: bytes, _sel: Selection, _x, _y) -> dict:
    """Each map image's ELBO parts (``vae.evaluate.per_image``), once per model, weights and image set."""
    device = next(_sel.model.parameters()).device
    return per_image(_sel.model, _x.to(device), _y.to(device), _sel.config["likelihood"],
                     _sel.config.get("sigma", 0.1))


class BuildingPlacer:
    """A map's Placer, built in a background thread from the moment the map is shown, so that the first
    upload does not wait for it (1 to 2 s for 10,000 points, and openTSNE's import the first time)."""

    def __init__(self, emb):
        self._placer: Placer | None = None
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._build, args=(emb,), name="placer", daemon=True)
        self._thread.start()

    def _build(self, emb) -> None:
        try:
            self._placer = Placer(emb)
        except Exception as err:  # noqa: BLE001 - raised again, in the script, by get()
            self._error = err

    def get(self) -> Placer:
        """The Placer, once built (waits for the thread); raises what building it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._placer


@st.cache_resource(show_spinner=False, max_entries=4)
def placer(key: MapKey, _emb) -> BuildingPlacer:
    """The map's Placer, once per map, its building started now (``BuildingPlacer``)."""
    return BuildingPlacer(_emb)


@st.cache_data(show_spinner=False, max_entries=32)  # the spinner: at the call
def place_image(key: MapKey, pixels: bytes, label: int | None, _sel: Selection, _emb):
    """(mu (1, latent_dim), map position (1, 2), milliseconds it took) of one image (float32 bytes of
    the model's image_shape), once per map and image."""
    t0 = time.perf_counter()
    x = torch.frombuffer(bytearray(pixels), dtype=torch.float32).view(1, *_sel.image_shape)
    mu, _logvar = encode_images(_sel.model, x, None if label is None else torch.tensor([label]))
    where = placer(key, _emb).get().place(mu)
    return mu, where, 1000 * (time.perf_counter() - t0)


@st.cache_data(show_spinner=False, max_entries=8)
def thumbnails(folder: str, test_indices: bytes, _images) -> list[str]:
    """Each map image as a PNG data URL, carried in the charts themselves when Streamlit serves no
    static file (``ui.images.thumbnails_url`` is None) and for a folder model's images. Once per model
    folder and image set."""
    return png_data_urls(_images)


# ---------------------------------------------------------------- the page, section by section


def render(sel: Selection) -> None:
    images, labels, indices, source = sel.test_images()
    words, m = Words.of(sel), model_state(sel.name)
    intro(sel, words, source)
    two_d = sel.model.latent_dim == 2
    read_selection(m, two_d)
    key = map_settings(sel, m, len(indices))
    shown = shown_map(sel, key, indices)
    coords = {"map": shown.emb.coords, "plane": shown.emb.mu.numpy()} if two_d else {"map": shown.emb.coords}
    keys = chart_keys(coords)
    take_chart_selection(m, keys, shown.emb)  # before the controls: Clear selection knows if there is one
    picked, on = current_selection(m, shown, coords)
    colour, values, extra = colour_controls(sel, shown, images, m)
    yours, your_label = upload_section(sel)
    placed = place_upload(sel, shown, yours, your_label)
    value_name = _(PARTS[colour]) if colour in PARTS else ""
    draw_charts(sel, shown, words, keys, images, picked, on, value_name, values, placed)
    if placed is not None:
        your_mu, where, ms = placed
        said = (_("Your image, at ({x:.1f}, {y:.1f}) on the {method} map, placed in {ms:.0f} ms without recomputing "
                  "it (openTSNE's transform)") if shown.emb.method == "tsne" else
                _("Your image, at ({x:.1f}, {y:.1f}) on the {method} map, placed in {ms:.0f} ms without recomputing "
                  "it")).format(x=where[0, 0], y=where[0, 1], method=METHODS[shown.emb.method], ms=ms)
        health.ood_section(sel, yours, "upload")  # placed anyway: say when the place means little
        neighbours(sel, shown, images, words, your_mu[0], yours, said, None, "k_upload", label=your_label)
    if not picked:
        if placed is None:
            st.info(_("Hover a point to see its image; click or tap one to pick it: its picture, its reconstruction "
                      "and the test images nearest to it then show. Shift-click to add more, or turn on Box select and "
                      "drag (a finger too), to see those test images and their reconstructions."))
        return
    show_selection(sel, shown, images, words, picked, on, m, extra)


def intro(sel: Selection, words: Words, source: str) -> None:
    """The title and what the page shows, in this model's words (a VAE's q(z|x), an autoencoder's codes)."""
    st.title(_("Embeddings"))
    point = (_("Each point is one test image x, placed by the encoder's mean mu(x) of q(z|x), and coloured by its "
               "class (or by its -ELBO, reconstruction term or KL).") if sel.model.variational else
             _("Each point is one test image x, placed by its code z = f(x), the encoder's output (a plain "
               "autoencoder: one code per image, no distribution over z and no prior), and coloured by its class "
               "(or by its reconstruction error)."))
    st.markdown(point + _(
        " Hover a point to see the image; click or tap points to see them, or one to see the test images nearest to "
        "it in the latent space. t-SNE (van der Maaten & Hinton, 2008) and UMAP (McInnes et al., 2018) keep near "
        "neighbours near and say little about distances between clusters; PCA is the linear projection on the "
        "two directions of largest variance."
    ))
    if "sample" in source:
        st.info(_("Using {source}.").format(source=say(source)))
    if sel.label_decoder:
        st.caption(_("This CVAE encodes q(z|x, y) given the label, so z holds the style and need not separate the "
                     "classes."))


def map_changed(m: state.PageState) -> None:
    """The map's settings changed (a callback): a rectangle drawn on the old map no longer means anything
    there (the latent plane's does, as does a selection of test images)."""
    if m.get("on") == "map" and m.get("rect") is not None:
        m.set("rect", None)


def map_settings(sel: Selection, m: state.PageState, n_max: int) -> MapKey:
    """Method, N, perplexity (t-SNE) and seed (t-SNE and UMAP), bound to the page's state; the map they name.
    N defaults to every test image the stored t-SNE map holds at hand (a shipped model's: all 10,000, or
    offline the bundled sample's 2,000), else 2,000, per model, so a model without maps never inherits a
    shipped model's 10,000 (t-SNE takes 8 s at 2,000 and 60 s at 10,000). Stops the page, saying why, for
    fewer than two test images."""
    if n_max < 2:
        st.info(_("A map needs at least two test images; this model's test split holds {n}.").format(n=n_max))
        st.stop()
    c1, c2, c3, c4 = st.columns([3, 3, 3, 2], vertical_alignment="bottom")
    changed = {"on_change": map_changed, "args": (m,)}
    method = c1.segmented_control(_("Method"), list(METHODS), format_func=METHODS.get, required=True,
                                  key=S.bind("method"), **changed)
    stored = stored_map(sel.folder, "tsne")[0]
    stored = None if stored is None else restrict(stored, sel.test_images()[2])
    bound = policy().map_max_n
    n_top = n_max if stored is not None or bound is None else min(n_max, bound)
    lo = min(500, n_max)
    if n_top <= lo:  # a small dataset's few test images (a folder's): all of them, no choice to make
        c2.markdown(_("Test images: all **{n:,}**").format(n=n_top))
        n = int(n_top)
        return MapKey(sel.folder, weights_mtime(sel.folder), method, n, *map_method_settings(method, m, n, c3, c4))
    n = c2.slider(_("Test images (N)"), lo, n_top, step=500 if n_max >= 1000 else 1,
                  key=m.bind("n", default=default_n(stored, n_max), lo=lo, hi=n_top), **changed,
                  help=_("By default every test image the model's stored maps hold (a shipped model's: all 10,000, "
                         "or offline the bundled sample's 2,000), else 2,000. Another N computes a new map of the "
                         "bundled sample's images first, then the rest of the test split in order (so online N = "
                         "2,000 is a map of its own, not the offline part of the stored one); t-SNE time grows a "
                         "little faster than N.")
                  + (_(" This public server computes new maps of at most {bound:,} images.").format(bound=bound)
                     if bound is not None else ""))
    n = int(n)
    return MapKey(sel.folder, weights_mtime(sel.folder), method, n, *map_method_settings(method, m, n, c3, c4))


def map_method_settings(method: str, m: state.PageState, n: int, c3, c4) -> tuple[float, int]:
    """(perplexity, seed) of a map of n images: t-SNE's perplexity in c3 (UMAP's settings said there), the
    seed in c4. Stops the page, saying why, for a UMAP map of fewer than 4 images."""
    changed = {"on_change": map_changed, "args": (m,)}
    perplexity, seed = 30.0, 0
    if method == "tsne":
        perplexity = perplexity_control(m, n, c3)
    elif method == "umap":
        neighbours = umap_neighbours(n)
        if neighbours < 2:
            st.info(_("UMAP needs at least 4 test images; this model's test split holds {n}. Pick t-SNE or PCA.")
                    .format(n=n))
            st.stop()
        c3.caption(_("UMAP with umap-learn's defaults: {settings}.").format(settings=umap_settings())
                   if neighbours == UMAP_PARAMS["n_neighbors"] else
                   _("UMAP with {settings}: umap-learn's default of {default} neighbours, lowered for {n} images.")
                   .format(settings=umap_settings(neighbours), default=UMAP_PARAMS["n_neighbors"], n=n))
    if method != "pca":
        seed = int(c4.number_input(_("Seed"), 0, 10_000, key=S.bind("seed"), **changed))
    return perplexity, seed


def perplexity_control(m: state.PageState, n: int, c3) -> float:
    """t-SNE's perplexity for a map of n images, from 5 to 100 (default 30) on a slider in c3; for fewer
    than 301 images only up to (n - 1) / 3 (``perplexity_bounds``), kept per model, and said so."""
    lo, default, hi = perplexity_bounds(n)
    changed = {"on_change": map_changed, "args": (m,)}
    usual = _("Roughly the number of neighbours each point keeps close; 5 to 50 is usual.")
    if hi == PERPLEXITY[2]:
        return float(c3.slider(_("Perplexity"), 5, 100, key=S.bind("perplexity"), **changed, help=usual))
    if lo < hi:
        key = m.bind("perplexity", default=int(default), lo=int(lo), hi=int(hi))
        value = float(c3.slider(_("Perplexity"), int(lo), int(hi), key=key, **changed, help=usual))
    else:  # one value left: said, and a link's other one refused
        value = float(m.get("perplexity", default=hi, lo=hi, hi=hi))
        c3.markdown(_("Perplexity: **{perplexity:.3g}**").format(perplexity=value))
    c3.caption(_("At most {top:.3g} for {n} images (t-SNE's usual range is {lo} to {hi}, default {default}): each "
                 "point's neighbourhood is drawn from its 3 × perplexity nearest neighbours.").format(
        top=hi, n=n, default=PERPLEXITY[1], lo=PERPLEXITY[0], hi=PERPLEXITY[2]))
    return value


def shown_map(sel: Selection, key: MapKey, indices: torch.Tensor) -> Shown:
    """The map for these settings (``vae.embeddings.choose_map``): the stored one (or its part at hand),
    a PCA map computed now, or a new t-SNE or UMAP map from a background job, with the stored map shown
    meanwhile. Stops the page while there is none to show."""
    stored, note = stored_map(sel.folder, key.method)
    choice = choose_map(stored, indices, key.method, key.n, key.perplexity, key.seed)
    if choice.stored is not None:
        return Shown(choice.stored, match_positions(choice.stored, indices), stored_how(choice.stored))
    if key.method == "pca":  # milliseconds: on the script thread
        emb, positions = computed(sel.folder, key.version, key.n, sel)
        return Shown(emb, positions, _("computed in {seconds:g} s, cached for this model and N").format(
            seconds=emb.seconds))
    if note:
        st.caption(note)
    ready = new_map(sel, key)
    if ready is not None:
        return Shown(*ready, _("computed in {seconds:g} s in the background, kept for this model and these "
                               "settings").format(seconds=ready[0].seconds))
    old = choice.meanwhile
    if old is None:
        st.stop()
    said = (_("Meanwhile, the stored {method} map ({n:,} images, perplexity {perplexity:g}, seed {seed}):")
            if key.method == "tsne" else _("Meanwhile, the stored {method} map ({n:,} images, seed {seed}):"))
    st.caption(said.format(method=METHODS[key.method], n=old.n, perplexity=old.perplexity, seed=old.seed))
    return Shown(old, match_positions(old, indices), _("the stored map, shown until the new one is ready"), True)


def stored_how(emb: Embedding) -> str:
    """How a stored map was made, for the map's caption."""
    how = _("precomputed by `python -m vae.embeddings` in {seconds:g} s with {library}").format(
        seconds=emb.seconds, library=(f"umap-learn {emb.info.get('umap_version', '')}" if emb.method == "umap"
                                      else f"scikit-learn {emb.sklearn_version}"))
    if "of" in emb.info:  # offline: the bundled sample's part of a map of the whole test split
        how = _("the {n:,} images at hand of a map of {total:,} test images {how} (its places on the whole "
                "map)").format(n=emb.n, total=int(emb.info["of"]), how=how)
    return how


def colour_controls(sel: Selection, shown: Shown, images, m: state.PageState):
    """Colour by class or by an ELBO part; Box select; Clear selection; the map's CSV. Returns (the
    colouring's key, each point's value (N,) or None, a function giving the CSV's per-image columns)."""
    folder, emb = sel.folder, shown.emb
    names = PARTS if sel.model.variational else {"recon": PARTS["recon"]}  # an autoencoder: no KL, no ELBO

    def parts() -> dict:  # computed (and cached) only when a colouring or a CSV asks for them
        return image_parts(folder, weights_mtime(folder), emb.indices.numpy().tobytes(), sel, images[shown.positions],
                           emb.labels)

    def extra() -> dict:  # each image's ELBO parts, as CSV columns
        return {name: parts()[k] for k, name in names.items()}

    row = st.container(horizontal=True, vertical_alignment="bottom", gap="medium")  # wraps on a phone, not stacks
    shown_as = {"class": _("class")} | {k: _(name) for k, name in names.items()}  # words made now, not when shown
    colour = row.segmented_control(_("Colour by"), ["class", *names], required=True,
                                   key=S.bind("colour", options=("class", *names)), format_func=shown_as.get,
                                   help=_("Each image's -ELBO, reconstruction term or KL in nats (one draw z ~ "
                                          "q(z|x) each): the outliers a model finds hard stand out.")
                                   if sel.model.variational else _("Each image's reconstruction term in nats: the "
                                                                   "outliers a model finds hard stand out."))
    row.toggle(_("Box select"), key=S.bind("box"), help=_("Drag a rectangle to select (on a phone a swipe then "
               "draws one instead of scrolling). Off: click or tap a point, shift-click to add."))
    row.button(_("Clear selection"), key="embeddings/clear", icon=":material/deselect:", on_click=clear_selection,
               args=(m,), disabled=not (m.get("picked") or m.get("rect")), help=_("Select nothing (as does a "
               "double-click on a chart)."))
    row.download_button(_("Download the map (CSV)"), lambda: embedding_csv(emb, extra=extra()),  # made on a click
                        file_name=f"{sel.name}-{emb.method}-map.csv", mime="text/csv", key="embeddings/csv",
                        icon=":material/download:",
                        help=_("Every point: test index, label, x, y, method, perplexity, seed and its ELBO parts."))
    if colour == "class":
        return colour, None, extra
    with st.spinner(_("Scoring each image...")):
        return colour, parts()[colour].numpy(), extra


def clear_selection(m: state.PageState) -> None:
    """The Clear selection button's callback: nothing selected, and the charts drawn afresh (a chart
    keeps its own selection in the browser: without a new key, a click on the same point again would
    change nothing there, and so not select it)."""
    m.set("picked", ())
    m.set("rect", None)
    m.set("page", 1)
    st.session_state[GENERATION] = st.session_state.get(GENERATION, 0) + 1


def chart_keys(coords: dict) -> dict[str, str]:
    """Chart ("map", "plane") -> its widget key. The keys change with the selection tool (its state has
    another shape) and with each Clear selection."""
    tool = "box" if st.session_state[S.bind("box")] else "points"  # the toggle's value, before it is drawn
    return {which: f"embeddings/{which}-{tool}-{st.session_state.get(GENERATION, 0)}" for which in coords}


def chart_choice(event) -> tuple[list[int], tuple[float, float, float, float] | None]:
    """What one chart's selection event holds: (map positions of the points clicked, in order; the
    rectangle (x0, x1, y0, y1) of a box, or None). Malformed entries are left out."""
    chosen = (event or {}).get("selection") or {}
    points = [int(p["pos"]) for p in chosen.get("points") or []
              if isinstance(p, dict) and isinstance(p.get("pos"), (int, float))]
    box = chosen.get("box") or {}
    xs, ys = box.get("x"), box.get("y")
    if isinstance(xs, list) and isinstance(ys, list) and len(xs) == len(ys) == 2:
        return points, (*sorted(map(float, xs)), *sorted(map(float, ys)))
    return points, None


def take_chart_selection(m: state.PageState, keys: dict[str, str], emb: Embedding) -> None:
    """A chart whose selection changed since the last run (a click, a tap, a box, a click on empty space
    that clears) replaces the stored selection. A chart that has no state yet (the page revisited, a
    link opened) changes nothing: the stored selection is drawn on it instead."""
    seen = st.session_state.setdefault(SEEN, {})
    for which, key in keys.items():
        points, rect = chart_choice(st.session_state.get(key))
        mark = repr((points, rect))
        if key not in st.session_state or seen.get(key, repr(([], None))) == mark:
            seen[key] = mark
            continue
        seen[key] = mark
        n = len(emb.indices)
        m.set("picked", tuple(dict.fromkeys(int(emb.indices[p]) for p in points if 0 <= p < n)))
        m.set("rect", rect)
        m.set("on", which)
        m.set("page", 1)  # a new selection opens on its first page of images


def read_selection(m: state.PageState, two_d: bool) -> None:
    """Read the selection's settings before the map is drawn: a link's selection then stays in the session
    through a run that stops while a new map is computed (read only after it, the URL counted as read and
    the selection was lost). A link's chart this model has not (the plane of a 20-d model) is said."""
    m.get("picked")
    m.get("rect")
    m.get("on", options=CHARTS if two_d else CHARTS[:1])


def current_selection(m: state.PageState, shown: Shown, coords: dict) -> tuple[list[int], str]:
    """(map positions of the stored selection, in order; the chart it was made on). A rectangle selects
    the points inside it on its chart. Picked test images the map does not hold leave the selection (a
    link's are said), except while the stored map stands in for a new one, which may hold them."""
    on, rect = m.get("on", options=tuple(coords)), m.get("rect")
    if rect is not None:
        return points_in_rect(coords[on], rect), on
    picked = m.get("picked")
    if not shown.meanwhile:
        on_map = set(shown.emb.indices.tolist())
        picked = m.narrow("picked", on_map.__contains__,
                          Message(N_("not among the {n:,} test images of this map"), n=shown.emb.n))
    return positions_of(shown.emb, picked), on


def upload_section(sel: Selection):
    """Your own image, to place on the map: (float (1, C, H, W) in [0, 1] or None, a CVAE's label)."""
    kind = sel.thing
    with st.expander(_("Place your own image on the map"), icon=":material/add_location_alt:",
                     expanded=kept_upload("emb_upload") is not None):  # open while it holds your image
        said = {"digit": N_("An image of one digit"), "item": N_("An image of one item")}.get(kind)
        yours = upload_image("emb_upload", label=_(said) if said else _("An image of one {kind}").format(kind=kind),
                             style=sel.preprocess_style)
        label = None
        if yours is not None and sel.conditional:
            names = sel.class_names
            label = st.selectbox(_("Its class (the label y the encoder or the prior needs)"), range(len(names)),
                                 format_func=lambda c: names[c], key="emb_upload_label")
    return yours, label


def place_upload(sel: Selection, shown: Shown, yours, label):
    """Your image on the map without recomputing it: (its encoding (1, latent_dim), its map position (1, 2),
    the milliseconds it took), or None. The map's placer is built in the background as soon as the map is
    shown, so a first upload need not wait."""
    emb = shown.emb
    if emb.method != "umap":
        placer(shown.key(sel), emb)
    if yours is None:
        return None
    if emb.method == "umap":
        st.caption(_("Your image is placed on t-SNE and PCA maps (a stored UMAP map keeps no model to place it "
                     "with); pick one of those above."))
        return None
    with st.spinner(_("Placing your image...")):
        return place_image(shown.key(sel), yours.numpy().tobytes(), label, sel, emb)


def draw_charts(sel: Selection, shown: Shown, words: Words, keys: dict, images, picked: list[int], on: str,
                value_name: str, values, placed) -> None:
    """The map and, for a 2-d model, the raw latent plane beside it (stacked on a phone), each with the
    selection drawn, your image as a star, and a caption; right under the chart a point was picked on, its
    picture and its nearest neighbours (on a phone the section below the charts is two screens further)."""
    emb, names, zoom = shown.emb, sel.class_names, state.zoom()
    # A folder's images stay out of the app's static files (served to anyone): its pictures ride in the chart.
    pictures = (thumbnails_url(sel.config["dataset"]) if sel.builtin else None) or thumbnails(
        sel.folder, emb.indices.numpy().tobytes(), images[shown.positions])
    box = bool(st.session_state[S.key("box")])  # the Box select toggle's
    common = dict(values=values, value_name=value_name, picked=picked, box=box, zoom=zoom)
    if box:  # a finger's drag draws the box instead of scrolling the page (Vega-Lite's box follows pointer moves)
        st.html("<style>.st-key-embeddings-charts canvas {touch-action: none;}</style>")
    two_d = "plane" in keys
    with st.container(key="embeddings-charts"):
        left, right = st.columns(2) if two_d else (st.container(), None)
    axes, detail = map_axes(emb, words)
    with left:
        chart = map_chart(emb.coords, emb.indices, emb.labels, names, pictures, axes,
                          placed=None if placed is None else placed[1][0], **common)
        st.altair_chart(chart, key=keys["map"], on_select="rerun", width="stretch")
        if len(picked) == 1 and (on == "map" or not two_d):
            picked_preview(sel, shown, images, picked[0])
        said = (_("{method} of the means of {n:,} test images ({detail}); {how}. Hover a point to see its image; "
                  "click or tap it to pick it.") if words.codes == "means" else
                _("{method} of the codes of {n:,} test images ({detail}); {how}. Hover a point to see its image; "
                  "click or tap it to pick it."))
        st.caption(said.format(method=METHODS[emb.method], n=emb.n, detail=detail, how=shown.how))
    if two_d:
        with right:
            chart = map_chart(emb.mu.numpy(), emb.indices, emb.labels, names, pictures, ("z[0]", "z[1]"), square=True,
                              placed=None if placed is None else placed[0][0].numpy(), **common)
            st.altair_chart(chart, key=keys["plane"], on_select="rerun", width="stretch")
            if len(picked) == 1 and on == "plane":
                picked_preview(sel, shown, images, picked[0])
            st.caption(words.plane + (_(" The images selected on the map are outlined here.")
                                      if picked and on == "map" else ""))


def picked_preview(sel: Selection, shown: Shown, images, p: int) -> None:
    """The picked point's test image, then its k nearest neighbours in the latent space, in one strip,
    where the charts stack (a phone): there the section below them is far down. Beside each other (at
    least 641 px wide: Streamlit stacks columns up to 640 px) that section is just under them, and this
    strip is hidden."""
    emb, names = shown.emb, sel.class_names
    near, _distance = nearest(emb, emb.mu[p], st.session_state[S.bind("k")], p)
    strip = tile(images[shown.positions[torch.cat([torch.tensor([p]), near])]], nrow=9, padding=2, scale=2 * state.zoom())
    st.html("<style>@media (min-width: 641px) {.st-key-embeddings-preview {display: none;}}</style>")
    show_image(st.container(key="embeddings-preview"), strip, caption=_(
        "Picked: test image #{index:,} ({name}), then its {k} nearest neighbours; their distances and its "
        "reconstruction are further down.").format(index=int(emb.indices[p]), name=names[int(emb.labels[p])],
                                                   k=len(near)))


def nearest(emb: Embedding, query_mu, k: int, exclude: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(map positions of the k map images nearest to ``query_mu`` (latent_dim,), nearest first; every map
    image's Euclidean distance to it, float64 (N,)), in the latent space; ``exclude``: a position left out."""
    distance = torch.cdist(torch.as_tensor(query_mu).double().reshape(1, -1), emb.mu.double())[0]
    if exclude is not None:
        distance[exclude] = float("inf")
    return torch.topk(distance, min(k, emb.n - (exclude is not None)), largest=False).indices, distance


def map_axes(emb: Embedding, words: Words) -> tuple[tuple[str, str], str]:
    """The map's axis titles and the caption's detail (its settings, t-SNE's final KL, PCA's variance)."""
    if emb.method == "tsne":
        if "kl_divergence" in emb.info:
            detail = _("perplexity {perplexity:g}, seed {seed}, final KL {kl:.2f}").format(
                perplexity=emb.perplexity, seed=emb.seed, kl=float(emb.info["kl_divergence"]))
        else:
            detail = _("perplexity {perplexity:g}, seed {seed}").format(perplexity=emb.perplexity, seed=emb.seed)
        return ("t-SNE 1", "t-SNE 2"), detail
    if emb.method == "umap":
        neighbours = int(emb.info.get("n_neighbors", UMAP_PARAMS["n_neighbors"]))
        return ("UMAP 1", "UMAP 2"), _("{settings}, seed {seed}").format(settings=umap_settings(neighbours), seed=emb.seed)
    ratios = emb.info.get("explained_variance_ratio", [0.0, 0.0])
    return ((_("PC 1 ({percent:.0f}% of variance)").format(percent=100 * ratios[0]), f"PC 2 ({100 * ratios[1]:.0f}%)"),
            _("the two axes hold {percent:.0f}% of the variance of {z}").format(percent=100 * sum(ratios), z=words.z))


def show_selection(sel: Selection, shown: Shown, images, words: Words, picked: list[int], on: str,
                   m: state.PageState, extra) -> None:
    """One point: its image and its nearest neighbours. More: their classes, a CSV, and a fair sample of
    them page by page (the selection in a seeded random order) beside their reconstructions. on: the
    chart the selection was made on ("map" or "plane")."""
    emb, names = shown.emb, sel.class_names
    method = METHODS[emb.method]
    if len(picked) == 1:
        p = picked[0]
        title = (_("Test image #{index:,} ({name}), picked on the {method} map") if on == "map" else
                 _("Test image #{index:,} ({name}), picked on the latent plane"))
        return neighbours(sel, shown, images, words, emb.mu[p], images[shown.positions[[p]]],
                          title.format(index=int(emb.indices[p]), name=names[int(emb.labels[p])], method=method),
                          p, "k", label=int(emb.labels[p]))
    title = _("{n:,} selected on the {method} map") if on == "map" else _("{n:,} selected on the latent plane")
    st.subheader(title.format(n=len(picked), method=method))
    counts = torch.bincount(emb.labels[torch.tensor(picked)], minlength=len(names))
    st.caption(_("Classes: {counts}").format(
        counts=", ".join(f"{names[c]} × {int(k)}" for c, k in enumerate(counts) if k)))
    st.download_button(_("Download the selection (CSV)"), lambda: embedding_csv(emb, picked, extra()), f"{sel.name}-selection.csv",
                       "text/csv", key="embeddings/selection-csv", icon=":material/download:")
    order = [picked[i] for i in torch.randperm(len(picked), generator=torch.Generator().manual_seed(0)).tolist()]
    pages = (len(order) + MAX_SHOWN - 1) // MAX_SHOWN
    page = 1
    if pages > 1:
        page = st.number_input(_("Page (of {pages}; {k} images each, in a random order)").format(
            pages=pages, k=MAX_SHOWN), 1, pages,
                               key=m.bind("page", hi=pages), width=280)
    shown_now = torch.tensor(order[(page - 1) * MAX_SHOWN : page * MAX_SHOWN])
    x, y = images[shown.positions[shown_now]], emb.labels[shown_now]
    recon = decode_images(sel.model, emb.mu[shown_now], y if sel.label_decoder else None).cpu()
    here = torch.bincount(y, minlength=len(names))
    nrow, scale = min(len(shown_now), 7), 2 * state.zoom()  # 7 images at scale 2 fit half the page (450 px at 1400 px)
    o, r = st.columns(2)
    counts = ", ".join(f"{names[c]} × {int(k)}" for c, k in enumerate(here) if k)
    show_image(o, tile(x, nrow, padding=2, scale=scale),
               caption=_("Test images: {n} of the selection ({counts})").format(n=len(shown_now), counts=counts))
    said = (_("Reconstructions: the decoder's mean at z = {z}") if sel.model.variational else
            _("Reconstructions: the decoder's output at z = {z}"))
    show_image(r, tile(recon, nrow, padding=2, scale=scale), caption=said.format(z=words.z))


def neighbours(sel: Selection, shown: Shown, images, words: Words, query_mu, query_image, title: str,
               exclude: int | None, k_name: str, label: int | None = None) -> None:
    """An image's k nearest neighbours among the map's images, Euclidean on the encodings (the encoder's
    means, an autoencoder's codes: in the latent space itself, not on the 2-D map), with their distances,
    and its reconstruction. exclude: the image's own map position, when it is one of the map's; k_name:
    the setting that holds k ("k" for a picked point, "k_upload" for your image)."""
    emb, names, zoom = shown.emb, sel.class_names, state.zoom()
    st.subheader(_("{title}: its nearest neighbours").format(title=title))
    k = st.slider(_("Neighbours (k)"), 4, 24, key=S.bind(k_name))
    near, distance = nearest(emb, query_mu, k, exclude)
    y = None if label is None or not sel.label_decoder else torch.tensor([label])
    recon = decode_images(sel.model, torch.as_tensor(query_mu).float().reshape(1, -1), y).cpu()
    c1, c2 = st.columns([1, 4])
    show_image(c1, tile(torch.cat([query_image.cpu(), recon]), nrow=1, padding=2, scale=3 * zoom),
               caption=_("the image, over its reconstruction at z = {z}").format(z=words.z))
    said = (_("its {k} nearest of the {n:,} map images, by Euclidean distance between the encoder's means in the "
              "{d}-d latent space (not on the 2-D map): {neighbours}") if words.codes == "means" else
            _("its {k} nearest of the {n:,} map images, by Euclidean distance between the encoder's codes in the "
              "{d}-d latent space (not on the 2-D map): {neighbours}"))
    show_image(c2, tile(images[shown.positions[near]], nrow=min(len(near), 8), padding=2, scale=2 * zoom),
               caption=said.format(k=len(near), n=emb.n, d=sel.model.latent_dim, neighbours=", ".join(
                   f"#{int(emb.indices[q])} ({names[int(emb.labels[q])]}) {float(distance[q]):.2f}" for q in near)))


if __name__ == "__main__":
    import app

    app.run_page(render)
