"""chroma.data: decoding bad inputs, sources, the tf.data pipeline and TFRecords."""

import json
import logging

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf
from PIL import Image

from chroma import data
from chroma.data import images
from chroma.recipes import load_experiment, settings_at
from conftest import colour_image, encode, gray_image, png_rgb48

SMALL = 32  # image size for pipeline tests: fast, and not a size any paper uses


def captioned(source):
    """The source with a caption naming each record, to check captions travel with images."""
    return source._replace(records=[r._replace(caption=f"caption of {r.name}") for r in source.records])


def chroma_warnings(caplog):
    return [r for r in caplog.records if r.name == "chroma" and r.levelno == logging.WARNING]


# --- samples ---------------------------------------------------------------


def test_samples_are_captioned_colour_photos():
    source = data.samples()
    assert [record.name for record in source.records] == list(data.SAMPLE_NAMES)
    assert len(source.records) == 8 and source.class_names == []
    assert len({record.caption for record in source.records}) == 8
    for record in source.records:
        rgb = record.load()
        assert rgb.dtype == np.uint8 and rgb.shape[2] == 3 and min(rgb.shape[:2]) >= 256
        assert max(rgb.shape[:2]) <= 1024  # retina (1411 px) is downscaled like any file
        assert not data.is_grayscale(rgb), record.name
        assert record.label == -1 and record.caption.strip() == record.caption != ""


def test_samples_by_name():
    assert [record.name for record in data.samples(["rocket", "chelsea"]).records] == ["rocket", "chelsea"]
    with pytest.raises(ValueError, match="unknown sample.*'camera'"):
        data.samples(["camera"])


# --- decoding --------------------------------------------------------------


def test_awkward_files_become_rgb(bad_image_folder):
    for name, is_gray in bad_image_folder.converted.items():
        rgb = data.load_rgb(bad_image_folder.root / name)
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, name
        assert data.is_grayscale(rgb) == is_gray, name


def test_unusable_files_raise_with_their_reason(bad_image_folder):
    for name, reason in bad_image_folder.unusable.items():
        with pytest.raises(data.UnreadableImage) as raised:
            data.load_rgb(bad_image_folder.root / name)
        assert raised.value.reason == reason, name


def test_bytes_decode_like_the_path(bad_image_folder):
    path = bad_image_folder.root / "cmyk.jpg"
    np.testing.assert_array_equal(data.load_rgb(path.read_bytes()), data.load_rgb(path))
    assert data.load_rgb(str(path)).shape == (48, 64, 3)


def test_cmyk_keeps_its_colours(bad_image_folder):
    cmyk = data.load_rgb(bad_image_folder.root / "cmyk.jpg").astype(float)
    assert np.abs(cmyk - colour_image()).mean() < 8


def test_sixteen_bit_images_are_scaled_not_clipped():
    ramp = gray_image()  # 0 .. 255
    sixteen = ramp.astype(np.uint16) * 257  # 0 .. 65535; clipping would saturate most of it
    from_png = data.load_rgb(encode(Image.fromarray(sixteen), "PNG"))  # Pillow mode I;16
    from_int32 = data.load_rgb(sixteen.astype(np.int32))  # Pillow mode I
    for rgb in (from_png, from_int32):
        np.testing.assert_array_equal(rgb, np.repeat(ramp[..., None], 3, axis=-1))
    rgb48 = np.zeros((16, 16, 3), np.uint16)
    rgb48[...] = (65535, 32896, 3000)
    assert data.load_rgb(png_rgb48(rgb48))[0, 0].tolist() == [255, 128, 11]


