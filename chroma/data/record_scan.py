"""Reading TFRecord shards past damage: find each shard's damaged records, then read only the good ones.

A TFRecord file is a row of records, each framed as (tensorflow/core/lib/io/record_writer.h)

    length: uint64 little-endian | masked CRC-32C of length: uint32 | data | masked CRC-32C of data: uint32

TensorFlow's reader checks both CRCs and, at the first bad one, raises DataLossError and gives up on the rest
of the file. A shard truncated by a partial copy, or with bytes zeroed or flipped in transit, would end a run
there (or, under ignore_errors, silently lose every record after the damage).

scan_shard reads a shard with TensorFlow's reader, whose CRC checks run in C++ at disk speed, and where a
record is damaged finds where the next good one starts: right after it when its length field is intact,
else at the next offset whose eight length bytes match the CRC that follows them. The shard's good records
come out as segments (byte offset, count) that `good_records` reads with TensorFlow's reader started at each
offset. A record whose CRCs hold but whose content is not a chroma example with a JPEG of at most MAX_PIXELS
pixels is damaged too.
"""

import concurrent.futures
import os
import sys
import threading
import time
from typing import NamedTuple

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError

from chroma.limits import MAX_PIXELS

HEADER_BYTES = 12  # the length and its CRC
FOOTER_BYTES = 4  # the data's CRC
READ_BUFFER = 256 * 1024  # TFRecordDataset's default read buffer
SEARCH_WINDOW = 16 * 1024 * 1024  # bytes searched at once for the next record header
MAX_SCAN_THREADS = 8
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"


