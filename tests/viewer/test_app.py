"""The comparison viewer: its helpers (net2fair.viewer) and the page under Streamlit's
AppTest (no browser; the real-browser test is test_browser.py)."""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from net2fair import Translator
from net2fair import viewer as V
from net2fair.data.images import ImageError
from net2fair.models.translator import shipped_models
from tests.badinputs import write_bad_inputs
from tests.conftest import REPO

APP = REPO / "streamlit_app.py"


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def model(synth_tiny_model: Path) -> Translator:
    return Translator.load(synth_tiny_model)


# ------------------------------------------------------------------------------- helpers


def test_parse_args_reads_only_its_own_options() -> None:
    a = V.parse_args(["-q", "--model", "runs/m", "--models-dir", "runs", "--other", "x"])
    assert a == V.ViewerArgs("runs/m", Path("runs"), None)
    assert V.parse_args([]).model == "demo"
    # No abbreviations: pytest's or streamlit's options must not be taken for ours.
    assert V.parse_args(["--mod", "x"]).model == "demo"


def test_find_models_and_menu(tmp_path: Path, synth_tiny_model: Path) -> None:
    shutil.copytree(synth_tiny_model, tmp_path / "a" / "run1" / "model")
    shutil.copytree(synth_tiny_model, tmp_path / "b" / "model")
    shutil.copytree(synth_tiny_model, tmp_path / ".hidden" / "model")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.yaml").write_text("not a model without weights")
    found = V.find_models(tmp_path)
    assert found == [tmp_path / "a" / "run1" / "model", tmp_path / "b" / "model"]
    assert V.find_models(tmp_path / "missing") == []

    menu = V.model_choices("mine", tmp_path)
    assert menu[0] == "mine"
    assert menu[-2:] == [str(p) for p in found]
    assert len(menu) == len(set(menu))
    assert V.model_choices(str(found[0]), tmp_path).count(str(found[0])) == 1


def test_read_upload_gives_one_line_reasons(tmp_path: Path) -> None:
    kinds = write_bad_inputs(tmp_path / "bad")
    checked = 0
    for rel in kinds["bad"]:
        path = tmp_path / "bad" / rel
        if not path.is_file() or path.suffix.lower().lstrip(".") not in V.UPLOAD_TYPES:
            continue
        with pytest.raises(ImageError) as e:
            V.read_upload(path.read_bytes(), path.name)
        assert e.value.path == Path(path.name)  # the user's file name, not a temp file
        assert e.value.reason and "\n" not in e.value.reason
        checked += 1
    assert checked >= 6

    good = _png(Image.new("RGB", (40, 30), (10, 20, 30)))
    assert V.read_upload(good, "face.PNG").size == (40, 30)
    with pytest.raises(ImageError, match="unsupported file type"):
        V.read_upload(good, "face.gif")
    with pytest.raises(ImageError, match="too large"):
        V.read_upload(good, "face.png", max_bytes=100)
    with pytest.raises(ImageError, match="too large"):
        V.read_upload(good, "face.png", max_pixels=1000)
    with pytest.raises(ImageError, match="not an image"):
        V.read_upload(b"GIF89a but not really" * 10, "x.jpg")


def test_typicality_is_the_share_of_less_likely_faces() -> None:
    ref = V.TypicalityReference([np.array([1.0, 2.0, 3.0, 4.0]), np.array([-4.0, -1.0])], "x")
    np.testing.assert_allclose(V.typicality(np.array([2.5, -10.0]), ref), [0.5, 0.0])
    np.testing.assert_allclose(V.typicality(np.array([9.0, -1.5]), ref), [1.0, 0.5])