def test_transparency_is_composited_on_white():
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, :8] = (200, 0, 0, 255)  # opaque red
    rgba[:, 8:] = (0, 0, 0, 0)  # fully transparent black
    rgb = data.load_rgb(encode(Image.fromarray(rgba), "PNG"))
    assert rgb[0, 0].tolist() == [200, 0, 0] and rgb[0, 15].tolist() == [255, 255, 255]

    gray_alpha = Image.fromarray(rgba[..., 3]).convert("LA")
    gray_alpha.putalpha(Image.fromarray(rgba[..., 3]))
    assert data.load_rgb(encode(gray_alpha, "PNG"))[0, 15].tolist() == [255, 255, 255]

    palette = Image.fromarray(rgba[..., :3]).quantize(2)
    transparent_index = palette.getpixel((15, 0))
    rgb = data.load_rgb(encode(palette, "PNG", transparency=transparent_index))
    assert rgb[0, 15].tolist() == [255, 255, 255] and rgb[0, 0].tolist() != [255, 255, 255]


def test_exif_orientation_is_applied():
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :20] = (255, 0, 0)  # red left half
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    rgb = data.load_rgb(encode(Image.fromarray(wide), "JPEG", quality=95, exif=exif))
    assert rgb.shape == (40, 20, 3)
    assert rgb[2, 10, 0] > 200 and rgb[-3, 10, 0] < 50  # red is now on top


def test_animated_gif_gives_its_first_frame():
    red, blue = (Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255)))
    rgb = data.load_rgb(encode(red, "GIF", save_all=True, append_images=[blue]))
    assert rgb[8, 8].tolist() == [255, 0, 0]


def test_gray_arrays_are_replicated():
    rgb = data.load_rgb(gray_image())
    assert rgb.shape == (48, 64, 3)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()


def test_large_images_are_downscaled_keeping_aspect(bad_image_folder):
    wide = encode(Image.fromarray(colour_image(600, 1800)), "PNG")
    assert data.load_rgb(wide, max_side=300).shape == (100, 300, 3)
    assert data.load_rgb(bad_image_folder.root / "huge.jpg").shape == (1024, 1024, 3)


def test_pixel_bound_applies_after_jpeg_draft(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100 * 100)
    with pytest.raises(data.UnreadableImage, match="too large"):
        data.load_rgb(encode(Image.fromarray(colour_image(200, 200)), "PNG"))
    jpeg = encode(Image.fromarray(colour_image(800, 800)), "JPEG")
    # max_side 100: decoded at 1/8 scale, 100 x 100, within the bound.
    assert data.load_rgb(jpeg, max_side=100).shape == (100, 100, 3)
    # max_side 400: only 1/2 scale, 400 x 400, too many pixels.
    with pytest.raises(data.UnreadableImage, match="too large"):
        data.load_rgb(jpeg, max_side=400)


def test_decompression_bomb_error_becomes_unreadable(monkeypatch):
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow raises above 2x this
    with pytest.raises(data.UnreadableImage, match="too large"):
        data.load_rgb(encode(Image.fromarray(colour_image()), "PNG"))


# --- gray detection --------------------------------------------------------


def _jpeg_round_trip(rgb):
    return data.load_rgb(encode(Image.fromarray(rgb), "JPEG", quality=75))


def test_gray_photos_are_gray_even_as_tinted_jpegs():
    gray = np.repeat(gray_image(96, 128)[..., None], 3, axis=-1).astype(int)
    assert data.is_grayscale(gray.astype(np.uint8))
    tinted = np.clip(gray + (4, 0, -4), 0, 255).astype(np.uint8)  # a faint sepia cast
    assert data.is_grayscale(_jpeg_round_trip(tinted))


def test_a_small_coloured_object_makes_a_colour_photo():
    gray = np.repeat(gray_image(100, 100)[..., None], 3, axis=-1)
    with_object = gray.copy()
    with_object[10:20, 10:20] = (150, 125, 110)  # a muted skin tone on 1% of the pixels
    assert not data.is_grayscale(with_object)
    with_speck = gray.copy()
    with_speck[10:12, 10:12] = (200, 40, 40)  # 0.04%: noise, not colour
    assert data.is_grayscale(with_speck)
    assert not data.is_grayscale(colour_image())


# --- skip report -----------------------------------------------------------


