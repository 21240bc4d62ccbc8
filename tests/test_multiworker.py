"""Training on several machines (MultiWorkerMirroredStrategy), proven by worker processes on this one.

The `clusters` fixture starts tests/multiworker_worker.py as two workers on
loopback (TF_CONFIG, free ports), once as they run uninterrupted, once killed
and restarted, and once alone as the single-process reference; the tests read
what they wrote. `pytest -m multiworker` runs these alone.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from chroma.data import make_dataset
from chroma.data.specs import resolve
from chroma.data.tfrecords import write_tfrecords
from chroma.training import read_history
from chroma.training.hardware import is_chief, worker_count, write_dir

WORKER = Path(__file__).parent / "multiworker_worker.py"
BATCH = 2  # per worker: a global batch of 4, the tiny recipe's 4 training images, one step per epoch
EPOCHS = 3
KILLED_EPOCHS = 6
RUN = Path("tiny", "smoke", "gan")
TIMEOUT = 300  # seconds for one cluster's run, on a loaded machine

# One xdist worker runs them all, so the fixture's processes start once.
pytestmark = [pytest.mark.multiworker, pytest.mark.xdist_group("multiworker")]
TRAINS_CLUSTERS = pytest.mark.slow("three trainings of two worker processes each, on loopback: a minute and a half")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class Worker:
    """One process of tests/multiworker_worker.py: its own TF_CONFIG (None: no cluster), TMPDIR, report and log."""

    def __init__(self, root, name, runs, epochs, batch_size, tfrecords, tf_config=None):
        self.tmp, self.report, self.log = root / f"{name}.tmp", root / f"{name}.json", root / f"{name}.log"
        self.tmp.mkdir()
        env = {**os.environ, "TMPDIR": str(self.tmp), "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("TF_CONFIG", None)
        if tf_config is not None:
            env["TF_CONFIG"] = json.dumps(tf_config)
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(WORKER), *map(str, (runs, epochs, batch_size, tfrecords, self.report))],
                env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)

    def finish(self, timeout=TIMEOUT):
        """Waits for a clean exit; fails with the end of the log otherwise."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        assert code == 0, f"{self.log.name} exited {code}:\n{self.log.read_text()[-3000:]}"
        return self

    def text(self):
        return self.log.read_text()


def cluster(root, name, runs, epochs, tfrecords):
    """Two workers on loopback training into `runs`; worker 0 is the chief."""
    workers = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    return [Worker(root, f"{name}{index}", runs, epochs, BATCH, tfrecords,
                   {"cluster": workers, "task": {"type": "worker", "index": index}}) for index in range(2)]


def latest_checkpoint_epoch(run_dir):
    state = run_dir / "checkpoints" / "checkpoint"
    found = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', state.read_text()) if state.exists() else None
    return int(found.group(1)) if found else 0


def shard_names(tfrecords):
    """{name of an image: the TFRecord file that holds it}."""
    return {tf.train.Example.FromString(record.numpy()).features.feature["name"].bytes_list.value[0].decode(): path.name
            for path in sorted(tfrecords.glob("*.tfrecord")) for record in tf.data.TFRecordDataset(str(path))}


@pytest.fixture(scope="session")
def clusters(tmp_path_factory):
    """Runs the three trainings (about a minute and a half on 2 cores) and returns where each wrote."""
    root = tmp_path_factory.mktemp("multiworker")
    tfrecords = root / "tfrecords"
    write_tfrecords(resolve("samples?take=4"), tfrecords, num_shards=2, progress=False)
    workers = []
    try:
        # The reference trains while the first cluster does: it shares nothing with it.
        workers.append(reference := Worker(root, "reference", root / "reference", EPOCHS, 2 * BATCH, tfrecords))
        workers += (uninterrupted := cluster(root, "worker", root / "runs", EPOCHS, tfrecords))
        for worker in (*uninterrupted, reference):
            worker.finish()

        workers += (killed := cluster(root, "killed", root / "killed", KILLED_EPOCHS, tfrecords))
        deadline = time.monotonic() + TIMEOUT
        while latest_checkpoint_epoch(root / "killed" / RUN) < 2:
            assert time.monotonic() < deadline and killed[0].process.poll() is None, killed[0].text()[-3000:]
            time.sleep(0.1)
        killed[1].process.kill()
        # The chief's collectives stop once the coordination service misses worker 1's heartbeats (10 s).
        survivor_code = killed[0].process.wait(timeout=TIMEOUT)
        killed_at = latest_checkpoint_epoch(root / "killed" / RUN)
        workers += (restarted := cluster(root, "restarted", root / "killed", KILLED_EPOCHS, tfrecords))
        for worker in restarted:
            worker.finish()
    finally:
        for worker in workers:
            worker.process.kill()  # a no-op for those that exited
            worker.process.wait()
    return {"root": root, "tfrecords": tfrecords, "workers": uninterrupted, "reference": reference,
            "killed": killed, "survivor_code": survivor_code, "killed_at": killed_at, "restarted": restarted}


