"""net2fair comparison viewer: the same face in every dataset, side by side.

Run with ``net2fair view [MODEL]``, or from a checkout
``streamlit run streamlit_app.py --server.address 127.0.0.1 -- --model M
[--models-dir DIR] [--examples DIR]`` (that file runs this one).

A thin page: widgets and layout only. Model work is :class:`net2fair.Translator`, the rest
is :mod:`net2fair.viewer` and :mod:`net2fair.data.align`. Results are cached per input
(``st.cache_data``) and the model once per weights file (``st.cache_resource``), so moving
a slider recomputes only what depends on it.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import tempfile
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image
from streamlit.delta_generator import DeltaGenerator

from net2fair import Translator
from net2fair import viewer as V
from net2fair.data.align import align_face, centre_crop
from net2fair.data.images import ImageError, load_image

ARGS = V.parse_args(sys.argv[1:])
ModelKey = tuple[str, str]


# ---------------------------------------------------------------------------- cached work
@st.cache_resource(show_spinner="loading the model ...", max_entries=4)
def load_model(folder: str, stamp: str) -> Translator:
    return Translator.load(folder)


def model(key: ModelKey) -> Translator:
    return load_model(*key)


@st.cache_data(show_spinner=False, max_entries=8)
def example_sets(key: ModelKey, examples: str | None) -> dict[str, list[V.Example]]:
    t = model(key)
    sets: dict[str, list[V.Example]] = {}
    if V.is_synthetic(t.domains):
        sets.update(V.benchmark_examples(t.domains, t.resolution))
    if examples:
        sets.update(V.folder_examples(examples))
    sets.update(V.training_examples(t))
    return sets or V.sample_examples(t)


def _crop(img: Image.Image, align: bool, size: int) -> tuple:
    # Only a square of ``size`` is kept, never the whole upload, so the cache stays small.
    if not align:
        return np.asarray(centre_crop(img, size)), None, None
    a = align_face(img, size)
    return np.asarray(a.image), None, a.notice


@st.cache_data(show_spinner=False, max_entries=16)
def prepare_upload(data: bytes, name: str, align: bool, size: int) -> tuple:
    """-> (RGB uint8 array or None, error line or None, notice or None)."""
    try:
        img = V.read_upload(data, name)
    except ImageError as e:
        return None, f"{name}: {e.reason}", None
    return _crop(img, align, size)


@st.cache_data(show_spinner=False, max_entries=64)
def prepare_file(path: str, align: bool, size: int) -> tuple:
    try:
        img = load_image(path)
    except ImageError as e:
        return None, f"{path}: {e.reason}", None
    return _crop(img, align, size)


@st.cache_data(show_spinner=False, max_entries=256)
def analyse(key: ModelKey, pixels: np.ndarray) -> V.Analysis:
    return V.analyse(model(key), pixels)


@st.cache_data(show_spinner="scoring reference faces ...", max_entries=8)
def typicality_reference(key: ModelKey) -> V.TypicalityReference:
    t = model(key)
    try:
        faces, what = V.reference_faces(t)
        return V.typicality_reference(t, faces, what=what)
    except (ImageError, ValueError) as e:  # unreadable training images: use samples
        logging.getLogger(__name__).warning("typicality reference: %s", e)
        return V.typicality_reference(t)


@st.cache_data(show_spinner=False, max_entries=256)
def projections(key: ModelKey, latent: np.ndarray, source: str, alpha: float) -> dict:
    return V.project_row(model(key), latent, source, alpha)


@st.cache_data(show_spinner=False, max_entries=64)
def animation_frames(key: ModelKey, latent: np.ndarray, source: str, target: str) -> np.ndarray:
    return V.translation_frames(model(key), latent, source, target, n_frames=16)


@st.cache_data(show_spinner=False, max_entries=64)
def gif_bytes(frames: np.ndarray, size: int) -> bytes:
    return V.make_gif(frames, size=size)


@st.cache_data(show_spinner=False, max_entries=16)
def mp4_bytes(frames: np.ndarray, size: int) -> tuple[bytes | None, str | None]:
    try:
        return V.make_mp4(frames, size=size), None
    except RuntimeError as e:
        return None, str(e)


@st.cache_data(show_spinner=False, max_entries=64)
def samples(key: ModelKey, n: int, temperature: float, seed: int) -> dict:
    return V.shared_samples(model(key), n, temperature, seed)


@st.cache_data(show_spinner=False, max_entries=512)
def png(pixels: np.ndarray) -> bytes:
    # every download button re-encodes its PNG on each rerun otherwise (~30 ms a slider move)
    return V.png_bytes(pixels)


def digest(*parts: object) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(p.tobytes() if isinstance(p, np.ndarray) else repr(p).encode())
    return h.hexdigest()[:16]


def show(
    col: DeltaGenerator, pixels: np.ndarray, caption: str, file: str, size: int, key: str
) -> None:
    col.image(V.enlarge(pixels, size), caption=caption, output_format="PNG")
    col.download_button("PNG", png(pixels), file_name=file, mime="image/png", key=f"dl-{key}")


# -------------------------------------------------------------------------------- sidebar
st.set_page_config(page_title="net2fair viewer", layout="wide")
sb = st.sidebar
sb.header("Model")
choice = sb.selectbox("model", V.model_choices(ARGS.model, ARGS.models_dir), key="model_choice")
typed = sb.text_input("or a model folder", key="model_path", placeholder="runs/pair/model")
model_name = typed.strip() or choice
try:
    key = V.model_stamp(model_name)
    t = model(key)
except Exception as e:  # any load problem is one line on the page, not a traceback
    st.error(f"could not load the model {model_name}: {str(e).splitlines()[0] if str(e) else e}")
    st.stop()
domains = t.domains
res = t.resolution
disp = V.display_size(res)
sb.caption(f"{Path(key[0]).name}: {res} px, datasets {', '.join(domains)}")

sb.header("Input")
kind = sb.radio("face", ["example", "upload", "folder"], horizontal=True, key="input_kind")
pixels_full: np.ndarray | None = None
label = ""
notice = None
align_size = max(256, res)
if kind == "example":
    sets = example_sets(key, str(ARGS.examples) if ARGS.examples else None)
    set_name = sb.selectbox("example set", list(sets), key="example_set")
    items = sets[set_name]
    idx = sb.selectbox(
        "example", range(len(items)), format_func=lambda i: items[i].label, key="example_index"
    )
    idx = min(int(idx or 0), len(items) - 1)
    try:
        pixels_full = np.asarray(items[idx].image())
        label = f"{set_name}, {items[idx].label}"
    except ImageError as e:
        st.error(f"{e.path}: {e.reason}")
elif kind == "upload":
    up = sb.file_uploader("face image (jpg, png, webp)", type=list(V.UPLOAD_TYPES), key="upload")
    align = sb.checkbox("align the face (FFHQ-style)", value=True, key="align_upload")
    if up is not None:
        pixels_full, err, notice = prepare_upload(up.getvalue(), up.name, align, align_size)
        label = up.name
        if err:
            st.error(err)
else:
    folder = sb.text_input("image folder or file", key="folder", placeholder="faces/")
    align = sb.checkbox("align the face (FFHQ-style)", value=False, key="align_folder")
    if folder.strip():
        try:
            files = V.folder_images(folder.strip())
        except FileNotFoundError as e:
            files = []
            st.error(str(e).splitlines()[0])
        if files:
            j = sb.selectbox(
                f"image ({len(files)} found)",
                range(len(files)),
                format_func=lambda i: files[i].name,
                key="folder_index",
            )
            j = min(int(j or 0), len(files) - 1)
            pixels_full, err, notice = prepare_file(str(files[j]), align, align_size)
            label = files[j].name
            if err:
                st.error(err)
        else:
            st.warning(f"{folder}: no images found")

# ----------------------------------------------------------------------------- main area
st.title("The same face in every dataset")
st.caption(
    "net2fair encodes the face, keeps what the datasets share (the residual of a "
    "conditional invertible network) and decodes it as each dataset would draw it: "
    "what changes is that dataset's bias."
)
if notice:
    st.warning(notice)

if pixels_full is not None:
    pixels = V.model_input(Image.fromarray(pixels_full), res)
    a = analyse(key, pixels)
    input_id = digest(key, pixels)
    if (
        st.session_state.get("_input_id") != input_id
        or st.session_state.get("source") not in domains
    ):
        # A new input (or model) starts from its most probable dataset.
        st.session_state["source"] = a.most_probable(domains)
        st.session_state["_input_id"] = input_id
    post = dict(zip(domains, a.posterior))
    source = sb.selectbox(
        "source dataset",
        domains,
        key="source",
        format_func=lambda d: f"{d}  (p = {post[d]:.2f})",
        help="Defaults to the most probable dataset under the model's posterior.",
    )
    sb.caption("posterior: " + ", ".join(f"{d} {p:.0%}" for d, p in post.items()))

    alpha = st.slider(
        "strength α (0: the input, 1: the full projection)", 0.0, 1.0, 1.0, 0.05, key="alpha"
    )
    row = projections(key, a.latent, source, float(alpha))
    targets = [d for d in domains if d != source]
    cols = st.columns(2 + len(targets))
    show(cols[0], pixels, "input", "input.png", disp, "input")
    show(
        cols[1], a.reconstruction, f"reconstruction ({source})", "reconstruction.png", disp, "recon"
    )
    for col, d in zip(cols[2:], targets):
        show(col, row[d], f"{source} → {d}", f"{source}_to_{d}_a{alpha:.2f}.png", disp, f"to-{d}")
    st.caption(
        f"input: {label}. Shown {disp // res}x enlarged without smoothing: these are the "
        f"model's own {res} px."
    )
    strip = {"input": pixels, "reconstruction": a.reconstruction}
    strip.update({f"→ {d}": row[d] for d in targets})
    st.download_button(
        "download the row (PNG)",
        png(np.asarray(V.labelled_strip(strip))),
        file_name=f"projections_{source}_a{alpha:.2f}.png",
        mime="image/png",
        key="dl-row",
    )
    # What the page shows, in short: tests read it, and it helps when debugging.
    st.session_state["view"] = {
        "input": digest(pixels),
        "source": source,
        "alpha": float(alpha),
        "projections": digest(*[row[d] for d in targets]),
    }

    st.subheader("How typical is this face for each dataset?")
    ref = typicality_reference(key)
    typ = V.typicality(a.log_likelihood, ref)
    c1, c2 = st.columns([3, 2])
    table = pd.DataFrame(
        {
            "dataset": domains,
            "log-likelihood (nats)": np.round(a.log_likelihood, 1),
            "bits/dim": np.round(a.bits_per_dim, 3),
            "typicality": [f"{x:.0%}" for x in typ],
            "posterior": np.round(a.posterior, 3),
        }
    )
    c1.dataframe(table, hide_index=True)
    c1.caption(
        "Log-likelihood: the exact density of the face's latent code under each dataset's "
        f"flow. Typicality: the share {ref.what} of that dataset that are less likely than "
        "this face (about 50%: a typical face of that dataset; near 0%: an outlier)."
    )
    c2.altair_chart(
        alt.Chart(pd.DataFrame({"dataset": domains, "p(dataset | face)": a.posterior}))
        .mark_bar()
        .encode(
            x=alt.X("dataset", sort=domains, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("p(dataset | face)", scale=alt.Scale(domain=[0, 1])),
            tooltip=["dataset", alt.Tooltip("p(dataset | face)", format=".3f")],
        )
        .properties(height=240, title="posterior: which dataset is this face from?")
    )

    st.subheader("Animation")
    ac1, ac2 = st.columns([1, 2])
    target = ac1.selectbox(
        "from the input to",
        targets or domains,
        key="anim_target",
        format_func=lambda d: f"{source} → {d}",
    )
    frames = animation_frames(key, a.latent, source, target)
    gif = gif_bytes(frames, disp)
    ac2.image(gif, caption=f"{source} → {target}, α from 0 to 1 and back")
    ac1.download_button(
        "GIF", gif, file_name=f"{source}_to_{target}.gif", mime="image/gif", key="dl-gif"
    )
    if V.ffmpeg_executable():
        mp4, mp4_err = mp4_bytes(frames, disp)
        if mp4 is not None:
            ac1.download_button(
                "MP4", mp4, file_name=f"{source}_to_{target}.mp4", mime="video/mp4", key="dl-mp4"
            )
        else:
            ac1.caption(mp4_err)
    else:
        ac1.caption("GIF only (MP4 needs ffmpeg).")
else:
    st.info("Choose an input face in the sidebar: an example, an upload or a folder.")
    source = domains[0]

st.subheader("Samples: one residual, every dataset")
st.caption(
    "Each row draws one residual and decodes it under every dataset: the same face "
    "as each dataset believes it looks."
)
s1, s2, s3 = st.columns(3)
n_rows = s1.slider("rows", 1, 8, 4, key="n_samples")
temperature = s2.slider("temperature", 0.1, 1.5, 0.8, 0.05, key="temperature")
st.session_state.setdefault("sample_seed", 0)


def _reseed() -> None:
    st.session_state["sample_seed"] += 1


s3.button("new samples", on_click=_reseed, key="reseed")
seed = int(st.session_state["sample_seed"])
s3.caption(f"seed {seed}")
shared = samples(key, int(n_rows), float(temperature), seed)
st.image(V.sample_sheet(shared, size=V.display_size(res, 128)), output_format="PNG")
st.download_button(
    "download the samples (PNG)",
    V.png_bytes(V.sample_sheet(shared)),
    file_name=f"samples_seed{seed}_T{temperature:.2f}.png",
    mime="image/png",
    key="dl-samples",
)
st.session_state["samples"] = digest(*shared.values())

if V.report_available():
    with st.expander("Bias report on a folder of faces"):
        r_folder = st.text_input(
            "faces folder", value=str(ARGS.examples or ""), key="report_folder"
        )
        r_out = st.text_input(
            "write to",
            value=str(Path(tempfile.gettempdir()) / "net2fair-report"),
            key="report_out",
        )
        r_n = st.number_input("at most this many images", 1, 100_000, 200, key="report_n")
        r_source = st.selectbox(
            "the faces come from", domains, index=domains.index(source), key="report_source"
        )
        if st.button("run the report", key="run_report"):
            if not r_folder.strip():
                st.error("give a folder of faces")
            else:
                try:
                    with st.spinner("projecting and measuring ..."):
                        html = V.run_report(
                            t,
                            r_folder.strip(),
                            source=r_source,
                            out_dir=r_out.strip(),
                            max_images=int(r_n),
                        )
                    st.session_state["report_html"] = str(html)
                except Exception as e:  # shown as one line: bad folder, no images, ...
                    st.error(f"report failed: {str(e).splitlines()[0] if str(e) else e}")
        html_path = st.session_state.get("report_html")
        if html_path and Path(html_path).is_file():
            st.success(f"report written: {html_path}")
            st.markdown(f"open it: [{html_path}](file://{html_path})")
            st.download_button(
                "index.html",
                Path(html_path).read_bytes(),
                file_name="index.html",
                mime="text/html",
                key="dl-report",
            )
