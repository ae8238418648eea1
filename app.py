"""VAE Latent Space Explorer: the frame every page shares. Run with `streamlit run app.py`.

The sidebar resolves the picked model once per rerun, and ``run_page`` hands that Selection to the
page: every script in pages/ defines ``render(selection)`` and ends by calling ``app.run_page(render)``.
"""

import html

import streamlit as st

from ui import i18n, models, state, training
from ui.i18n import N_, _, say
from vae.train import best_device, describe_device

PAGES = [  # (script, title, icon); a page's URL path is its file name, the first page's the bare root
    ("pages/home.py", N_("Start here"), ":material/home:"),
    ("pages/manifold.py", N_("Latent manifold"), ":material/grid_on:"),
    ("pages/reconstruct.py", N_("Reconstruct an image"), ":material/image_search:"),
    ("pages/sliders.py", N_("Latent sliders"), ":material/tune:"),
    ("pages/meaning.py", N_("What the dimensions mean"), ":material/straighten:"),
    ("pages/interpolate.py", N_("Interpolation"), ":material/swap_horiz:"),
    ("pages/cvae.py", N_("CVAE: class and style"), ":material/pin:"),
    ("pages/embeddings.py", N_("Embeddings (t-SNE, UMAP, PCA)"), ":material/scatter_plot:"),
    ("pages/ae_vs_vae.py", N_("AE vs VAE"), ":material/compare:"),
    ("pages/theory.py", N_("Theory: KL and ELBO"), ":material/functions:"),
]  # titles in English; translated where shown


# On a phone the sidebar covers most of the page, and Streamlit closes it after a tap on its own page menu
# but not after one on an st.page_link: close it the same way (its collapse button) when a link is tapped on
# a narrow screen (Streamlit's mobile breakpoint, 768 px). Installed once per browser tab.
CLOSE_SIDEBAR_ON_PHONE = """<script>
if (!window.vaeCloseSidebar) {
  window.vaeCloseSidebar = true;
  document.addEventListener("click", (e) => {
    if (window.innerWidth >= 768 || !e.target.closest("[data-testid=stSidebar] [data-testid=stPageLink-NavLink]")) return;
    const close = document.querySelector("[data-testid=stSidebarCollapseButton] button");
    if (close) setTimeout(() => close.click(), 0);
  }, true);
}
</script>"""
# "Copy link": the address bar holds the view's settings (ui.state writes them to the URL), so the button
# copies location.href less the parameters in its data-drop (``state.not_in_links``: projector mode, which
# is the room's and not the view's; the rest of the query is copied as it is written); where the Clipboard
# API is missing (a plain-http address other than localhost) it falls back to a selected text field and the
# browser's copy command. Its two labels are the button's data attributes, in the page's language.
COPY_LINK = """<button class="vae-copy-link" type="button" data-done="{done}" data-label="{label}"
  data-drop="{drop}">{label}</button>
<style>.vae-copy-link {width: 100%; padding: 0.4rem 0.75rem; border-radius: 0.5rem; cursor: pointer;
  border: 1px solid rgba(49, 51, 63, 0.2); background: white; color: inherit; font: inherit;}</style>
<script>
if (!window.vaeCopyLink) {
  window.vaeCopyLink = true;
  document.addEventListener("click", async (e) => {
    const button = e.target.closest(".vae-copy-link");
    if (!button) return;
    const drop = button.dataset.drop.split(",");
    const kept = location.search.slice(1).split("&")
      .filter((p) => p && !drop.includes(decodeURIComponent(p.split("=")[0])));
    const url = location.origin + location.pathname + (kept.length ? "?" + kept.join("&") : "") + location.hash;
    try { await navigator.clipboard.writeText(url); }
    catch (err) {
      const field = document.createElement("textarea");
      field.value = url; document.body.appendChild(field); field.select();
      document.execCommand("copy"); field.remove();
    }
    button.textContent = button.dataset.done;
    setTimeout(() => { button.textContent = button.dataset.label; }, 2000);
  });
}
</script>"""
# Projector mode: Streamlit sizes its text in rem, so all of it grows with the root's size; the sidebar,
# sized in px, widens with it so that the page names stay whole.
PROJECTOR_CSS = "<style>html {font-size: 24px;} [data-testid=stSidebar] {min-width: 440px;}</style>"


