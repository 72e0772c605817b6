"""The Gradio app: handlers called directly, a live server driven by gradio_client, a real
browser (Playwright + Debian's Chromium), and a bounded load test on loopback."""
from __future__ import annotations

import concurrent.futures as cf
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import gradio as gr
import pytest

from conftest import MODELS, ROOT, SAMPLES

pytestmark = pytest.mark.slow
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run"]
ARTIFACTS = ROOT / "out" / "test-artifacts"


@pytest.fixture(scope="module")
def handlers():
    import app

    handlers = app.HepatoScanApp(app.PredictorPool(MODELS, 1), app.RequestFiles())
    yield handlers
    handlers.close()


def test_handler_segments_png_with_patient(handlers):
    out = handlers.segment_ui(str(SAMPLES / "lits117_z064_w350.png"), 0, 0, "Jürgen Müller", "", "", "", "", "", "",
                              progress=None)
    annotated, original, liver, tumor, table, lesions, summary, pdf, data, slider, state, archive, targets = out
    assert annotated[0].shape[:2] == original.shape == liver.shape
    assert "Pixel units only" in summary and "estimated" in summary
    assert Path(pdf).read_bytes()[:5] == b"%PDF-"
    assert data["liver_area_px"] > 1000 and data["lesion_count"] >= 1
    assert slider.visible is False and state is not None and targets.visible is False


def test_handler_follow_up_shows_the_change_and_the_targets_then_and_now(handlers, tmp_path):
    from test_followup import _treated

    out = handlers.segment_ui(str(_treated(tmp_path)), 0, 0, *[""] * 7, earlier=[str(SAMPLES / "lits117_volume.nii.gz")],
                              progress=None)
    summary, data, lesions, targets = out[6], out[8], out[5], out[12]
    assert "### Change since the earlier study" in summary and "partial response" in summary
    assert data["follow_up"]["response"] == "PR" and "target_pictures" not in data["follow_up"]
    assert lesions.headers[-1] == "Earlier study" and lesions.value["data"][0][-1] == "lesion 1 (target)"
    captions = [item["caption"] for item in targets.value]
    assert targets.visible and len(captions) == 4 and targets.value[0]["image"]["path"].endswith(".png")
    assert captions[0] == "Earlier: lesion 1, slice 88" and captions[1].startswith("Now: lesion 1, slice ")


def test_handler_follow_up_with_several_earlier_reports(handlers, predictor, tmp_path):
    """Several measurements.json chosen at once are several earlier studies (not one series): the
    nadir's history shows in the result."""
    from hepatoscan.pipeline import analyze, write_outputs
    from test_followup import _treated

    write_outputs(analyze(predictor, _treated(tmp_path)), tmp_path / "treated")
    write_outputs(analyze(predictor, SAMPLES / "lits117_volume.nii.gz"), tmp_path / "baseline")
    reports = [str(tmp_path / "baseline" / "measurements.json"), str(tmp_path / "treated" / "measurements.json")]
    out = handlers.segment_ui(str(SAMPLES / "lits117_volume.nii.gz"), 0, 0, *[""] * 7, earlier=reports, progress=None)
    summary, data = out[6], out[8]
    assert data["follow_up"]["response"] == "PD" and len(data["follow_up"]["history"]) == 3
    assert "| Study | Date | Sum of target diameters |" in summary and "progressive disease" in summary
    assert not out[12].visible  # no earlier CT, so no pictures of the targets then


def test_handler_shows_a_soft_image_warning_once_on_its_own_line(handlers, tmp_path):
    from PIL import Image, ImageFilter

    soft = tmp_path / "thumbnail.png"
    Image.open(SAMPLES / "lits117_z064_w350.png").filter(ImageFilter.GaussianBlur(2)).save(soft)
    summary, data = (lambda o: (o[6], o[8]))(handlers.segment_ui(str(soft), 0, 0, *[""] * 7, progress=None))
    assert summary.count("soft where the model sees it") == 1
    assert "\n\n**Warning:** The image is soft" in summary
    assert data["blur_effect"] > 0.6 and len(data["warnings"]) == 1
    sharp = handlers.segment_ui(str(SAMPLES / "lits117_z064_w350.png"), 0, 0, *[""] * 7, progress=None)
    assert "Warning" not in sharp[6] and sharp[8]["warnings"] == []


