"""net2fair comparison viewer (placeholder until the viewer issue lands).

Run with ``net2fair view [MODEL]``. Shows one input face projected onto every dataset of
a model; holds no model logic: everything comes from :class:`net2fair.Translator`.
"""

from __future__ import annotations

import argparse
import sys

import streamlit as st

from net2fair import Translator


def _model_arg() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="demo")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.model


@st.cache_resource
def load(model: str) -> Translator:
    return Translator.load(model)


st.set_page_config(page_title="net2fair", layout="wide")
st.title("net2fair: the same face in every dataset")
model_name = st.sidebar.text_input("model folder", _model_arg())
try:
    t = load(model_name)
except Exception as e:  # shown to the user, not a traceback
    st.error(f"could not load the model: {e}")
    st.stop()
seed = st.sidebar.number_input("seed", value=0, step=1)
temperature = st.sidebar.slider("temperature", 0.1, 1.5, 0.8)
shared = t.sample_shared("all", n=4, temperature=temperature, seed=int(seed))
cols = st.columns(len(t.domains))
for col, name in zip(cols, t.domains):
    col.subheader(name)
    for img in Translator.to_pil(shared[name]):
        col.image(img.resize((128, 128)), use_container_width=False)