def test_typicality_references_of_the_model(model: Translator) -> None:
    ref = V.typicality_reference(model, n=64)
    assert len(ref.log_likelihoods) == len(model.domains) and "samples" in ref.what
    assert all(len(r) == 64 and np.all(np.diff(r) >= 0) for r in ref.log_likelihoods)
    # A sample's own dataset rates it as typical on average.
    zs = model.sample_latents("all", n=64, temperature=1.0, seed=5)
    own = model.latent_log_likelihood(zs[model.domains[0]])[:, 0].numpy()
    assert 0.2 < V.typicality(np.full(3, np.median(own)), ref)[0] < 0.8

    # A synthetic model is judged against new benchmark faces, scored like any input.
    faces, what = V.reference_faces(model, n=6)
    assert "benchmark" in what and sorted(faces) == sorted(model.domains)
    ref = V.typicality_reference(model, faces, what=what)
    assert ref.what == what and all(len(r) == 6 for r in ref.log_likelihoods)
    k = model.domains.index("anime")
    expected = np.sort(model.log_likelihood(list(faces["anime"]))[:, k].numpy())
    np.testing.assert_allclose(ref.log_likelihoods[k], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="no reference faces"):
        V.typicality_reference(model, {"photo": faces["photo"]})


def test_projection_strength_and_animation(model: Translator) -> None:
    pixels = V.benchmark_examples(model.domains, model.resolution, n=1)[
        f"benchmark: {model.domains[0]}"
    ][0].pixels
    a = V.analyse(model, pixels)
    assert a.reconstruction.shape == (model.resolution, model.resolution, 3)
    np.testing.assert_allclose(a.posterior.sum(), 1.0, atol=1e-5)
    src, dst = model.domains[0], model.domains[2]

    zero = V.project_row(model, a.latent, src, alpha=0.0)
    for d in model.domains:  # strength 0 leaves the face as it is
        np.testing.assert_array_equal(zero[d], a.reconstruction)
    full = V.project_row(model, a.latent, src, alpha=1.0)
    np.testing.assert_array_equal(full[src], a.reconstruction)

    frames = V.translation_frames(model, a.latent, src, dst, n_frames=5)
    assert frames.shape == (5, model.resolution, model.resolution, 3)
    np.testing.assert_array_equal(frames[0], a.reconstruction)
    np.testing.assert_array_equal(frames[-1], full[dst])


def test_shared_samples_follow_the_seed(model: Translator) -> None:
    s1 = V.shared_samples(model, 2, 0.8, seed=3)
    s2 = V.shared_samples(model, 2, 0.8, seed=3)
    s3 = V.shared_samples(model, 2, 0.8, seed=4)
    assert list(s1) == model.domains
    assert s1[model.domains[0]].shape == (2, model.resolution, model.resolution, 3)
    np.testing.assert_array_equal(s1[model.domains[1]], s2[model.domains[1]])
    assert not np.array_equal(s1[model.domains[1]], s3[model.domains[1]])


def test_gif_and_pictures() -> None:
    frames = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (0, 80, 160, 240)])
    gif = Image.open(io.BytesIO(V.make_gif(frames, size=32)))
    assert gif.format == "GIF" and gif.size == (32, 32)
    assert gif.n_frames == 6  # forward 4, back 2 (the ends are not repeated)
    assert gif.info.get("loop") == 0
    assert V.display_size(32) == 192 and V.display_size(64) == 192
    assert V.display_size(100) == 200 and V.display_size(256) == 256
    big = V.enlarge(frames[1], 24)
    assert big.size == (24, 24) and np.all(np.asarray(big) == 80)
    sheet = V.sample_sheet({"a": frames[:2], "b": frames[2:]}, size=16)
    assert sheet.height > 2 * 16 and sheet.width > 2 * 16


def test_mp4_when_ffmpeg_is_there() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    if V.ffmpeg_executable() is None:
        with pytest.raises(RuntimeError, match="ffmpeg"):
            V.make_mp4(frames)
        pytest.skip("no ffmpeg here: the page offers GIF only")
    data = V.make_mp4(frames, size=48)
    assert data[4:8] == b"ftyp" and len(data) > 500