def test_handler_shows_a_note_as_a_note(handlers, tmp_path):
    """What was done with the input (an EXIF orientation applied) is a **Note**, not a **Warning**."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 8  # shown turned 90 degrees counter-clockwise
    turned = tmp_path / "phone.jpg"
    Image.open(SAMPLES / "lits117_z064_w350.png").transpose(Image.Transpose.ROTATE_270).save(
        turned, quality=95, exif=exif.tobytes())
    summary = handlers.segment_ui(str(turned), 0, 0, *[""] * 7, progress=None)[6]
    assert "\n\n**Note:** The file's EXIF orientation tag says the image is shown turned 90 degrees counter" in summary
    assert "Warning" not in summary


def test_handler_reads_the_image_as_asked(handlers, tmp_path):
    """The "Read the image" option: a mirrored slice read mirrored finds the liver, with a Note."""
    from PIL import Image

    flipped = tmp_path / "flipped.png"
    Image.open(SAMPLES / "lits117_z064_w350.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(flipped)
    plain = handlers.segment_ui(str(flipped), 0, 0, *[""] * 7, progress=None)
    asked = handlers.segment_ui(str(flipped), 0, 0, *[""] * 7, read_as="mirrored", progress=None)
    assert "No liver found" in plain[6] and "--read-as mirrored" in plain[6]
    assert asked[8]["read_as"] == "mirrored" and asked[8]["liver_area_px"] > 4000
    assert "\n\n**Note:** Read mirrored" in asked[6] and "Warning" not in asked[6]


def test_handler_volume_opens_on_largest_tumor_and_slides(handlers):
    out = handlers.segment_ui(str(SAMPLES / "lits117_volume.nii.gz"), 0, 0, *[""] * 7, progress=None)
    data, slider, state = out[8], out[9], out[10]
    assert data["slices"] == 128 and data["liver_volume_ml"] > 100
    assert slider.visible and slider.value == data["largest_tumor_slice"]
    assert slider.label == "Slice (0 at the feet; opens on the largest tumor; 128 slices)"
    views = handlers.show_slice(state, 10)
    assert views[1].shape == (128, 128)


def test_handler_keeps_the_volume_on_disk_for_its_slider(handlers, predictor):
    """The session keeps the result for its slider with the scan and masks memory-mapped from the
    request's folder, moved there after the response; the slider shows the same slices as a result
    kept in memory."""
    import numpy as np

    from hepatoscan.pipeline import analyze

    out = handlers.segment_ui(str(SAMPLES / "lits117_volume.nii.gz"), 0, 0, *[""] * 7, progress=None)
    state, folder = out[10], Path(out[7]).parent
    handlers.keeper.submit(lambda: None).result()  # the move queued before this one is done
    fresh = analyze(predictor, SAMPLES / "lits117_volume.nii.gz")
    for kept, in_memory in ((state.scan.pixels, fresh.scan.pixels), (state.segmentation.liver, fresh.segmentation.liver),
                            (state.segmentation.tumor, fresh.segmentation.tumor)):
        assert isinstance(kept, np.memmap) and Path(kept.filename).parent == folder
        assert kept.dtype == in_memory.dtype and np.array_equal(kept, in_memory)
    for z in (fresh.default_slice, 10):
        shown, expected = handlers.show_slice(state, z), fresh.views(z)
        assert np.array_equal(shown[1], expected["original"]) and np.array_equal(shown[0][0], expected["numbered"])
        assert np.array_equal(shown[0][1][1][0], expected["tumor_layer"])
        assert np.array_equal(shown[0][1][1][0] > 0, fresh.segmentation.tumor[z].astype(bool))


def test_overlay_layers_leave_the_lesion_numbers_readable(handlers):
    """The app's overlay draws each mask's colour over the numbered slice at the layer's opacity x
    0.85 (Gradio's AnnotatedImage): insides are translucent and contours solid, so the yellow lesion
    numbers under the tumor's red stay yellow; solid masks (the layers before) turned them red."""
    import numpy as np

    from hepatoscan.overlay import LIVER_RGB, MASK_LAYER_FILL, TUMOR_RGB

    out = handlers.segment_ui(str(SAMPLES / "lits117_volume.nii.gz"), 0, 0, *[""] * 7, progress=None)
    state = out[10]
    z = state.default_slice
    (base, layers) = handlers.show_slice(state, z)[0]
    liver, tumor = state.segmentation.liver[z].astype(bool), state.segmentation.tumor[z].astype(bool)
    (liver_layer, _), (tumor_layer, _) = layers
    assert set(np.unique(tumor_layer)) == {0, np.float32(MASK_LAYER_FILL), 1} and np.array_equal(tumor_layer > 0, tumor)
    assert not liver_layer[tumor & (tumor_layer < 1)].any()  # the tumor's inside is tinted once, in red
    assert (liver_layer[liver & ~tumor] > 0).all() and not liver_layer[~liver].any()

    def shown(liver_alpha, tumor_alpha):
        rgb = base.astype(np.float32)
        for alpha, colour in ((liver_alpha, LIVER_RGB), (tumor_alpha, TUMOR_RGB)):
            a = 0.85 * alpha[..., None]
            rgb = (1 - a) * rgb + a * np.array(colour, np.float32)
        return rgb

    def yellow(rgb):
        return int(((rgb[..., 0] > 200) & (rgb[..., 1] > 150) & (rgb[..., 2] < 90))[tumor].sum())

    numbers = yellow(base.astype(np.float32))
    assert numbers > 20  # the lesion numbers drawn inside the tumor
    assert yellow(shown(liver_layer, tumor_layer)) >= 0.6 * numbers  # those on a contour turn red
    assert yellow(shown(liver.astype(np.float32), tumor.astype(np.float32))) < 0.1 * numbers


def test_handler_masks_download_holds_the_volume_masks_in_the_input_geometry(handlers, tmp_path):
    import zipfile

    import nibabel as nib
    import numpy as np

    from hepatoscan.io.nifti import read_nifti

    out = handlers.segment_ui(str(SAMPLES / "lits117_volume.nii.gz"), 0, 0, *[""] * 7, progress=None)
    state, archive = out[10], out[11]
    assert Path(archive).name == "hepatoscan_lits117_volume_masks.zip"
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        z.extractall(tmp_path)
    assert {"lits117_volume/liver_mask.nii.gz", "lits117_volume/tumor_mask.nii.gz",
            "lits117_volume/measurements.json", "lits117_volume/overlay.png"} <= names
    liver_file = tmp_path / "lits117_volume" / "liver_mask.nii.gz"
    written, source = nib.load(str(liver_file)), nib.load(str(SAMPLES / "lits117_volume.nii.gz"))
    assert np.allclose(nib.as_closest_canonical(written).affine, nib.as_closest_canonical(source).affine)
    liver = read_nifti(written)[0]  # display axes, as the scan's
    assert np.array_equal(liver > 0, state.segmentation.liver > 0)


def test_handler_dicom_series_zip_download_holds_a_dicom_seg(handlers, tmp_path):
    """A zip of a DICOM series: the masks download holds segmentation.dcm, whose liver frames are the
    masks the page shows, slice by slice (the series is feet-first: stored flipped left-right)."""
    import zipfile

    import numpy as np
    import pytest

    hd = pytest.importorskip("highdicom", reason="highdicom (app profile) writes the DICOM SEG")
    from hepatoscan.io import load_scan
    from test_dicom_seg import _feet_first_series

    series = tmp_path / "ct"
    series.mkdir()
    uids = _feet_first_series(series, np.asarray(load_scan(SAMPLES / "lits117_volume.nii.gz").pixels)[56:72])
    with zipfile.ZipFile(tmp_path / "ct.zip", "w") as z:
        for f in sorted(series.iterdir()):
            z.write(f, f"ct/{f.name}")
    out = handlers.segment_ui(str(tmp_path / "ct.zip"), 0, 0, *[""] * 7, progress=None)
    state, archive = out[10], out[11]
    with zipfile.ZipFile(archive) as z:
        z.extract("ct/segmentation.dcm", tmp_path / "got")
    frames = hd.seg.segread(tmp_path / "got" / "ct" / "segmentation.dcm").get_pixels_by_source_instance(
        uids, segment_numbers=[1], assert_missing_frames_are_empty=True)[..., 0]
    assert frames.any() and np.array_equal(frames, np.asarray(state.segmentation.liver)[:, :, ::-1])


def test_handler_masks_download_of_a_png_has_its_masks_at_full_size(handlers, tmp_path):
    import zipfile

    import numpy as np
    from PIL import Image

    out = handlers.segment_ui(str(SAMPLES / "lits117_z064_w350.png"), 0, 0, *[""] * 7, progress=None)
    state, archive = out[10], out[11]
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path)
    liver = np.asarray(Image.open(tmp_path / "lits117_z064_w350" / "liver_mask.png"))
    assert liver.shape == (128, 128) and set(np.unique(liver)) == {0, 255}
    assert np.array_equal(liver > 0, state.segmentation.liver[0] > 0)