@TRAINS_CLUSTERS
def test_only_the_chief_writes_the_run_directory(clusters):
    runs = clusters["root"] / "runs"
    chief, other = clusters["workers"]
    run_dir = runs / RUN
    for logs in ("train", "validation", "samples"):
        # TensorBoard files are named after the process that writes them.
        (events,) = (run_dir / "logs" / logs).iterdir()
        assert events.name.split(".")[-3] == str(chief.process.pid), events.name
    assert len(read_history(run_dir)["g_loss"]) == EPOCHS
    with (run_dir / "history.csv").open() as history:
        assert len(history.readlines()) == 1 + EPOCHS  # one row per epoch: nobody else appended
    assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == [
        "checkpoint", *(f"ckpt-{epoch}.{suffix}" for epoch in (EPOCHS - 1, EPOCHS)
                        for suffix in ("data-00000-of-00001", "index"))]
    assert (run_dir / "best.weights.h5").is_file()
    for result in ("results.md", "results.csv", "gan_losses.png", "samples.png"):
        assert (runs / "tiny" / "smoke" / result).is_file(), result
    assert (runs / "RESULTS.md").is_file()
    # The other worker wrote the same files to temporary directories (hardware.write_dir), and removed them.
    assert not list(other.tmp.glob("chroma-worker-*"))
    assert "tiny cGAN: 3 epochs" in other.text()


@TRAINS_CLUSTERS
def test_the_global_batch_is_the_per_worker_batch_times_the_workers(clusters):
    written = json.loads((clusters["root"] / "runs" / RUN / "run.json").read_text())
    assert (written["workers"], written["replicas"], written["global_batch_size"]) == (2, 2, 2 * BATCH)
    assert written["steps_per_epoch"] == 1  # 4 images, one global batch
    for worker in clusters["workers"]:
        report = json.loads(worker.report.read_text())
        assert report["workers"] == 2
        assert all(len(batch) == BATCH for batch in report["decoded"] + report["tfrecords"])


@TRAINS_CLUSTERS
def test_each_worker_reads_its_own_shard(clusters):
    chief, other = (json.loads(worker.report.read_text()) for worker in clusters["workers"])
    assert (chief["chief"], other["chief"]) == (True, False)
    # Decoded photos, sharded by data: each global batch split between the workers, as one process reads it.
    reference = json.loads(clusters["reference"].report.read_text())
    assert len(chief["decoded"]) == len(other["decoded"]) == len(reference["decoded"]) == 1
    for mine, theirs, whole in zip(chief["decoded"], other["decoded"], reference["decoded"]):
        assert not set(mine) & set(theirs)
        assert sorted(mine + theirs) == whole
    # TFRecords, sharded by file: each worker reads all of one file's images and none of the other's.
    files = shard_names(clusters["tfrecords"])
    for report in (chief, other):
        names = [name for batch in report["tfrecords"] for name in batch]
        assert len({files[name] for name in names}) == 1
        assert sorted(names) == sorted(name for name in files if files[name] == files[names[0]])
    assert files[chief["tfrecords"][0][0]] != files[other["tfrecords"][0][0]]