def test_skip_report_summary():
    report = data.SkipReport(keep=2)
    assert report.summary() == "used all 0 images"
    report.seen = 120
    for name in ("a.jpg", "b.png", "x.jpg"):
        report.skip(name, "corrupt")
    report.skip("c.png", "too small")
    for name in ("d.jpg", "e.jpg"):
        report.drop_gray(name)
    assert (report.seen, report.skipped, report.dropped_gray) == (120, 4, 2)
    assert report.summary() == (
        "skipped 4 of 120 images (3 corrupt: a.jpg, b.png, ...; 1 too small: c.png); "
        "dropped 2 already-gray images (d.jpg, e.jpg)"
    )


def test_skip_report_round_trips_and_merges():
    report = data.SkipReport()
    report.seen = 3
    report.skip("a.jpg", "corrupt")
    report.drop_gray("g.jpg")
    copy = data.SkipReport.from_dict(report.to_dict())
    assert copy.summary() == report.summary()
    copy.merge(report)
    assert (copy.seen, copy.skipped, copy.dropped_gray) == (6, 2, 2)


# --- sources ---------------------------------------------------------------


def test_folder_lists_images_with_subfolder_labels(image_folder):
    (image_folder / ".hidden.jpg").write_bytes(b"macOS metadata")
    (image_folder / "birds").mkdir()  # an empty class still gets its label
    source = data.folder(image_folder)
    names = [record.name for record in source.records]
    assert names == ["cats/a.jpg", "cats/b.PNG", "dogs/c.jpeg", "dogs/gray.png", "loose.png"]
    assert source.class_names == ["birds", "cats", "dogs"]
    assert [record.label for record in source.records] == [1, 1, 2, 2, -1]
    assert all(record.path.endswith(record.name) for record in source.records)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.folder(tmp_path / "missing")
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match="no image files"):
        data.folder(tmp_path)


def test_coco_captions_and_dominant_labels(fake_coco):
    source = data.coco(fake_coco)
    assert source.class_names == ["person", "car", "dog"]
    assert [record.name for record in source.records][:2] == ["000000000001.png", "000000000002.png"]
    assert [record.caption for record in source.records][:3] == [f"first caption {i}" for i in (1, 2, 3)]
    # person by total area, dog by largest area, car by tie -> lower category id, then none.
    assert [record.label for record in source.records][:4] == [0, 2, 1, -1]
    assert data.load_rgb(source.records[0].path).shape == (32, 40, 3)


def test_coco_take_and_skip_are_seeded_and_disjoint(fake_coco):
    train = [record.name for record in data.coco(fake_coco, take=6).records]
    test = [record.name for record in data.coco(fake_coco, take=4, skip=6).records]
    assert len(train) == 6 and len(test) == 4
    assert set(train) | set(test) == {record.name for record in data.coco(fake_coco).records}
    assert train == [record.name for record in data.coco(fake_coco, take=6).records]
    assert train != [record.name for record in data.coco(fake_coco, take=6, seed=1).records]
    with pytest.raises(ValueError, match="has 10"):
        data.coco(fake_coco, take=5, skip=6)


def test_coco_without_one_annotation_file(fake_coco):
    (fake_coco / "annotations" / "captions_train2017.json").unlink()
    source = data.coco(fake_coco)
    assert len(source.records) == 10 and source.records[0].caption == "" and source.records[0].label == 0

    (fake_coco / "annotations" / "instances_train2017.json").rename(fake_coco / "instances_train2017.json")
    with pytest.raises(FileNotFoundError, match="no COCO annotations"):
        data.coco(fake_coco)


def test_coco_without_instances_has_no_labels(fake_coco, tmp_path):
    (fake_coco / "annotations" / "instances_train2017.json").unlink()
    moved = tmp_path / "elsewhere"
    (fake_coco / "annotations").rename(moved)
    source = data.coco(fake_coco, annotations_dir=moved)
    assert source.class_names == [] and {record.label for record in source.records} == {-1}
    assert source.records[0].caption == "first caption 1"