def test_handler_slice_spacing_gives_a_zip_of_png_slices_volumes_in_ml(handlers):
    out = handlers.segment_ui(str(SAMPLES / "lits117_w350_slices.zip"), 0.8, 2.5, *[""] * 7, progress=None)
    data, table = out[8], out[4].value
    assert data["liver_volume_ml"] == pytest.approx(data["liver_voxels"] * 0.8 * 0.8 * 2.5 / 1000, rel=1e-3)
    rows = dict(map(tuple, table["data"]))
    assert rows["Liver volume"].endswith(" mL")


def test_handler_zip_of_separate_images_shows_them_image_by_image(handlers, tmp_path):
    import zipfile

    names = ["lits117_z040_w400.png", "lits117_z096_w1500.png", "lits117_z064_w350.png"]
    archive = tmp_path / "three.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for n in names:
            z.write(SAMPLES / n, n)
    out = handlers.segment_ui(str(archive), 0, 0, *[""] * 7, progress=None)
    data, slider, summary, state = out[8], out[9], out[6], out[10]
    assert data["separate_images"] and data["images_with_liver"] == 3 and "liver_volume_ml" not in data
    assert summary.startswith("### Result\n3 separate images") and slider.label.startswith("Image (")
    rows = [list(r) for r in handlers.show_slice(state, 1)[4].value["data"]]
    assert ["Image 1: file", sorted(names)[1]] in rows  # natural name order, not the archive's


def test_handler_images_of_different_sizes_chosen_together_are_shown_each_at_its_size(handlers, tmp_path):
    """Screenshots of different sizes chosen at once: separate images, each shown at its own size."""
    from PIL import Image

    files = [SAMPLES / "lits117_z040_w400.png", tmp_path / "big.png"]
    Image.open(SAMPLES / "lits117_z064_w350.png").resize((300, 260)).save(files[1])
    out = handlers.segment_ui([str(f) for f in files], 0, 0, *[""] * 7, progress=None)
    data, summary, state = out[8], out[6], out[10]
    assert data["separate_images"] and data["images_with_liver"] == 2
    assert "**Note:** The 2 images differ in size (128 x 128 to 300 x 260 px)" in summary
    shown = {k: handlers.show_slice(state, k)[1].shape for k in (0, 1)}  # the "Original" view
    assert shown == {0: (260, 300), 1: (128, 128)}  # natural name order: big.png first