@TRAINS_CLUSTERS
def test_two_workers_train_as_one_process_on_the_global_batch(clusters):
    multiworker = clusters["root"] / "runs" / RUN / "checkpoints"
    reference = tf.train.load_checkpoint(str(clusters["root"] / "reference" / RUN / "checkpoints" / f"ckpt-{EPOCHS}"))
    trained = tf.train.load_checkpoint(str(multiworker / f"ckpt-{EPOCHS}"))
    before = tf.train.load_checkpoint(str(multiworker / f"ckpt-{EPOCHS - 1}"))
    names = [name for name in trained.get_variable_to_shape_map() if name.startswith("model/")
             and trained.get_variable_to_dtype_map()[name].is_floating]
    assert len(names) >= 10  # both networks' weights and batch-norm statistics
    worst = max(float(np.abs(trained.get_tensor(name) - reference.get_tensor(name)).max()) for name in names)
    moved = max(float(np.abs(trained.get_tensor(name) - before.get_tensor(name)).max()) for name in names)
    assert moved > 1e-3  # the last step moved the weights...
    assert worst < 1e-5  # ...as far on two workers of 2 images as on one process of 4


@TRAINS_CLUSTERS
def test_killing_a_worker_and_restarting_both_resumes_from_the_last_checkpoint(clusters):
    assert clusters["survivor_code"] != 0  # the chief stopped, rather than wait forever for its peer
    killed_at = clusters["killed_at"]
    assert 2 <= killed_at < KILLED_EPOCHS
    chief, other = clusters["restarted"]
    for worker in (chief, other):
        assert f"resumed after epoch {killed_at} from" in worker.text()
    # Killed, worker 1 left behind the temporary directory it wrote its copy of the run to; restarted, it removed it.
    (left,) = clusters["killed"][1].tmp.glob("chroma-worker-*")
    assert (left / "history.csv").is_file() and (left / "checkpoints" / "checkpoint").is_file()
    assert not list(other.tmp.glob("chroma-worker-*"))
    run_dir = clusters["root"] / "killed" / RUN
    assert latest_checkpoint_epoch(run_dir) == KILLED_EPOCHS
    assert len(read_history(run_dir)["g_loss"]) == KILLED_EPOCHS
    assert (clusters["root"] / "killed" / "tiny" / "smoke" / "results.md").is_file()


def test_make_dataset_says_how_workers_shard_it(tmp_path):
    policy = tf.data.experimental.AutoShardPolicy
    write_tfrecords(resolve("samples?take=2"), tmp_path, num_shards=2, progress=False)
    for source, expected in ((resolve("samples?take=2"), policy.DATA), (tmp_path, policy.FILE)):
        for repeat in (False, True):
            dataset = make_dataset(source, 16, batch_size=2, flip=True, shuffle=True, repeat=repeat)
            assert dataset.options().experimental_distribute.auto_shard_policy == expected


def test_a_dropped_iterator_leaves_the_order_of_the_next_alone():
    """Sharding by data needs every worker to read the records in one order, whatever iterators came before
    (fit under a strategy makes one to build the model, and drops it after a batch)."""

    def first_passes(dataset, count=3):
        batches = iter(dataset)
        return [[name.decode() for name in next(batches)["name"].numpy()] for _ in range(count)]

    dataset = make_dataset(resolve("samples?take=4"), 16, batch_size=4, shuffle=True, repeat=True, seed=3)
    fresh = first_passes(make_dataset(resolve("samples?take=4"), 16, batch_size=4, shuffle=True, repeat=True, seed=3))
    dropped = iter(dataset)
    next(dropped)
    time.sleep(0.5)  # let it prefetch a few passes ahead
    del dropped
    assert first_passes(dataset) == fresh
    assert len({tuple(names) for names in fresh}) > 1  # each pass has its own order


def test_on_one_machine_this_process_is_the_chief_and_writes_the_run_directory(tmp_path):
    strategy = tf.distribute.get_strategy()
    assert is_chief(strategy) and is_chief() and worker_count(strategy) == 1
    with write_dir(tmp_path / "run", strategy) as files:
        assert files == tmp_path / "run" and files.is_dir()