def test_coco_errors(fake_coco, tmp_path):
    with pytest.raises(FileNotFoundError, match="COCO root"):
        data.coco(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="val2017"):
        data.coco(fake_coco, split="val2017")


def test_open_source(image_folder, fake_coco):
    assert data.open_source("samples").name == "samples"
    assert len(data.open_source("samples", take=3, skip=2).records) == 3
    assert len(data.open_source(f"coco:{fake_coco}", take=2).records) == 2
    assert data.open_source(image_folder).class_names == ["cats", "dogs"]
    with pytest.raises(FileNotFoundError):
        data.open_source(image_folder / "missing")


# --- pipeline --------------------------------------------------------------


def test_make_dataset_skips_bad_files_and_reports_them_once(bad_image_folder, caplog):
    report = data.SkipReport()
    dataset = data.make_dataset(data.folder(bad_image_folder.root), SMALL, report=report)
    total = len(bad_image_folder.converted) + len(bad_image_folder.unusable)
    with caplog.at_level(logging.WARNING, logger="chroma"):
        assert len(list(dataset)) == len(bad_image_folder.converted)
        assert len(list(dataset)) == len(bad_image_folder.converted)  # a second pass
    assert (report.seen, report.skipped, report.dropped_gray) == (total, len(bad_image_folder.unusable), 0)
    summary = report.summary()
    assert summary.startswith(f"skipped {len(bad_image_folder.unusable)} of {total} images")
    for name, reason in bad_image_folder.unusable.items():
        assert name in summary and reason in summary
    logged = chroma_warnings(caplog)
    assert len(logged) == 1 and summary in logged[0].getMessage()


def test_make_dataset_drops_gray_images(bad_image_folder):
    report = data.SkipReport()
    dataset = data.make_dataset(data.folder(bad_image_folder.root), SMALL, drop_gray=True, report=report)
    gray = [name for name, is_gray in bad_image_folder.converted.items() if is_gray]
    assert len(list(dataset)) == len(bad_image_folder.converted) - len(gray)
    assert report.dropped_gray == len(gray) == 4
    assert all(name in report.summary() for name in gray)


def test_element_spec_shapes_and_ranges(image_folder):
    size = 40
    dataset = data.make_dataset(data.folder(image_folder), size, batch_size=2)
    assert dataset.element_spec == {
        "L": tf.TensorSpec((None, size, size, 1), tf.float32),
        "ab": tf.TensorSpec((None, size, size, 2), tf.float32),
        "caption": tf.TensorSpec((None,), tf.string),
        "label": tf.TensorSpec((None,), tf.int32),
        "name": tf.TensorSpec((None,), tf.string),
    }
    batches = list(dataset.as_numpy_iterator())
    names = sorted(name.decode() for batch in batches for name in batch["name"])
    assert names == sorted(record.name for record in data.folder(image_folder).records)
    assert [len(batch["label"]) for batch in batches] == [2, 2, 1]
    assert np.concatenate([batch["label"] for batch in batches]).tolist() == [0, 0, 1, 1, -1]
    lightness = np.concatenate([batch["L"] for batch in batches])
    ab = np.concatenate([batch["ab"] for batch in batches])
    assert -1 <= lightness.min() < lightness.max() <= 1
    assert -1 <= ab.min() and ab.max() <= 1 and np.abs(ab).max() > 0.2  # real colour
    assert data.count_elements(data.folder(image_folder), batch_size=2) == 3

    unbatched = data.make_dataset(data.folder(image_folder), size, batch_size=2, drop_remainder=True)
    assert unbatched.element_spec["L"].shape == (2, size, size, 1)