def _extensionless_series(folder: Path, first: int = 56, n: int = 16) -> list[Path]:
    """LiTS 117 slices as a DICOM series whose files have no extension (IM000, IM001, ...), as
    PACS exports and CDs name them."""
    import numpy as np

    from hepatoscan.io import load_scan
    from test_dicom_seg import _feet_first_series

    folder.mkdir()
    _feet_first_series(folder, np.asarray(load_scan(SAMPLES / "lits117_volume.nii.gz").pixels)[first:first + n])
    files = []
    for f in sorted(folder.iterdir()):
        files.append(f.rename(f.with_suffix("")))
    return files


def test_handler_says_when_the_typed_patient_is_not_the_dicom_headers(handlers, tmp_path):
    """A DICOM series' header names its patient (Müller^Jürgen): the same name typed another way is
    no warning, another name is, in the result and the PDF."""
    import subprocess

    files = _extensionless_series(tmp_path / "series", n=4)
    same = handlers.segment_ui([str(f) for f in files], 0, 0, "jürgen müller", *[""] * 6, progress=None)
    other = handlers.segment_ui([str(f) for f in files], 0, 0, "Anna Schmidt", *[""] * 6, progress=None)
    said = "The name typed (Anna Schmidt) is not the one in the DICOM header (Müller, Jürgen)"
    assert "DICOM header (" not in same[6] and f"**Warning:** {said}" in other[6]
    # whose study it is, as its header says, shown either way
    assert "**Patient (DICOM header):** Name Müller, Jürgen · Study date 2024-01-31" in same[6]
    text = subprocess.run(["pdftotext", other[7], "-"], capture_output=True, text=True, check=True).stdout
    assert said in " ".join(text.split())


def test_handler_several_files_chosen_together_are_one_series(handlers, tmp_path):
    """The files of a DICOM series chosen together (no zip), with no extension: segmented as the
    series they are, with the same masks as their folder; one of them alone is one slice."""
    import numpy as np

    from hepatoscan.io import load_scan

    files = _extensionless_series(tmp_path / "series")
    out = handlers.segment_ui([str(f) for f in files], 0, 0, *[""] * 7, progress=None)
    state, summary = out[10], out[6]
    assert summary.startswith("### Result\n**Patient (DICOM header):** Name Müller, Jürgen · Study date 2024-01-31"
                              "\n\nVolume of 16 slices. Liver ")
    assert state.scan.name == "upload_16_files" and Path(out[7]).name == "hepatoscan_upload_16_files.pdf"
    assert np.array_equal(state.scan.pixels, load_scan(tmp_path / "series").pixels)
    single = handlers.segment_ui([str(files[8])], 0, 0, *[""] * 7, progress=None)[10]
    assert single.scan.n_slices == 1 and single.scan.is_hu


def test_handler_compares_with_a_reference_and_outlines_it(handlers):
    """A reference segmentation given in the page: the result says the agreement in a table, the
    overlay gains the reference's outlines as two more labelled layers (on every slice the slider
    shows), and the JSON carries the figures."""
    out = handlers.segment_ui(str(SAMPLES / "lits117_volume.nii.gz"), 0, 0, *[""] * 7, "",
                              str(SAMPLES / "lits117_segmentation.nii.gz"), progress=None)
    annotated, summary, data, state = out[0], out[6], out[8], out[10]
    assert "### Agreement with the reference" in summary and "| Liver | 615.4 mL |" in summary
    lesions, measurements = out[5].value, out[4].value
    assert lesions["headers"][-1] == "Reference lesion" and {r[-1].split(" ")[0] for r in lesions["data"]} == {"matches", "overlaps", "none"}
    assert any(r[0].endswith("liver Dice vs reference") for r in measurements["data"])
    assert [label for _, label in annotated[1]] == ["Liver", "Tumor", "Reference liver", "Reference tumor"]
    assert annotated[1][2][0].max() == 1.0 and data["agreement"]["liver_dice"] > 0.9
    other = handlers.show_slice(state, 40)[0]
    assert len(other[1]) == 4 and other[1][2][0].any()
    plain = handlers.segment_ui(str(SAMPLES / "lits117_z064_w350.png"), 0, 0, *[""] * 7, progress=None)
    assert len(plain[0][1]) == 2 and "Agreement" not in plain[6] and "agreement" not in plain[8]


