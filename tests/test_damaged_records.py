"""Damaged TFRecord shards, as transfers and partial copies leave them: every reader goes past their damaged
records and counts them by shard, a mostly damaged folder is refused before training, `chroma data verify`
tables them, and `chroma data build` keeps no shard that does not read back."""

import json
import os
import shutil

import pytest
import tensorflow as tf

from chroma import cli, data
from chroma.data.tfrecords import read_captions
from chroma.recipes import load_experiment, select_runs
from chroma.training import train
from test_runs import RECIPE

HEADER_AND_FOOTER = 16  # a record's length, the length's CRC and the data's CRC


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The 8 bundled photos in 3 shards of 3, 3 and 2 records."""
    folder = tmp_path_factory.mktemp("built") / "records"
    data.write_tfrecords(data.samples(), folder, num_shards=3, max_side=48, progress=False)
    return folder


def shards(folder):
    return sorted(folder.glob("part-*.tfrecord"))


def record_offsets(path):
    """Where each record of an undamaged TFRecord file starts."""
    blob, offsets = path.read_bytes(), []
    while not offsets or offsets[-1] < len(blob):
        at = offsets[-1] + HEADER_AND_FOOTER + int.from_bytes(blob[offsets[-1]:offsets[-1] + 8], "little") if offsets else 0
        offsets.append(at)
    return offsets[:-1]


def names_by_shard(folder):
    parse = lambda serialized: tf.io.parse_single_example(serialized, {"name": tf.io.FixedLenFeature([], tf.string)})
    return [[example["name"].decode() for example in tf.data.TFRecordDataset(str(path)).map(parse).as_numpy_iterator()]
            for path in shards(folder)]


@pytest.fixture
def damaged(built, tmp_path):
    """A copy of `built` with the middle record of the first two shards and the end of the last damaged:
    one bit of the first record's data flipped, zeros over the second's header, the third shard cut inside
    its second record. Returns (folder, {shard name: the damage the readers should report}, lost names)."""
    folder = tmp_path / "damaged"
    shutil.copytree(built, folder)
    first, second, third = shards(folder)
    offsets = [record_offsets(path) for path in (first, second, third)]
    flipped = offsets[0][1] + 12 + 100
    with first.open("r+b") as file:
        file.seek(flipped)
        byte = file.read(1)[0]
        file.seek(flipped)
        file.write(bytes([byte ^ 0x10]))
    with second.open("r+b") as file:
        file.seek(offsets[1][1] + 2)
        file.write(b"\0" * 40)
    os.truncate(third, offsets[2][1] + 500)
    expected = {
        first.name: f"data CRC mismatch at byte {offsets[0][1]}",
        second.name: f"corrupted header at byte {offsets[1][1]}",
        third.name: f"truncated at byte {offsets[2][1]}",
    }
    lost = {names[1] for names in names_by_shard(built)}
    return folder, expected, lost


def test_reading_a_damaged_folder_yields_every_good_record_and_counts_the_damaged_by_shard(damaged, built):
    folder, expected, lost = damaged
    allowed = data.TfrecordFolder(str(folder), max_damaged=0.4)
    report = data.SkipReport()
    names = [element["name"].decode() for element in data.make_dataset(allowed, 16, report=report).as_numpy_iterator()]
    everything = {name for shard_names in names_by_shard(built) for name in shard_names}
    assert sorted(names) == sorted(everything - lost)  # records after a damaged one are read too
    assert data.count_elements(allowed) == 5 and data.count_elements(allowed, batch_size=2, drop_remainder=True) == 2
    assert len(list(read_captions(allowed))) == 5
    assert report.skipped == 3
    for shard, damage in expected.items():
        assert f"1 unreadable in {shard} ({damage})" in report.summary()


def test_training_reads_past_damaged_records_and_a_mostly_damaged_folder_stops_it_first(damaged, tmp_path, capsys):
    folder, expected, _ = damaged
    run, = select_runs(load_experiment(str(RECIPE)), ["gan"])
    settings = load_experiment(str(RECIPE)).SCALES["smoke"]._replace(epochs=1)
    with pytest.raises(data.DamagedRecords) as refusal:
        train(run, settings._replace(train_data=str(folder)), tmp_path / "refused", verbose=0)
    assert "3 of 8 records (37.5%) are damaged or missing, over the limit of 1.0%" in str(refusal.value)
    assert all(f"{shard}: 1 lost, {damage}" in str(refusal.value) for shard, damage in expected.items())
    assert f"'{folder}?max_damaged=0.38'" in str(refusal.value)
    assert not (tmp_path / "refused" / "checkpoints").exists()  # stopped before training

    spec = f"{folder}?max_damaged=0.38"
    train(run, settings._replace(train_data=spec, eval_data=spec), tmp_path / "trained", verbose=0)
    end_of_pass = capsys.readouterr().err.splitlines()[-1]
    assert "1 epochs in" in end_of_pass and "skipped 3 of 8 images" in end_of_pass, end_of_pass
    assert all(f"1 unreadable in {shard} ({damage})" in end_of_pass for shard, damage in expected.items())
    assert json.loads((tmp_path / "trained" / "run.json").read_text())["steps_per_epoch"] == 5 // 2
    with pytest.raises(ValueError, match="max_damaged .* from 0 to 1"):
        data.specs.resolve(f"{folder}?max_damaged=2")


def test_data_verify_tables_the_damaged_shards_and_exits_1(damaged, built, capsys):
    folder, expected, _ = damaged
    assert cli.main(["data", "verify", str(built)]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [f"{built}: read 8 of 8 records in 3 shards", "all well"]

    assert cli.main(["data", "verify", str(folder)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{folder}: read 5 of 8 records in 3 shards; 3 lost in 3 damaged shards")
    for shard, damage in expected.items():
        assert f"| {shard} | {3 if shard != shards(folder)[-1].name else 2} | " in out
        assert f" | 1 | {damage} |" in out.split(shard)[-1].splitlines()[0]


def test_an_image_that_does_not_decode_is_damage_too(built, tmp_path, capsys):
    """A record whose CRCs hold but whose JPEG is broken inside (written so: only verify decodes every image)."""
    folder = tmp_path / "records"
    shutil.copytree(built, folder)
    first = shards(folder)[0]
    records = [tf.train.Example.FromString(record.numpy()) for record in tf.data.TFRecordDataset(str(first))]
    records[0].features.feature["image"].bytes_list.value[0] = b"\xff\xd8" + b"\x00" * 64 + b"\xff\xd9"
    with tf.io.TFRecordWriter(str(first)) as writer:
        for example in records:
            writer.write(example.SerializeToString())
    assert cli.main(["data", "verify", str(folder)]) == 1
    assert f"| {first.name} | 3 | 2 | 1 | undecodable image at byte 0 |" in capsys.readouterr().out
    assert data.count_elements(data.TfrecordFolder(str(folder), max_damaged=0.2)) == 7


def test_data_build_keeps_no_shard_that_does_not_read_back(monkeypatch, tmp_path):
    """A copy to storage that comes back short (as a partial upload to gs:// would) leaves no TFRecord folder."""
    written = tf.io.TFRecordWriter

    def cut_short(path, *options):
        writer = written(path, *options)
        close = writer.close

        def close_and_cut():
            close()
            os.truncate(path, os.path.getsize(path) - 100)

        writer.close = close_and_cut
        return writer

    monkeypatch.setattr(tf.io, "TFRecordWriter", cut_short)
    out = tmp_path / "records"
    with pytest.raises(data.DamagedRecords, match="do not read back, so they were removed.*truncated at byte"):
        data.write_tfrecords(data.samples(), out, num_shards=2, max_side=32, progress=False)
    assert list(out.iterdir()) == []