def main() -> None:
    """The frame: page config, navigation, the sidebar (model picker, device, training), the page."""
    st.set_page_config(page_title="VAE Latent Space Explorer", page_icon="🧭", layout="wide")
    state.begin_run()
    language_key = choose_language()
    pages = [st.Page(path, title=_(title), icon=icon, default=i == 0) for i, (path, title, icon) in enumerate(PAGES)]
    # Streamlit's own sidebar menu is off (client.showSidebarNavigation in .streamlit/config.toml), so
    # the pages/-folder mode never shows the files' names; the sidebar links to the pages instead.
    page = st.navigation(pages, position="hidden")
    # Images are drawn at their own size in pixels (ui.images.show_image): on a narrower column, as on a
    # phone, shrink them to fit instead of letting them overflow. A chart's hover picture (Vega's tooltip,
    # the Embeddings page) is a 28x28 test image: drawn at 3x, its pixels kept sharp.
    st.html("<style>[data-testid='stImage'], [data-testid='stImageContainer'], [data-testid='stImageCaption'] "
            "{max-width: 100%;} [data-testid='stImage'] img {height: auto;} "
            "#vg-tooltip-element img {width: 84px; height: 84px; image-rendering: pixelated;}</style>")
    with st.sidebar:
        for p in pages:
            st.page_link(p)
        st.html(CLOSE_SIDEBAR_ON_PHONE, unsafe_allow_javascript=True)
        st.divider()
        training.adopt_finished_job()  # a model this session just trained joins the picker, picked
        selection = models.picker()
        st.caption(_("Device: {device}").format(device=say(describe_device(best_device()))))
        models.web_download(selection)
        st.selectbox("Language / 语言", list(i18n.LANGUAGES), key=language_key, format_func=i18n.LANGUAGES.get)
        st.toggle(_("Projector mode"), key=models.APP_STATE.bind("projector"),
                  help=_("Larger text, images, ticks and labels, for a room: images and their downloads at twice the size."))
        if state.zoom() > 1:
            st.html(PROJECTOR_CSS)
        st.html(COPY_LINK.replace("{label}", html.escape(_("Copy link to this view")))
                .replace("{done}", html.escape(_("Link copied")))
                .replace("{drop}", html.escape(",".join(state.not_in_links()))), unsafe_allow_javascript=True)
        training.panel()
    notice = st.empty()  # a link's ignored values, said at the top of the page as soon as each is ignored
    state.say_ignored_in(notice)
    completed = False
    try:
        with models.selected(selection):
            page.run()
        completed = True
    finally:
        ignored = state.end_run(page.url_path or "home", completed)
        if ignored:  # on a page that stopped early, drawing raises StopException again: end_run kept them
            notice.warning(state.notice(ignored), icon=state.NOTICE_ICON)


def choose_language() -> str:
    """This run's language, set for ``ui.i18n`` before anything is drawn: the URL's ``lang``, else the
    session's choice, else the browser's; returns the sidebar control's widget key."""
    models.APP_STATE.suggest("lang", i18n.browser_language(st.context.locale))
    key = models.APP_STATE.bind("lang")
    st.session_state[i18n.LANGUAGE_KEY] = st.session_state[key]
    return key


def run_page(render) -> None:
    """What every page script ends with: ``render(selection)`` inside the frame.

    A page script runs outside the frame only when Streamlit's old pages/-folder mode ran it alone:
    a server does that until ``st.navigation`` has run once, so a cold server's first visitor on a
    deep link (``/sliders``) would get the page with no sidebar. Then this runs the frame, whose
    navigation serves the same URL and runs the script again, inside.
    """
    selection = models.current_selection()
    if selection is None:
        main()
    else:
        render(selection)


if __name__ == "__main__":
    main()