def test_a_failed_pdf_keeps_the_result(handlers, monkeypatch):
    """A PDF that cannot be made (a full disk, a bug in the report) no longer discards the
    segmentation: the page shows the result and the masks download, with a warning, and no PDF."""
    from hepatoscan.pipeline import Result

    def broken(self, patient=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Result, "report_pdf", broken)
    out = handlers.segment_ui(str(SAMPLES / "lits117_z064_w350.png"), 0, 0, *[""] * 7, progress=None)
    summary, pdf, archive = out[6], out[7], out[11]
    assert summary.startswith("### Result\nLiver ") and "the PDF report could not be made" in summary
    assert pdf is None and Path(archive).exists()


def test_handler_zip_of_png_slices_is_one_study(handlers, sample_volume):
    """The sample zip: slices 32 to 95 of LiTS 117 exported at W350/L50 as PNGs, one series."""
    from conftest import dice

    out = handlers.segment_ui(str(SAMPLES / "lits117_w350_slices.zip"), 0, 0, *[""] * 7, progress=None)
    data, slider, state, summary = out[8], out[9], out[10], out[6]
    assert data["slices"] == 64 and data["format"] == "png-stack" and data["lesion_count"] >= 1
    assert data["liver_voxels"] > 0 and data["liver_volume_ml"] is None  # no spacing in PNGs
    assert slider.visible and "8-bit images" in summary and slider.label.startswith("Slice (file-name order; ")
    labels = sample_volume[2]
    z = slider.value  # opens on the slice with the largest tumor
    views = handlers.show_slice(state, z)
    liver, table = views[2], views[4].value
    assert liver.shape == (128, 128) and dice(liver > 0, labels[32 + z] >= 1) > 0.9
    assert [f"Slice {z}: file", f"lits117_w350/IM{32 + z}.png"] in [list(r) for r in table["data"]]


def test_handler_png_slices_chosen_together_are_the_zip_they_came_from(handlers, tmp_path):
    """The 64 PNG slices of the sample zip chosen as 64 files (in shuffled order): one stack, in
    natural file-name order, with the zip's masks."""
    import random
    import zipfile

    import numpy as np

    with zipfile.ZipFile(SAMPLES / "lits117_w350_slices.zip") as z:
        z.extractall(tmp_path / "slices")
    files = [str(f) for f in (tmp_path / "slices").rglob("*.png")]
    random.Random(0).shuffle(files)
    chosen = handlers.segment_ui(files, 0, 0, *[""] * 7, progress=None)[10]
    zipped = handlers.segment_ui(str(SAMPLES / "lits117_w350_slices.zip"), 0, 0, *[""] * 7, progress=None)[10]
    assert chosen.scan.n_slices == 64 and chosen.scan.source_format == "png-stack"
    assert np.array_equal(np.asarray(chosen.segmentation.liver), np.asarray(zipped.segmentation.liver))


@pytest.mark.parametrize("content,name,words", [
    (b"", "empty.png", "empty"),
    (b"not an image at all", "x.png", "not a readable image"),
    (b"PK\x03\x04broken", "series.zip", "corrupt"),
])
def test_handler_bad_input_is_a_gradio_error(handlers, tmp_path, content, name, words):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(gr.Error) as info:
        handlers.segment_ui(str(f), 0, 0, *[""] * 7, progress=None)
    assert words in str(info.value)
    with pytest.raises(gr.Error, match="No file uploaded"):
        handlers.segment_ui(None, 0, 0, *[""] * 7, progress=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HEPATOSCAN_PORT=str(port))
    proc = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("app exited: " + proc.stdout.read())
            time.sleep(0.5)
    yield url, proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


def _segment(client, path, spacing=0):
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), spacing, "Jürgen Müller", "", "", "", "", "", "",
                          api_name="/segment")


def test_api_png_and_volume(client):
    data, pdf, overlay = _segment(client, SAMPLES / "lits117_z080_w350.png", 0.8)
    assert data["summary"]["units"] == "mm" and data["summary"]["liver_area_mm2"] > 1000
    assert data["summary"]["lesion_count"] >= 1
    assert Path(pdf).read_bytes()[:5] == b"%PDF-" and Path(overlay).read_bytes()[:4] == b"\x89PNG"
    data, pdf, _ = _segment(client, SAMPLES / "lits117_volume.nii.gz")
    assert data["summary"]["slices"] == 128 and data["summary"]["tumor_volume_ml"] > 1
    assert Path(pdf).read_bytes()[:5] == b"%PDF-"


def test_api_segment_series_gives_ml_for_a_zip_of_png_slices(client):
    """/segment_series is /segment plus the slice spacing, which PNG slices do not carry: the sample
    zip's liver comes in mL, voxels x pixel spacing squared x slice spacing."""
    from gradio_client import handle_file

    data, pdf, _ = client.predict(handle_file(str(SAMPLES / "lits117_w350_slices.zip")), 0.8, 2.0,
                                  *[""] * 7, api_name="/segment_series")
    s = data["summary"]
    assert s["spacing_mm"] == [2.0, 0.8, 0.8]
    assert s["liver_volume_ml"] == pytest.approx(s["liver_voxels"] * 0.8 * 0.8 * 2.0 / 1000, rel=1e-3)
    assert Path(pdf).read_bytes()[:5] == b"%PDF-"


