"""The conditional VAE: pick the class, keep the style (z), move the style, transfer a style."""

import hashlib

import streamlit as st
import torch

from ui.images import download_png, pick_test_image, show_image, upload_image
from ui.models import MODEL_KEY, Selection, load_model, shipped_configs, shipped_models
from vae.conditional import class_codes, class_decode, prior_styles, style_grid, style_transfer
from vae.latent import tile


def use_model(model_name):
    st.session_state[MODEL_KEY] = model_name  # the sidebar's model picker


def render(sel: Selection) -> None:
    model, config, name = sel.model, sel.config, sel.name
    st.title("Conditional VAE: pick the class, keep the style")
    if not model.conditional:
        shipped, configs = shipped_models(), shipped_configs()
        cvaes = sorted((n for n, c in configs.items() if c.get("model") in ("cvae", "cvae_class_prior")),
                       key=lambda n: (configs[n]["dataset"] != "mnist", n))  # MNIST first
        st.info(f"{name} is not conditional: pick {' or '.join(cvaes) or 'a CVAE'} in the sidebar "
                "to choose the class of what it draws.")
        for column, cvae in zip(st.columns(max(len(cvaes), 1)), cvaes):
            preview = load_model(shipped[cvae])[0]
            column.button(f"Switch to {cvae}", key=f"cvae_use_{cvae}", on_click=use_model, args=(cvae,))
            show_image(column, tile(style_grid(preview, prior_styles(3, preview.latent_dim, 0)), nrow=10, padding=2,
                              scale=2), caption=f"{cvae}: three styles, each drawn as every class")
        st.stop()

    names = sel.class_names
    n_classes, d = len(names), model.latent_dim
    thing = "digit" if config["dataset"] == "mnist" else "item"  # Fashion-MNIST: an item of clothing
    features = 'slant, stroke, size' if thing == 'digit' else 'shade, cut, pattern'
    if sel.class_prior:
        st.markdown(
            f"This VAE's encoder and decoder never see the {thing}. Its prior does: each {thing} y has its own "
            f"learned mean, p(z|y) = N(μ_y, I), and the KL term pulls every image's code towards its class's mean, "
            f"so the latent plane clusters by class by construction. A {thing} of class y is drawn as "
            f"z = μ_y + ε with ε ~ N(0, I); ε, the offset from the mean, is the style ({features}). Keep ε and "
            f"change y to draw the same offset in another class's cloud."
        )
    else:
        st.markdown(
            f"The decoder p(x|z, y) is told the {thing} y, so the latent z is left to hold the style: "
            f"{features}. Keep z and change y to draw the same style as another "
            f"{thing} (Sohn, Lee & Yan, 2015)."
        )
    style_name = "ε" if sel.class_prior else "z"

    z_keys = [f"cvae_z{i}" for i in range(d)]
    seed_key = "cvae_seed"

    def random_style():
        z = torch.randn(d)
        for key, v in zip(z_keys, z.clamp(-3, 3).tolist()):
            st.session_state[key] = round(round(v / 0.05) * 0.05, 2)  # on the slider's 0.05 grid

    def new_styles():
        st.session_state[seed_key] = int(torch.randint(100_000, ()).item())

    seed = st.session_state.setdefault(seed_key, 0)
    label = st.segmented_control(f"Pick the {thing} (the label y)", range(n_classes), default=0, wrap=True,
                                 required=True, key="cvae_class", format_func=lambda c: names[c])

    one, many = st.columns([1, 2], gap="large")
    with one:
        st.subheader("One style")
        picture = st.empty()
        for key in z_keys:  # the value lives in session state, which "Random style" sets: no default beside it
            st.session_state.setdefault(key, 0.0)
        z = torch.tensor([[st.slider(f"{style_name}[{i}]", -3.0, 3.0, step=0.05, key=z_keys[i]) for i in range(d)]])
        st.button("Random style", icon=":material/casino:", on_click=random_style, help="A draw from N(0, I)")
        where = ""
        if sel.class_prior:
            code = class_codes(model, z, label)[0]
            where = f", at z = μ_y + ε = ({', '.join(f'{v:.2f}' for v in code.tolist())})"
        show_image(picture, tile(class_decode(model, z, label), nrow=1, scale=8),
                   caption=f"{names[label]} in the style {style_name} = ({', '.join(f'{v:.2f}' for v in z[0].tolist())}){where}")

    with many:
        st.subheader(f"36 random styles of {names[label]}")
        styles = prior_styles(36, d, seed)
        drawn = tile(class_decode(model, styles, label), nrow=6, padding=2)
        show_image(many, drawn.repeat(3, 0).repeat(3, 1),
                   caption=(f"z = μ_y + ε, ε ~ N(0, I): 36 samples around the mean of {names[label]}, seed {seed}; the same "
                            f"ε whichever {thing} you pick") if sel.class_prior else
                   f"z ~ N(0, I), seed {seed}: the same 36 styles whichever {thing} you pick")
        st.button("New styles", icon=":material/casino:", on_click=new_styles)
        download_png(drawn, f"{name}-{names[label]}-36-styles",
                     "cvae_styles_png")

    st.subheader(f"Same style, every {thing}")
    rows = st.columns([1, 2])[0].slider("Styles (rows)", 1, 10, 5)
    row_z = torch.cat([z, prior_styles(rows - 1, d, seed)]) if rows > 1 else z
    every = tile(style_grid(model, row_z), nrow=n_classes, padding=2)
    show_image(st, every.repeat(3, 0).repeat(3, 1),
               caption=f"Each row is one {style_name} decoded with every label; row 1 is the style of the sliders, the rest "
             f"are the first random styles above. Columns: {', '.join(names)}.")
    download_png(every, f"{name}-every-{thing}",
                 "cvae_grid_png", container=st.columns([1, 2])[0])

    if sel.class_prior:
        means = model.class_means.detach().cpu()
        gaps = torch.cdist(means, means).fill_diagonal_(float("inf"))
        i, j = divmod(int(gaps.argmin()), n_classes)
        st.caption(f"The closest class means are those of {names[i]} and {names[j]}, {float(gaps[i, j]):.2f} apart in "
                   "z against the priors' unit standard deviation: their draws overlap, so the same ε can read as "
                   "either class. `bench/cvae_accuracy.py` counts how often a draw shows the class asked for.")

    st.subheader("Style transfer")
    if sel.class_prior:
        st.markdown("Encode an image to find its code μ (the mean of q(z|x)); its style is the offset from its "
                    "class's mean, ε = μ − μ_y. Then draw that ε at every class's mean.")
    else:
        st.markdown("Encode an image with its label to find its style z (the mean of q(z|x, y)), then decode "
                    "that z with every label.")
    source_col, result_col = st.columns([1, 2], gap="large")
    with source_col:
        source = st.radio("Image", ["A test image", "Your own image"], horizontal=True, key="cvae_source")
        if source == "A test image":
            x, true_label, index = pick_test_image(config["dataset"], "cvae_transfer")
            given = st.selectbox(f"Its label ({'whose mean is subtracted' if sel.class_prior else 'told to the encoder'}; "
                                 f"the test set says {names[true_label]})",
                                 range(n_classes), index=true_label, format_func=lambda c: names[c])
            about = f"test image #{index}"
        else:
            x = upload_image("cvae_upload", label=f"An image of one {thing}", style=sel.preprocess_style)
            given, about = None, "your image"
    if x is None:
        result_col.info(f"Upload an image of a {thing} to borrow its style.")
    elif source != "A test image":
        # Keyed by the image, so every new image asks for its own label.
        image_id = hashlib.sha1(x.numpy().tobytes()).hexdigest()[:12]
        given = result_col.segmented_control(f"Confirm its label: which {thing} is it?", range(n_classes), wrap=True,
                                             key=f"cvae_upload_label_{image_id}", format_func=lambda c: names[c])
    if x is not None and given is None:
        show_image(source_col, tile(x, nrow=1, scale=4), caption=f"{about}, as the model sees it")
        result_col.info(f"Pick the {thing} your image shows: " + ("its style is its offset from that class's mean."
                        if sel.class_prior else "the encoder needs its label to separate style from class."))
    elif x is not None:
        style, images = style_transfer(model, x, int(given))
        show_image(source_col, tile(x, nrow=1, scale=4), caption=f"{about}, encoded as {names[given]}")
        show_image(result_col, tile(images, nrow=(n_classes + 1) // 2, padding=2, scale=3),
                   caption=f"Its style {style_name} = ({', '.join(f'{v:.2f}' for v in style.tolist())}) decoded as "
            f"{', '.join(names)} (left to right, then the second row); the {names[given]} is the reconstruction.")


if __name__ == "__main__":
    import app

    app.run_page(render)