def _crc32c_table():
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), one byte at a time."""
    table = np.zeros(256, np.uint32)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table[byte] = crc
    return table


_CRC32C = _crc32c_table()


def header_offsets(window):
    """Offsets in `window` (uint8 array) where a record header could start: eight bytes followed by their
    masked CRC-32C, computed for every offset at once (a Python loop would take minutes over a large shard)."""
    count = len(window) - HEADER_BYTES + 1
    if count <= 0:
        return np.zeros(0, np.int64)
    crc = np.full(count, 0xFFFFFFFF, np.uint32)
    for index in range(8):
        crc = _CRC32C[(crc ^ window[index:index + count]) & 0xFF] ^ (crc >> 8)
    crc ^= np.uint32(0xFFFFFFFF)
    masked = ((crc >> 15) | (crc << 17)) + np.uint32(0xA282EAD8)  # record_writer.h's MaskedCrc, wrapping at 2**32
    stored = sum(window[8 + index:8 + index + count].astype(np.uint32) << (8 * index) for index in range(4))
    return np.flatnonzero(masked == stored)


def record_length(header):
    """The data length a 12-byte header gives, or None where its CRC does not hold."""
    window = np.frombuffer(header, np.uint8)
    if len(window) < HEADER_BYTES or not len(header_offsets(window[:HEADER_BYTES])):
        return None
    return int.from_bytes(header[:8], "little")


class ShardScan(NamedTuple):
    """One shard as read: its good records as (byte offset, count) runs, and where it is damaged.

    expected: the records dataset.json says it holds; gray: the good ones flagged already gray;
    damage: (byte offset, what) for each damaged spot (a missing shard's is (None, "missing")).
    """

    name: str
    path: str
    expected: int
    segments: tuple = ()
    gray: int = 0
    damage: tuple = ()

    @property
    def records(self):
        return sum(count for _, count in self.segments)

    @property
    def lost(self):
        """Records dataset.json counts that cannot be read (damaged, cut off or missing)."""
        return max(self.expected - self.records, 0)

    def describe_damage(self, limit=3):
        spots = [f"{what} at byte {offset}" if offset is not None else what for offset, what in self.damage]
        more = len(spots) - limit
        return "; ".join(spots[:limit]) + (f"; {more} more" if more > 0 else "")


class FolderScan(NamedTuple):
    """Every shard of a TFRecord folder as read, and what disagrees with its dataset.json."""

    path: str
    expected: int  # dataset.json's count
    shards: tuple  # ShardScan per shard dataset.json lists
    problems: tuple = ()  # disagreements between dataset.json and the folder, as sentences

    @property
    def records(self):
        return sum(shard.records for shard in self.shards)

    @property
    def gray(self):
        return sum(shard.gray for shard in self.shards)

    @property
    def lost(self):
        return sum(shard.lost for shard in self.shards)

    @property
    def damaged(self):
        return [shard for shard in self.shards if shard.damage]

    @property
    def lost_fraction(self):
        return self.lost / self.expected if self.expected else 0.0

    def segments(self):
        """(shard path, byte offset, count) for every run of good records, shard by shard."""
        return [(shard.path, offset, count) for shard in self.shards for offset, count in shard.segments]

    def table(self):
        """A markdown table of the damaged shards: expected, read, lost, and where."""
        lines = ["| shard | expected | read | lost | damage |", "|---|---:|---:|---:|---|"]
        lines += [f"| {shard.name} | {shard.expected} | {shard.records} | {shard.lost} | "
                  f"{shard.describe_damage(limit=len(shard.damage))} |" for shard in self.damaged]
        return "\n".join(lines)

    def summary(self):
        """One line: records read of expected, and the damaged shards."""
        line = f"{self.path}: read {self.records} of {self.expected} records in {len(self.shards)} shards"
        if self.damaged:
            line += f"; {self.lost} lost in {len(self.damaged)} damaged shard{'s' * (len(self.damaged) != 1)} ("
            line += "; ".join(f"{shard.name}: {shard.lost} lost, {shard.describe_damage()}" for shard in self.damaged)
            line += ")"
        return line + "".join(f"; {problem}" for problem in self.problems)


class DamagedRecords(ValueError):
    """More of a TFRecord folder is damaged than a run accepts; the message names the shards."""


def expected_counts(metadata):
    """Records per shard: dataset.json's shard_counts, or for folders built before it was written, the
    round-robin split write_tfrecords makes (record i goes to shard i mod n)."""
    shards = metadata["shards"]
    if "shard_counts" in metadata:
        return list(metadata["shard_counts"])
    count, total = len(shards), metadata["count"]
    return [total // count + (index < total % count) for index in range(count)]


def scan_folder(path, metadata, shard_pattern, *, decode=False, progress=False):
    """FolderScan of the TFRecord folder `path`, whose dataset.json holds `metadata`.

    Shards are scanned in parallel threads (TensorFlow's reader and JPEG decoder release the GIL). decode:
    also decode every image as training does (`chroma data verify`: about 4x as long as the checks
    without). progress: a progress bar of records on a terminal, else a line on stderr
    per shard done.
    """
    import keras  # for its progress bar, only where one is drawn

    path = str(path)
    names = list(metadata["shards"])
    expected = expected_counts(metadata)
    problems = []
    if sum(expected) != metadata["count"]:
        problems.append(f"dataset.json counts {metadata['count']} records but its shards {sum(expected)}")
    present = {os.path.basename(file) for file in tf.io.gfile.glob(tf.io.gfile.join(path, shard_pattern))}
    unlisted = sorted(present - set(names))
    if unlisted:
        problems.append(f"shards not listed in dataset.json: {', '.join(unlisted)}")

    bar = keras.utils.Progbar(metadata["count"], unit_name="record") if progress and sys.stdout.isatty() else None
    lock = threading.Lock()
    done = [0]
    shards_done = [0]

    def count_one():
        with lock:
            done[0] += 1
            if bar is not None and done[0] % 64 == 0:
                bar.update(done[0])

    def scan(index):
        shard_path = tf.io.gfile.join(path, names[index])
        if names[index] not in present:
            shard = ShardScan(names[index], shard_path, expected[index], damage=((None, "missing"),))
        else:
            shard = scan_shard(names[index], shard_path, expected[index], decode=decode, on_record=count_one)
        if progress and bar is None:
            with lock:
                shards_done[0] += 1
                print(f"{path}: {shards_done[0]}/{len(names)} shards read ({done[0]} records)", file=sys.stderr,
                      flush=True)
        return shard

    with concurrent.futures.ThreadPoolExecutor(max(1, min(MAX_SCAN_THREADS, len(names)))) as pool:
        shards = tuple(pool.map(scan, range(len(names))))
    problems += [f"{shard.name} holds {shard.records} records, dataset.json {shard.expected}"
                 for shard in shards if shard.records > shard.expected]
    if bar is not None:
        bar.update(done[0], finalize=True)
    return FolderScan(path, metadata["count"], shards, tuple(problems))


def scan_shard(name, path, expected, *, decode=False, on_record=None):
    """ShardScan of one TFRecord file: its runs of good records, and what is damaged where.

    on_record: called after each record read, good or not (a progress bar's count).
    """
    size = tf.io.gfile.stat(path).length
    segments, damage, gray = [], [], 0
    offset = 0  # where the next record starts
    with tf.io.gfile.GFile(path, "rb") as file:
        while offset < size:
            start, count = offset, 0
            try:
                for serialized in records_at(path, offset):
                    data = serialized.numpy()
                    end = offset + HEADER_BYTES + len(data) + FOOTER_BYTES
                    problem, is_gray = content_problem(data, decode)
                    if problem:  # intact framing, unusable content: the run ends before it and restarts after it
                        damage.append((offset, problem))
                        if count:
                            segments.append((start, count))
                        start, count = end, 0
                    else:
                        count, gray = count + 1, gray + is_gray
                    offset = end
                    if on_record:
                        on_record()
                next_offset = size
            except tf.errors.DataLossError:
                what, next_offset = _damage_at(file, offset, size)
                damage.append((offset, what))
            if count:
                segments.append((start, count))
            offset = next_offset
    records = sum(count for _, count in segments)
    if records < expected and not damage:  # a copy cut exactly between two records
        damage.append((size, f"ends {expected - records} records early"))
    return ShardScan(name, path, expected, tuple(segments), gray, tuple(damage))


def records_at(path, offset):
    """A dataset of the serialized records of the TFRecord file `path` from byte `offset` on."""
    return tf.data.Dataset.from_tensors((path, tf.cast(offset, tf.int64))).flat_map(_records_from)


def _records_from(path, offset):
    """records_at's reader, made only inside another dataset's function.

    tf.data.TFRecordDataset always starts at byte 0; its op's second version takes a start offset
    (tf.raw_ops.TFRecordDatasetV2), and from_variant makes a Dataset of it. That op's kernel in TensorFlow
    2.21 cannot write itself back as a graph (it drops the offset), which tf.data does to a dataset it
    iterates at the top level; inside a function it is already a graph node. A multi-worker strategy's
    sharding by file recognises the op, so it shards a dataset of (file, offset) as it does one of files.
    """
    variant = tf.raw_ops.TFRecordDatasetV2(filenames=path, compression_type="", buffer_size=READ_BUFFER,
                                           byte_offsets=offset)
    return tf.data.experimental.from_variant(variant, tf.TensorSpec([], tf.string))


def good_records(segments):
    """A dataset of `segments`' (file, byte offset, count) triples, as FolderScan.segments gives them; read
    with `read_segment`, it yields the good records only."""
    files, offsets, counts = zip(*segments) if segments else ((), (), ())
    return tf.data.Dataset.from_tensor_slices((tf.constant(files, tf.string), tf.constant(offsets, tf.int64),
                                               tf.constant(counts, tf.int64)))


def read_segment(path, offset, count):
    """The `count` serialized records of the file `path` from byte `offset` on, inside a function of
    interleave or flat_map (see _records_from)."""
    return _records_from(path, offset).take(count)


def _damage_at(file, offset, size):
    """(what, where the next record may start) for the damaged record at `offset` of the open `file`."""
    file.seek(offset)
    header = file.read(HEADER_BYTES)
    length = record_length(header)
    if length is None and len(header) == HEADER_BYTES:
        return "corrupted header", _next_header(file, offset + 1, size)
    end = offset + HEADER_BYTES + (length or 0) + FOOTER_BYTES
    if length is None or end > size:
        return "truncated", size  # the file ends inside this record: nothing follows it
    return "data CRC mismatch", end


def _next_header(file, start, size):
    """The first offset from `start` on where a record header with a length that fits in the file starts,
    or `size` if there is none."""
    position = start
    while position + HEADER_BYTES <= size:
        file.seek(position)
        window = np.frombuffer(file.read(SEARCH_WINDOW + HEADER_BYTES - 1), np.uint8)
        for candidate in header_offsets(window):
            length = int.from_bytes(window[candidate:candidate + 8].tobytes(), "little")
            if position + candidate + HEADER_BYTES + length + FOOTER_BYTES <= size:
                return position + int(candidate)
        position += SEARCH_WINDOW
    return size


# A chroma example's features and their kinds (chroma.data.tfrecords writes them; training parses them).
EXAMPLE_KINDS = {"image": "bytes_list", "caption": "bytes_list", "label": "int64_list", "name": "bytes_list",
                 "gray": "int64_list"}


def content_problem(serialized, decode):
    """(what is wrong or None, whether it is flagged gray) for one record whose CRCs hold: a chroma example
    whose image is a whole JPEG with a readable header, and with `decode`, one TensorFlow's decoder reads as
    training does. Without `decode` a JPEG damaged between its header and its end would pass, but its CRC
    would not: only bytes written so, which `write_tfrecords` reads back before keeping, could be."""
    example = tf.train.Example()
    try:
        example.ParseFromString(serialized)
    except DecodeError:
        return "not an example", False
    features = example.features.feature
    wrong = [key for key, kind in EXAMPLE_KINDS.items()
             if key not in features or features[key].WhichOneof("kind") != kind
             or len(getattr(features[key], kind).value) != 1]
    if wrong:
        return f"example without {', '.join(wrong)}", False
    image = features["image"].bytes_list.value[0]
    if not (image.startswith(JPEG_START) and image.endswith(JPEG_END)):
        return "image not a whole JPEG", False
    try:
        height, width, _ = (int(side) for side in tf.image.extract_jpeg_shape(image))
        if height * width > MAX_PIXELS:  # refused before decoding: a header can describe gigabytes
            return f"image of {width}x{height} pixels, over the limit of {MAX_PIXELS}", False
        if decode:
            tf.io.decode_jpeg(image, channels=3)
    except tf.errors.InvalidArgumentError:
        return "undecodable image", False
    return None, bool(features["gray"].int64_list.value[0])


def check_damage(scan, max_damaged):
    """Raises DamagedRecords when more than the fraction `max_damaged` of the folder's records are lost."""
    if scan.lost_fraction <= max_damaged:
        return
    shards = "; ".join(f"{shard.name}: {shard.lost} lost, {shard.describe_damage()}" for shard in scan.damaged)
    raise DamagedRecords(
        f"{scan.path}: {scan.lost} of {scan.expected} records ({scan.lost_fraction:.1%}) are damaged or missing, "
        f"over the limit of {max_damaged:.1%}: {shards}. 'chroma data verify {scan.path}' lists them all; "
        f"recopy or rebuild those shards, or train on the rest with the data spec "
        f"'{scan.path}?max_damaged={_rounded_up(scan.lost_fraction)}'"
    )


def _rounded_up(fraction):
    """A max_damaged value just above `fraction`, e.g. 0.125 -> 0.13."""
    return float(np.ceil(fraction * 100) / 100)


def scanned(path, metadata, shard_pattern):
    """scan_folder's CRC-only scan of the folder, made once per process for the folder's current files (a
    run reads its data several times: counting, training, validation, caches). Prints its summary when it
    took long or found the folder disagreeing with its dataset.json; the readers report damaged records."""
    stats = {file: tf.io.gfile.stat(file) for file in tf.io.gfile.glob(tf.io.gfile.join(str(path), shard_pattern))}
    key = (str(path), tuple(sorted((file, stat.length, stat.mtime_nsec) for file, stat in stats.items())))
    with _SCANS_LOCK:
        if key not in _SCANS:
            started = time.perf_counter()
            _SCANS[key] = scan = scan_folder(path, metadata, shard_pattern)
            seconds = time.perf_counter() - started
            if scan.problems or seconds > SLOW_SCAN_SECONDS:
                print(f"{scan.summary()} (checked in {seconds:.1f} s)", file=sys.stderr, flush=True)
        return _SCANS[key]


SLOW_SCAN_SECONDS = 5
_SCANS = {}
_SCANS_LOCK = threading.Lock()