def test_api_segment_masks_returns_a_label_png_per_slice_and_nifti_masks(client, sample_volume, tmp_path):
    """/segment_masks is /segment_series plus the masks: for the sample zip of PNG slices, one label
    PNG per file (0 background, 1 liver, 2 tumor) that matches the ground truth, and NIfTI masks
    with the given spacing."""
    import zipfile

    import nibabel as nib
    import numpy as np
    from gradio_client import handle_file
    from PIL import Image

    from conftest import dice

    data, pdf, overlay, masks = client.predict(handle_file(str(SAMPLES / "lits117_w350_slices.zip")), 0.8, 2.0,
                                               *[""] * 7, api_name="/segment_masks")
    assert data["summary"]["liver_volume_ml"] > 100 and Path(pdf).read_bytes()[:5] == b"%PDF-"
    with zipfile.ZipFile(masks) as z:
        z.extractall(tmp_path)
    folder = tmp_path / "lits117_w350_slices"
    labels = np.stack([np.asarray(Image.open(folder / "masks" / f"IM{k}.png")) for k in range(32, 96)])
    assert set(np.unique(labels)) == {0, 1, 2}
    assert dice(labels >= 1, sample_volume[2][32:96] >= 1) > 0.9
    assert np.allclose(nib.load(str(folder / "liver_mask.nii.gz")).header.get_zooms(), (0.8, 0.8, 2.0))


def test_api_segment_study_reads_a_series_and_the_image_as_asked(client, tmp_path):
    """/segment_study is /segment_masks plus the page's Series field and Read the image option: a
    phase of a study zip chosen by a word of its description; a mirrored slice read mirrored gives
    the original's liver; an unknown reading or series is a clear error."""
    import numpy as np
    from gradio_client import handle_file
    from PIL import Image

    from hepatoscan.io import load_scan
    from test_io import _study_zip

    hu = np.maximum(np.asarray(load_scan(SAMPLES / "lits117_volume.nii.gz").pixels), -1024).astype(np.int16)
    (tmp_path / "study.zip").write_bytes(_study_zip([(5, "Arterial", hu[40:52]), (6, "Portal venous", hu[56:76])]))
    study = handle_file(str(tmp_path / "study.zip"))
    data, pdf, _, masks = client.predict(study, 0, 0, "arterial", "", *[""] * 7, api_name="/segment_study")
    assert data["summary"]["slices"] == 12 and Path(masks).stat().st_size > 0
    assert Path(pdf).read_bytes()[:5] == b"%PDF-"
    data, _, _, _ = client.predict(study, 0, 0, "", "as given", *[""] * 7, api_name="/segment_study")
    assert data["summary"]["slices"] == 20 and data["summary"]["read_as"] is None  # the largest series
    original, _, _ = _segment(client, SAMPLES / "lits117_z080_w350.png")
    mirrored = tmp_path / "mirrored.png"
    Image.fromarray(np.asarray(Image.open(SAMPLES / "lits117_z080_w350.png"))[:, ::-1]).save(mirrored)
    data, _, _, _ = client.predict(handle_file(str(mirrored)), 0, 0, "", "mirrored", *[""] * 7,
                                   api_name="/segment_study")
    assert data["summary"]["read_as"] == "mirrored"
    assert data["summary"]["liver_area_px"] == original["summary"]["liver_area_px"] > 1000
    with pytest.raises(Exception, match="cannot read the image as 'sideways'"):
        client.predict(handle_file(str(mirrored)), 0, 0, "", "sideways", *[""] * 7, api_name="/segment_study")
    with pytest.raises(Exception, match="no series match 'delayed'"):
        client.predict(study, 0, 0, "delayed", "", *[""] * 7, api_name="/segment_study")


def test_api_follow_up(client, tmp_path):
    """/follow_up is /segment_study with an earlier study after the file: the JSON gains follow_up,
    the PDF its section; no earlier study, or an image as one, is said, never a traceback."""
    from gradio_client import handle_file

    from test_followup import _treated
    from test_report import _tool

    later, earlier = handle_file(str(_treated(tmp_path))), handle_file(str(SAMPLES / "lits117_volume.nii.gz"))
    data, pdf, overlay, masks = client.predict(later, earlier, 0, 0, "", "", *[""] * 7, api_name="/follow_up")
    f = data["follow_up"]
    assert f["response"] == "PR" and f["sum_of_diameters_mm"][1] < 0.7 * f["sum_of_diameters_mm"][0]
    assert f["baseline_name"] == "lits117_volume" and Path(masks).stat().st_size > 0
    text = subprocess.run([_tool("pdftotext"), pdf, "-"], capture_output=True, text=True, check=True).stdout
    assert "Change since the earlier study" in text and "partial response" in " ".join(text.split())
    with pytest.raises(Exception, match="No earlier study given"):
        client.predict(later, None, 0, 0, "", "", *[""] * 7, api_name="/follow_up")
    data, _, _, _ = client.predict(later, handle_file(str(SAMPLES / "lits117_z080_w350.png")), 0, 0, "", "",
                                   *[""] * 7, api_name="/follow_up")
    assert "follow_up" not in data and data["summary"]["lesion_count"] > 10
    assert [w for w in data["summary"]["warnings"] if w.startswith("Not compared with the earlier study")]