def test_preprocess_is_the_same_eagerly_and_in_tf_data():
    rgb = colour_image(48, 64)
    seed = tf.constant([7, 1], tf.int64)
    eager = data.preprocess(rgb, SMALL, flip=True, seed=seed)
    dataset = tf.data.Dataset.from_tensors(rgb)
    in_graph = next(iter(dataset.map(lambda image: data.preprocess(image, SMALL, flip=True, seed=seed))))
    assert eager[0].shape == (SMALL, SMALL, 1) and eager[1].shape == (SMALL, SMALL, 2)
    assert eager[0].dtype == eager[1].dtype == tf.float32
    for a, b in zip(eager, in_graph):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    white_l, white_ab = data.preprocess(np.full((10, 20, 3), 255, np.uint8), 16)
    np.testing.assert_allclose(white_l.numpy(), 1.0, atol=1e-3)
    np.testing.assert_allclose(white_ab.numpy(), 0.0, atol=1e-3)
    with pytest.raises(TypeError, match="uint8"):
        data.preprocess(rgb.astype(np.float32) / 255, SMALL)


def test_flip_is_seeded_and_mirrors(image_folder):
    source = data.folder(image_folder)

    def lightness(**options):
        return [element["L"] for element in data.make_dataset(source, SMALL, **options).as_numpy_iterator()]

    plain = lightness()
    flipped = lightness(flip=True, seed=3)
    np.testing.assert_array_equal(np.stack(flipped), np.stack(lightness(flip=True, seed=3)))
    mirrored = [np.allclose(f, p[:, ::-1]) and not np.allclose(f, p) for f, p in zip(flipped, plain)]
    unchanged = [np.allclose(f, p) for f, p in zip(flipped, plain)]
    assert all(m or u for m, u in zip(mirrored, unchanged))
    assert any(mirrored) and any(unchanged)


def test_shuffle_is_seeded_and_differs_between_epochs(image_folder):
    source = captioned(data.folder(image_folder))
    count = len(source.records)

    def captions(seed):
        dataset = data.make_dataset(source, 8, shuffle=True, seed=seed, repeat=True).take(2 * count)
        return [element["caption"].decode() for element in dataset.as_numpy_iterator()]

    run = captions(seed=0)
    assert run == captions(seed=0)
    first, second = run[:count], run[count:]
    assert sorted(first) == sorted(second) == sorted(record.caption for record in source.records)
    assert first != second


# --- TFRecords -------------------------------------------------------------


