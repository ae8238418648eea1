"""The Embeddings page's new maps: the server's one queue of map jobs, a map's status with Cancel."""

from __future__ import annotations

import streamlit as st

from vae.embeddings import METHODS, image_order, match_positions, sample_indices, sample_path
from vae.map_jobs import MapJob, MapJobs, MapKey

from . import policy
from .i18n import N_, _, ngettext, say
from .models import Selection, test_encodings
from .training import format_seconds, session_key

JOB_KEY = "embeddings-map-job"  # session state: the MapJob of this session's latest new map
CANCELLED = N_("cancelled")  # why a map the Cancel button stopped was cancelled (MapJobs.cancel's reason)


@st.cache_resource
def map_jobs() -> MapJobs:
    """The server's one queue and cache of new t-SNE and UMAP maps, bounded by ``ui.policy()``: in public
    mode one map at a time over the server, of at most 2,000 images; else one per session."""
    return MapJobs(policy())


def new_map(sel: Selection, key: MapKey):
    """(map, its positions into the test images at hand) for settings no folder stores (``key``: the
    model's folder and weights' version, the method, N, perplexity and seed), when a job has
    computed it; else None, with the job's status drawn here: its progress or its place in the queue
    and a Cancel button (redrawn every second; the page reruns when the map is ready), or why it
    failed or was cancelled, with a button to ask again.

    Asks ``map_jobs()`` for it the first time: its images are the first n of ``image_order`` (the
    bundled sample's first), their means from ``test_encodings``. Shows a warning and returns None when
    n is more than this server computes (``Policy.map_max_n``)."""
    folder, method, n = sel.folder, key.method, key.n
    images, labels, indices, _source = sel.test_images()
    emb = map_jobs().result(key)
    if emb is not None:
        return emb, match_positions(emb, indices)
    bound = policy().map_max_n
    if bound is not None and n > bound:
        st.warning(_("This public server computes new maps of at most {bound:,} images; pick N of {bound:,} or "
                     "fewer, or the stored map's settings.").format(bound=bound), icon=":material/block:")
        return None
    job: MapJob | None = st.session_state.get(JOB_KEY)
    if job is not None and job.key == key and job.state in ("failed", "cancelled"):
        if job.state == "failed":
            st.error(_("Cannot compute this map: {error}.").format(error=say(job.error)))
        else:
            reason = _(CANCELLED) if job.error == CANCELLED else say(job.error)
            st.info(_("The new map was cancelled ({reason}).").format(reason=reason), icon=":material/cancel:")
        st.button(_("Compute it"), key="embeddings/compute", icon=":material/play_arrow:", on_click=st.session_state.pop,
                  args=(JOB_KEY,))
        return None
    if job is None or job.key != key:
        pos = image_order(indices, sample_indices(sample_path(folder, sel.config["dataset"])))[:n]
        mu = test_encodings(sel)[0][pos]
        job = map_jobs().request(session_key(), key, mu.numpy(), indices[pos].numpy(), labels[pos].numpy())
        st.session_state[JOB_KEY] = job
    if job.state == "done":
        return job.result, match_positions(job.result, indices)
    status(job, method, n)
    return None


def _cancel(job: MapJob) -> None:
    """The Cancel button's callback: this session no longer waits for the map (its process is killed
    when nobody else does; that takes well under a second, so the rerun shows it cancelled)."""
    map_jobs().cancel(session_key(), job, CANCELLED)
    job.wait(2.0)


@st.fragment(run_every=1)
def status(job: MapJob, method: str, n: int) -> None:
    """A waiting or running map job's line and its Cancel button, redrawn every second (each redraw is
    the job's heartbeat); once it has ended, reruns the page."""
    if not job.active:
        st.rerun()
    job.touch()
    if job.state == "waiting":
        ahead = map_jobs().ahead(job)
        said = (ngettext("Waiting for the map another visitor asked for: this public server computes one new map at a "
                         "time, and {n} more is ahead of yours. Yours starts when it is done.",
                         "Waiting for the map another visitor asked for: this public server computes one new map at a "
                         "time, and {n} more are ahead of yours. Yours starts when it is done.", ahead).format(n=ahead)
                if ahead else _("Waiting for the map another visitor asked for: this public server computes one new "
                                "map at a time. Yours starts when it is done."))
        st.info(said, icon=":material/hourglass_top:")
    else:
        st.info(_("Computing a {method} map of {n:,} test images in the background: {elapsed} so far. On a 2-core "
                  "CPU a t-SNE map (openTSNE) took 22 s for 2,000 images and 63 s for 10,000 on a busy day "
                  "(bench/tsne_compare.py), UMAP 4 s and 33 s plus 10 to 19 s to compile (bench/tsne_speed.py). "
                  "The page stays usable; the map appears when it is ready.").format(
                      method=METHODS[method], n=n, elapsed=format_seconds(job.elapsed())),
                icon=":material/hourglass_top:")
    st.button(_("Cancel"), key="embeddings/cancel", icon=":material/cancel:", on_click=_cancel, args=(job,))