def test_api_bad_input_and_server_keeps_serving(client, tmp_path):
    from gradio_client import handle_file

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    with pytest.raises(Exception, match="not a readable image"):
        client.predict(handle_file(str(bad)), 0, *[""] * 7, api_name="/segment")
    data, _, _ = _segment(client, SAMPLES / "lits117_z064_w350.png")
    assert data["summary"]["liver_area_px"] > 0


def test_api_takes_a_dicom_file_without_an_extension(client, tmp_path):
    """Most DICOM files have no extension; the upload used to refuse them ("Invalid file type")."""
    from gradio_client import handle_file

    files = _extensionless_series(tmp_path / "series", n=3)
    data, _, _ = client.predict(handle_file(str(files[1])), 0, *[""] * 7, api_name="/segment")
    assert data["summary"]["liver_area_mm2"] > 0 and data["summary"]["units"] == "mm"
    assert data["patient_warnings"] == []
    data, _, _ = client.predict(handle_file(str(files[1])), 0, "Anna Schmidt", *[""] * 6, api_name="/segment")
    assert data["patient_warnings"] == ["The name typed (Anna Schmidt) is not the one in the DICOM header "
                                        "(Müller, Jürgen): check that this is the right patient's study, or "
                                        "correct the typed details."]


def test_api_compare_with_a_reference_segmentation(client, tmp_path):
    """/compare: the sample slice against its expert mask gives Dice in the JSON and a PDF section;
    a reference of the wrong size is a clear error and the server goes on."""
    from gradio_client import handle_file
    from PIL import Image

    data, pdf, overlay = client.predict(handle_file(str(SAMPLES / "lits117_z080_w350.png")),
                                        handle_file(str(SAMPLES / "lits117_z080_w350_mask.png")), "", 0.8, 0,
                                        *[""] * 7, api_name="/compare")
    a = data["agreement"]
    assert a["liver_dice"] >= 0.9 and a["tumor_dice"] > 0.3 and a["unit"] == "mm²"
    assert a["reference"] == "lits117_z080_w350_mask.png" and a["lesions"]["reference_lesions"] >= 1
    assert Path(pdf).read_bytes()[:5] == b"%PDF-" and Path(overlay).read_bytes()[:4] == b"\x89PNG"
    half = tmp_path / "half.png"
    Image.open(SAMPLES / "lits117_z080_w350_mask.png").resize((64, 64), Image.NEAREST).save(half)
    with pytest.raises(Exception, match="the reference is 64 x 64 but the image is 128 x 128"):
        client.predict(handle_file(str(SAMPLES / "lits117_z080_w350.png")), handle_file(str(half)), "", 0, 0,
                       *[""] * 7, api_name="/compare")
    data, _, _ = _segment(client, SAMPLES / "lits117_z064_w350.png")
    assert "agreement" not in data and data["summary"]["liver_area_px"] > 0


def test_load_20_concurrent_then_memory_after_100(client, server):
    """20 users at once get the same answer, and 100 more requests leave the server's memory flat.
    One gradio_client Client per thread, as separate users have: one Client shared by parallel
    threads races in gradio_client 2.7.2 itself (CancelledError in stream_sse_v1plus, once in a CI run)."""
    import threading

    from gradio_client import Client

    png = SAMPLES / "lits117_z064_w350.png"
    expected = _segment(client, png)[0]["summary"]
    users = threading.local()

    def request(_):
        if not hasattr(users, "client"):
            users.client = Client(server[0], verbose=False)
        return _segment(users.client, png)[0]["summary"]

    with cf.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(request, range(20)))
    assert all(r["liver_area_px"] == expected["liver_area_px"] and r["tumor_area_px"] == expected["tumor_area_px"]
               for r in results)
    pid = server[1].pid
    before = _rss_mb(pid)
    with cf.ThreadPoolExecutor(4) as pool:
        list(pool.map(request, range(100)))
    grown = _rss_mb(pid) - before
    print(f"server RSS grew {grown:.1f} MB over 100 requests")
    assert grown <= 50