def test_example_sets(model: Translator, tmp_path: Path) -> None:
    assert V.is_synthetic(model.domains) and not V.is_synthetic(["photo", "cats"])
    bench = V.benchmark_examples(model.domains, model.resolution, n=3)
    assert list(bench) == [f"benchmark: {d}" for d in model.domains]
    assert bench["benchmark: anime"][2].image().size == (model.resolution,) * 2
    for sub in ("photo", "anime"):
        (tmp_path / "faces" / sub).mkdir(parents=True)
        Image.new("RGB", (20, 20)).save(tmp_path / "faces" / sub / "x.png")
    groups = V.folder_examples(tmp_path / "faces")
    assert sorted(groups) == ["faces/anime", "faces/photo"]
    assert V.folder_examples(tmp_path / "nowhere") == {}
    samples = V.sample_examples(model, n=2)
    assert len(samples) == len(model.domains) and len(samples["model samples: photo"]) == 2


# ------------------------------------------------------------------------------- the page


@pytest.fixture
def app(synth_tiny_model: Path, monkeypatch: pytest.MonkeyPatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(sys, "argv", ["streamlit_app.py", "--model", str(synth_tiny_model)])
    at = AppTest.from_file(str(APP), default_timeout=120)
    return at.run()


def _ok(at) -> None:  # noqa: ANN001
    assert not at.exception, [e.value for e in at.exception]


def _captions(at) -> list[str]:  # noqa: ANN001
    return [c for im in at.image for c in im.captions]


def _url(at, caption: str) -> str:  # noqa: ANN001
    for im in at.image:
        if caption in im.captions:
            return im.value[im.captions.index(caption)]
    raise AssertionError(f"no image captioned {caption!r} in {_captions(at)}")


def test_page_renders_with_a_model(app, model: Translator) -> None:
    _ok(app)
    assert not app.error, [e.value for e in app.error]
    view = app.session_state["view"]
    pixels = V.benchmark_examples(model.domains, model.resolution, n=1)["benchmark: photo"][0]
    expected = V.analyse(model, V.model_input(pixels.image(), model.resolution))
    # The source dataset defaults to the most probable one under the posterior.
    assert view["source"] == expected.most_probable(model.domains)
    src = view["source"]
    caps = _captions(app)
    assert "input" in caps and f"reconstruction ({src})" in caps
    for d in model.domains:
        if d != src:
            assert f"{src} → {d}" in caps
    assert any(u.endswith(".gif") for im in app.image for u in im.value)
    table = app.dataframe[0].value
    assert list(table["dataset"]) == model.domains
    np.testing.assert_allclose(table["posterior"], np.round(expected.posterior, 3))
    labels = app.selectbox(key="source").options
    assert all("p = " in o for o in labels)
    assert len(app.get("download_button")) >= 5


@pytest.mark.skipif("demo" not in shipped_models(), reason="the demo model is not shipped yet")
def test_page_renders_with_the_demo_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(sys, "argv", ["streamlit_app.py"])  # --model defaults to demo
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    demo = Translator.load("demo")
    src = at.session_state["view"]["source"]
    caps = _captions(at)
    assert f"reconstruction ({src})" in caps
    assert all(f"{src} → {d}" in caps for d in demo.domains if d != src)


def test_changing_source_alpha_and_seed_updates_outputs(app, model: Translator) -> None:
    first = app.session_state["view"]
    src = first["source"]
    other = next(d for d in model.domains if d != src)
    app.selectbox(key="source").set_value(other).run()
    _ok(app)
    view = app.session_state["view"]
    assert view["source"] == other and view["projections"] != first["projections"]
    assert f"{other} → {src}" in _captions(app)

    recon = _url(app, f"reconstruction ({other})")
    app.slider(key="alpha").set_value(0.0).run()
    _ok(app)
    assert app.session_state["view"]["alpha"] == 0.0
    # At strength 0 every projection is the reconstruction, byte for byte.
    for d in model.domains:
        if d != other:
            assert _url(app, f"{other} → {d}") == recon
    app.slider(key="alpha").set_value(1.0).run()
    assert app.session_state["view"]["projections"] == view["projections"]

    before = app.session_state["samples"]
    app.button(key="reseed").click().run()
    _ok(app)
    assert app.session_state["sample_seed"] == 1
    assert app.session_state["samples"] != before
    app.slider(key="temperature").set_value(0.3).run()
    assert app.session_state["samples"] != before


def test_a_slider_recomputes_only_what_depends_on_it(app, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"analyse": 0, "project_row": 0, "shared_samples": 0}
    for name in calls:
        real = getattr(V, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(V, name, counted)
    # A face no earlier test has seen, so no cache has it yet.
    face = np.random.default_rng(123).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    app.radio(key="input_kind").set_value("upload").run()
    app.checkbox(key="align_upload").uncheck()
    app.file_uploader(key="upload").set_value(("new.png", _png(Image.fromarray(face)), "image/png"))
    app.run()
    _ok(app)
    assert calls["analyse"] == 1 and calls["project_row"] == 1
    app.slider(key="alpha").set_value(0.35).run()
    assert calls["analyse"] == 1 and calls["project_row"] == 2
    n = calls["shared_samples"]
    app.slider(key="temperature").set_value(1.05).run()
    assert calls["analyse"] == 1 and calls["project_row"] == 2
    assert calls["shared_samples"] == n + 1


def test_a_corrupt_upload_shows_a_message(app) -> None:
    app.radio(key="input_kind").set_value("upload").run()
    app.file_uploader(key="upload").set_value(
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"x" * 99, "image/png")
    )
    app.run()
    _ok(app)
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and errors[0].startswith("broken.png: ")
    assert "input" not in _captions(app)  # no projections of a face that is not there
    # The samples still work.
    assert app.session_state["samples"]


def test_an_upload_without_a_findable_face_falls_back_with_a_notice(app) -> None:
    noise = np.random.default_rng(7).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    app.radio(key="input_kind").set_value("upload").run()
    app.file_uploader(key="upload").set_value(
        ("noise.jpg", _png(Image.fromarray(noise)), "image/jpeg")
    )
    app.run()
    _ok(app)
    assert not app.error
    notes = [w.value for w in app.warning]
    # Either dlib found no face, or dlib is not installed: a centred crop either way.
    assert any("centred crop" in n for n in notes), notes
    assert "input" in _captions(app)


def test_folder_input_and_bad_model(app, tmp_path: Path) -> None:
    for i in range(3):
        Image.new("RGB", (30, 30), (80 * i, 50, 200 - 60 * i)).save(tmp_path / f"f{i}.png")
    app.radio(key="input_kind").set_value("folder").run()
    app.text_input(key="folder").input(str(tmp_path)).run()
    _ok(app)
    assert app.selectbox(key="folder_index").options == ["f0.png", "f1.png", "f2.png"]
    first = app.session_state["view"]["input"]
    app.selectbox(key="folder_index").set_value(2).run()
    assert app.session_state["view"]["input"] != first

    app.text_input(key="folder").input(str(tmp_path / "nowhere")).run()
    _ok(app)
    assert any("nowhere" in e.value for e in app.error)

    app.text_input(key="model_path").input(str(tmp_path / "no-model")).run()
    _ok(app)
    assert any(e.value.startswith("could not load the model") for e in app.error)


def test_report_button_writes_and_links_the_report(
    app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not V.report_available():
        assert not app.expander
        pytest.skip("net2fair.report is not installed: the section is hidden")
    # L1 instead of LPIPS keeps the test fast; the page passes everything else.
    real = V.run_report
    monkeypatch.setattr(V, "run_report", lambda *a, **k: real(*a, **k, change="l1"))
    faces = tmp_path / "faces"
    faces.mkdir()
    for i in range(4):
        Image.new("RGB", (40, 40), (60 * i, 120, 90)).save(faces / f"{i}.png")
    app.text_input(key="report_folder").input(str(faces))
    app.text_input(key="report_out").input(str(tmp_path / "out")).run()
    app.button(key="run_report").click().run()
    _ok(app)
    assert not app.error, [e.value for e in app.error]
    html = tmp_path / "out" / "index.html"
    assert html.is_file()
    assert any(str(html) in s.value for s in app.success)

    app.text_input(key="report_folder").input(str(tmp_path / "missing")).run()
    app.button(key="run_report").click().run()
    _ok(app)
    assert any(e.value.startswith("report failed") for e in app.error)