def test_tfrecords_round_trip(image_folder, tmp_path, capsys):
    (image_folder / "cats" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    source = captioned(data.folder(image_folder))
    out = tmp_path / "records"
    report = data.SkipReport()
    metadata = data.write_tfrecords(source, out, num_shards=2, report=report)
    assert "wrote 5 images to 2 shards" in capsys.readouterr().err
    assert (metadata["count"], metadata["num_gray"], metadata["class_names"]) == (5, 1, ["cats", "dogs"])
    assert sorted(path.name for path in out.iterdir()) == [
        "dataset.json",
        "part-00000-of-00002.tfrecord",
        "part-00001-of-00002.tfrecord",
    ]
    assert report.skipped == 1 and data.is_tfrecord_dir(out) and not data.is_tfrecord_dir(image_folder)

    dataset, read_back = data.read_tfrecords(out)
    assert read_back == metadata
    expected = {record.caption: record for record in source.records if record.name != "cats/broken.jpg"}
    elements = list(dataset.as_numpy_iterator())
    assert sorted(caption.decode() for _, caption, _, _ in elements) == sorted(expected)
    for rgb, caption, label, name in elements:
        record = expected[caption.decode()]
        assert label == record.label and name.decode() == record.name
        assert np.abs(rgb.astype(float) - record.load()).mean() < 3  # JPEG quality 95


def test_tfrecords_drop_gray_from_metadata(image_folder, tmp_path, caplog):
    out = tmp_path / "records"
    data.write_tfrecords(data.folder(image_folder), out, num_shards=3, progress=False)
    report = data.SkipReport()
    with caplog.at_level(logging.WARNING, logger="chroma"):
        dataset, _ = data.read_tfrecords(out, drop_gray=True, report=report)
    assert len(list(dataset)) == 4 and report.dropped_gray == 1
    assert "dogs/gray.png" in chroma_warnings(caplog)[0].getMessage()
    assert data.count_elements(out, drop_gray=True) == 4 and data.count_elements(out) == 5


def test_make_dataset_reads_tfrecords_like_a_source(image_folder, tmp_path):
    source = captioned(data.folder(image_folder))
    out = tmp_path / "records"
    data.write_tfrecords(source, out, num_shards=2, progress=False)
    from_source = data.make_dataset(source, SMALL, batch_size=2)
    from_records = data.make_dataset(out, SMALL, batch_size=2)
    assert from_records.element_spec == from_source.element_spec
    assert sum(len(batch["label"]) for batch in from_records.as_numpy_iterator()) == 5

    def captions(**options):
        dataset = data.make_dataset(str(out), SMALL, **options)
        return [element["caption"] for element in dataset.as_numpy_iterator()]

    assert captions(shuffle=True, seed=1) == captions(shuffle=True, seed=1)
    assert sorted(captions(shuffle=True, seed=1)) == sorted(captions())
    with pytest.raises(ValueError, match="not a TFRecord directory"):
        data.make_dataset(image_folder, SMALL)
    with pytest.raises(ValueError, match="holds TFRecords"):
        data.open_source(out)


def test_tfrecords_refuse_to_overwrite_and_notice_missing_shards(image_folder, tmp_path):
    out = tmp_path / "records"
    data.write_tfrecords(data.folder(image_folder), out, num_shards=2, progress=False)
    with pytest.raises(FileExistsError):
        data.write_tfrecords(data.folder(image_folder), out, progress=False)
    (out / "part-00001-of-00002.tfrecord").unlink()
    with pytest.raises(data.DamagedRecords, match=r"2 of 5 records \(40.0%\) are damaged or missing.*"
                                                  r"part-00001-of-00002.tfrecord: 2 lost, missing"):
        data.read_tfrecords(out)


def test_tfrecords_keep_colour_at_full_resolution(tmp_path):
    stripes = np.zeros((32, 32, 3), np.uint8)
    stripes[:, ::2] = (220, 30, 30)  # one-pixel red and blue stripes:
    stripes[:, 1::2] = (30, 30, 220)  # chroma subsampling would blur them to purple
    source = data.Source("stripes", [data.ImageRecord("stripes", image=stripes)], [])
    data.write_tfrecords(source, tmp_path / "records", num_shards=1, progress=False)
    dataset, _ = data.read_tfrecords(tmp_path / "records")
    rgb, _, _, _ = next(dataset.as_numpy_iterator())
    assert np.abs(rgb.astype(float) - stripes).mean() < 2


def test_tfrecord_captions_are_read_without_the_images(image_folder, tmp_path):
    source = captioned(data.folder(image_folder))
    data.write_tfrecords(source, tmp_path / "records", num_shards=2, progress=False)
    from chroma.data.tfrecords import read_captions

    captions = sorted(caption.decode() for caption in read_captions(tmp_path / "records").as_numpy_iterator())
    assert captions == sorted(record.caption for record in source.records if record.name != "cats/broken.jpg")


def test_coco_test_split_is_read_from_its_image_list_and_preferred_for_testing(fake_coco):
    assert data.coco_test_split(fake_coco) == "val2017"  # no test2017 here: val2017 stands in
    (fake_coco / "train2017").rename(fake_coco / "test2017")
    images = json.loads((fake_coco / "annotations" / "instances_train2017.json").read_text())["images"]
    (fake_coco / "annotations" / "image_info_test2017.json").write_text(json.dumps({"images": images}))
    assert data.coco_test_split(fake_coco) == "test2017"
    source = data.coco(fake_coco, "test2017")
    assert len(source.records) == 10 and {(record.caption, record.label) for record in source.records} == {("", -1)}
    nampouri = load_experiment("nampouri")
    assert settings_at(nampouri, "paper", coco=str(fake_coco)).eval_data == f"coco:{fake_coco}?split=test2017&take=2000"
