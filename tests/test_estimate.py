"""`chroma reproduce --estimate`: a paper-scale recipe's cost, measured in a few steps, projected over the paper's."""

import time

import pytest

from chroma import cli
from chroma.data import count_elements
from chroma.data.specs import resolve
from chroma.estimate import PhaseCost, StepTimer, along_batch, cost_table, estimate, paper_images
from chroma.recipes import load_experiment
from chroma.training import train
from test_runs import RECIPE


def test_the_papers_data_size_is_read_from_its_spec_without_the_data(tmp_path):
    assert paper_images("coco:/nowhere?split=train2017&take=8000") == 8000
    assert paper_images("coco:/nowhere?split=train2017") == 118_287  # all of COCO's train split
    assert paper_images("samples?skip=6") == 2  # data on disk is counted
    assert paper_images(str(tmp_path / "imagenet27" / "train")) is None  # not on this machine


def test_a_step_costs_the_median_gap_after_the_first_compiled_step():
    timer = StepTimer()
    for step, end in enumerate([30.0, 31.0, 32.5, 33.5]):  # the first step's 30 s include compiling
        timer.on_train_batch_end(step)
        timer.ends[-1] = end
    assert timer.seconds_per_step() == pytest.approx(1.0)  # the median of 1, 1.5 and 1
    timer.ends = [3.0]
    with pytest.raises(ValueError, match="at least 2 steps"):
        timer.seconds_per_step()


def test_estimate_measures_every_phase_and_projects_the_papers_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # One run with a pretraining phase: two phases, each measured (the next test measures a run without one).
    costs = estimate(load_experiment(str(RECIPE)), steps=2, run_keys=["regression_pretrained_gan"])
    assert [(cost.run, cost.phase) for cost in costs] == [
        ("tiny cGAN, generator pretrained by L1 (pretraining)", "pretraining"),
        ("tiny cGAN, generator pretrained by L1", "training"),
    ]
    pretraining, training = costs
    assert training.paper_steps == 12 * (4 // 2)  # 12 epochs of "samples?take=4" at batch 2
    assert pretraining.paper_steps == 1 * (2 // 2)  # its own 1 epoch of 2 images
    for cost in costs:
        assert cost.seconds_per_step > 0 and cost.peak_memory_bytes > 0
        assert cost.projected_seconds == pytest.approx(cost.paper_steps * cost.seconds_per_step)
        assert cost.images_per_second == pytest.approx(cost.batch_size / cost.seconds_per_step)
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran


def test_a_batch_too_large_for_this_machine_is_projected_from_two_smaller_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Only this test trains below the paper's batch: at 1, for real. The paper's batch of 2, trained for real by the
    # test above, is stepped here as train() steps it: once per batch of the stand-in photos measure() wrote.
    trained_at = []

    def train_below_the_papers_batch(run, settings, out_dir, runtime, callbacks=(), **options):
        trained_at.append(settings.batch_size)
        if settings.batch_size < 2:
            return train(run, settings, out_dir, runtime, callbacks=callbacks, **options)
        steps = count_elements(resolve(settings.train_data), batch_size=settings.batch_size, drop_remainder=True)
        for step in range(steps):
            time.sleep(0.001)
            for callback in callbacks:
                callback.on_train_batch_end(step)

    monkeypatch.setattr("chroma.estimate.train", train_below_the_papers_batch)
    (gan,) = estimate(load_experiment(str(RECIPE)), steps=2, run_keys=["gan"], measured_batch=1)
    assert trained_at == [1, 2]
    assert (gan.batch_size, gan.measured_batches, gan.paper_steps) == (2, (1, 2), 12 * (4 // 2))
    assert gan.projected_seconds == pytest.approx(gan.paper_steps * gan.seconds_per_step)
    assert "| 2 (from 1, 2) |" in cost_table([gan])
    # --set applies as in every command: 3 epochs instead of the recipe's 12.
    (as_is,) = estimate(load_experiment(str(RECIPE)), steps=2, run_keys=["gan"], measured_batch=2,
                        overrides={"epochs": 3})
    assert trained_at == [1, 2, 2] and as_is.measured_batches == ()  # twice 2 is more than the paper's batch
    assert as_is.paper_steps == 3 * (4 // 2)
    with pytest.raises(ValueError, match="at least 1 image"):
        estimate(load_experiment(str(RECIPE)), steps=2, measured_batch=0)


def test_projection_follows_the_line_through_two_batches_and_never_falls_below_the_larger():
    measured = [(4, 1.0, 3e9), (8, 1.5, 4e9)]  # (batch, seconds per step, peak bytes)
    assert along_batch(measured, 1, 256) == pytest.approx(1.5 + 248 * 0.5 / 4)
    assert along_batch(measured, 2, 256) == pytest.approx(4e9 + 248 * 1e9 / 4)
    assert along_batch([(4, 2.0, 3e9), (8, 1.9, 4e9)], 1, 256) == 1.9  # noise, not a faster bigger batch
    assert along_batch([(16, 2.0, 3e9)], 1, 16) == 2.0


def test_estimate_batch_needs_estimate(capsys):
    assert cli.main(["reproduce", "villarenteria", "--scale", "paper", "--estimate-batch", "8"]) == 2
    assert "give --estimate too" in capsys.readouterr().err


def test_cost_table_totals_the_known_phases():
    costs = [PhaseCost("A", "training", 16, 2.0, 8.0, 3e9, 1800, 3600.0),
             PhaseCost("B", "training", 16, 1.0, 16.0, 5e9, None, None)]
    table = cost_table(costs)
    assert "| A | training | 16 | 2.000 | 8.0 | 3.00 | 1,800 | 1.0 |" in table
    assert "| B | training | 16 | 1.000 | 16.0 | 5.00 | unknown (give COCO / DATA) | unknown |" in table
    assert table.splitlines()[-1] == "| **total** | | | | | 5.00 | | 1.0 (known phases) |"


def test_estimate_is_for_the_paper_scale(capsys):
    assert cli.main(["reproduce", "nampouri", "--estimate", "3"]) == 2
    assert "use it with --scale paper" in capsys.readouterr().err