@pytest.mark.browser
def test_browser_upload_segment_and_screenshot(server):
    from playwright.sync_api import sync_playwright

    if not Path("/usr/bin/chromium").exists():
        pytest.fail("Debian's /usr/bin/chromium is missing: make test installs it (scripts/system_deps.sh)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        for width, height, tag in [(1280, 800, "desktop"), (390, 844, "phone")]:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(server[0])
            page.locator("#upload input[type=file]").set_input_files(str(SAMPLES / "lits117_z080_w350.png"))
            page.locator("#segment").click()
            page.locator("#pdf a").first.wait_for(timeout=90_000)
            page.locator("#overlay img").first.wait_for(timeout=30_000)
            summary = page.locator("#summary").inner_text()
            assert "Liver" in summary and "lesion" in summary and "Pixel units only" in summary
            assert page.get_by_text("liver area").first.is_visible()
            page.screenshot(path=str(ARTIFACTS / f"app_{tag}.png"), full_page=True)
            page.close()
        browser.close()
    assert (ARTIFACTS / "app_desktop.png").stat().st_size > 20_000


@pytest.mark.browser
def test_browser_volume_slider_shows_another_slice(server):
    """A volume opens on its largest tumor; a click on the slider, once the session's result has moved
    to disk, shows another slice: its number in the slider and in the measurement table."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server[0])
        page.locator("#upload input[type=file]").set_input_files(str(SAMPLES / "lits117_volume.nii.gz"))
        page.locator("#segment").click()
        page.locator("#pdf a").first.wait_for(timeout=90_000)
        opened = int(page.locator("#slice input[type=number]").input_value())
        assert page.get_by_text(f"Slice {opened}: liver area").is_visible()
        time.sleep(2)  # the result's arrays move to disk after the response
        page.locator("#slice input[type=range]").scroll_into_view_if_needed()
        track = page.locator("#slice input[type=range]").bounding_box()
        page.mouse.click(track["x"] + track["width"] * 0.3, track["y"] + track["height"] / 2)
        page.wait_for_function("(z) => document.querySelector('#slice input[type=number]').value != z", arg=str(opened))
        shown = int(page.locator("#slice input[type=number]").input_value())
        page.get_by_text(f"Slice {shown}: liver area").wait_for(timeout=30_000)
        assert shown != opened and not page.get_by_text(f"Slice {opened}: liver area").is_visible()
        browser.close()


@pytest.mark.browser
def test_browser_several_dicom_files_chosen_at_once(server, tmp_path):
    """The file picker takes all the files of a series at once (no zip, no extension): one volume."""
    from playwright.sync_api import sync_playwright

    files = _extensionless_series(tmp_path / "series")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server[0])
        page.locator("#upload input[type=file]").set_input_files([str(f) for f in files])
        page.locator("#segment").click()
        page.locator("#pdf a").first.wait_for(timeout=90_000)
        assert "Volume of 16 slices" in page.locator("#summary").inner_text()
        page.screenshot(path=str(ARTIFACTS / "app_several_files.png"), full_page=True)
        browser.close()


@pytest.mark.browser
def test_browser_follow_up_with_an_earlier_study(server, tmp_path):
    """The earlier study goes in its accordion: the result gains the change and the target lesions'
    pictures then and now."""
    from playwright.sync_api import sync_playwright

    from test_followup import _treated

    later = _treated(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server[0])
        page.locator("#upload input[type=file]").set_input_files(str(later))
        page.get_by_text("Compare with an earlier study").click()
        page.locator("#earlier input[type=file]").set_input_files(str(SAMPLES / "lits117_volume.nii.gz"))
        page.locator("#segment").click()
        page.locator("#pdf a").first.wait_for(timeout=90_000)
        summary = page.locator("#summary").inner_text()
        assert "Change since the earlier study" in summary and "partial response" in summary
        page.locator("#targets").get_by_text("Earlier: lesion 1, slice 88").first.wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "app_follow_up.png"), full_page=True)
        browser.close()


@pytest.mark.browser
def test_browser_an_example_runs_on_click(server):
    """The examples feed the multiple-file upload: a click segments the sample slice."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server[0])
        page.get_by_text("lits117_z064_w350.png").first.click()
        page.locator("#pdf a").first.wait_for(timeout=90_000)
        assert page.locator("#summary").inner_text().startswith("Result\n\nLiver ")
        assert not page.locator("#reference").is_visible()  # no reference: its box stays shut
        # The last example compares the volume with its expert segmentation: the reference's box
        # opens to show the file used, and the result gains the agreement and the outlines' legend.
        page.get_by_text("lits117_segmentation.nii.gz").first.click()
        page.get_by_text("Agreement with the reference").first.wait_for(timeout=90_000)
        page.locator("#reference").get_by_text("lits117_segmentation").wait_for(timeout=10_000)  # name, size
        assert page.locator("#overlay").get_by_text("Reference tumor").is_visible()
        browser.close()


def test_handler_series_field_chooses_a_phase_of_a_study(handlers, tmp_path):
    """The page's series field picks a phase of a study zip by a word of its description; a word
    no series has is a gr.Error that lists the study's series."""
    import numpy as np

    from hepatoscan.io import load_scan
    from test_io import _study_zip

    hu = np.maximum(np.asarray(load_scan(SAMPLES / "lits117_volume.nii.gz").pixels), -1024).astype(np.int16)
    (tmp_path / "study.zip").write_bytes(_study_zip([(5, "Arterial", hu[40:52]), (6, "Portal venous", hu[56:76])]))
    default = handlers.segment_ui(str(tmp_path / "study.zip"), 0, 0, *[""] * 7, progress=None)
    arterial = handlers.segment_ui(str(tmp_path / "study.zip"), 0, 0, *[""] * 7, series=" arterial ", progress=None)
    assert default[8]["slices"] == 20 and "2 series found" in default[6]
    assert arterial[8]["slices"] == 12 and "series found" not in arterial[6]
    with pytest.raises(gr.Error, match="no series match 'delayed'.*Arterial"):
        handlers.segment_ui(str(tmp_path / "study.zip"), 0, 0, *[""] * 7, series="delayed", progress=None)
