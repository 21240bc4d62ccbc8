"""`chroma leaderboard`: every trained run of a scale beside baseline0 and gray on one evaluation set, with bootstrap
intervals, on a runs root of tiny runs written by hand."""

import json
import re

import keras
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from chroma import cli, evaluation
from chroma.data.specs import dataset_from_spec
from chroma.leaderboard import (BASELINE0, GRAY, METRICS, fid, fid_interval, in_shared_span, leaderboard,
                                mean_interval, resample_indices, score_colorizer)
from chroma.metrics import LPIPS
from chroma.reports import MOSAIC_CELL_WIDTH, MOSAIC_COLUMNS
from helpers import tiny_generator

RESOLUTION = 32  # the smallest side LPIPS' AlexNet takes is 31
EVAL_DATA = "samples?skip=2"  # six photos, enough that the intervals depend on the draws
BASELINE_DATA = "samples?take=2"
TRAINED = {"nampouri: U-Net cGAN": 16, "mine: tiny": 24}  # display name: input size
FIGURE_DPI = 100  # matplotlib's default, which reports.image_mosaic keeps


def write_run(runs_root, paper, key, image_size, model=None):
    """A run folder as `chroma reproduce` leaves it: run.json, and generator.keras unless model is None."""
    folder = runs_root / paper / "smoke" / key
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"settings": {"image_size": image_size}}))
    if model is not None:
        model.save(folder / "generator.keras")
    return folder


def write_lpips_weights(path):
    """Random LPIPS-alex weights as the .npz the asset names, in PyTorch's layout (chroma.metrics.lpips)."""
    keras.utils.set_random_seed(0)
    arrays = {key: variable.numpy().transpose(3, 2, 0, 1) if len(variable.shape) == 4 else variable.numpy()
              for key, variable in LPIPS().torch_variables().items()}
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def lpips_file(tmp_path_factory):
    return write_lpips_weights(tmp_path_factory.mktemp("lpips") / "lpips_alex.npz")


@pytest.fixture(scope="module")
def board(tmp_path_factory, lpips_file):
    """A board of two finished runs at 16 and 24 px (one of an installed recipe, one not), one unfinished, one whose
    generator.keras holds no generator, and a pretraining folder inside a run: (leaderboard.json, its paths)."""
    runs_root = tmp_path_factory.mktemp("runs")
    keras.utils.set_random_seed(1)
    unet = write_run(runs_root, "nampouri", "unet_cgan", 16, tiny_generator())
    (unet / "pretrain").mkdir()
    (unet / "pretrain" / "run.json").write_text(json.dumps({"settings": {"image_size": 16}}))
    write_run(runs_root, "mine", "tiny", 24, tiny_generator())
    write_run(runs_root, "nampouri", "resnet_cgan", 16)
    write_run(runs_root, "mine", "not_a_generator", 16, keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]))
    paths = leaderboard("smoke", runs_root=runs_root, eval_data=EVAL_DATA, baseline_data=BASELINE_DATA,
                        resolution=RESOLUTION, assets={"lpips": str(lpips_file)})
    return json.loads(paths[1].read_text()), paths


def rows_by_name(board_json):
    return {model["name"]: model for model in board_json["models"]}


def test_every_finished_run_is_on_the_board_beside_baseline0_and_gray_at_its_own_size(board):
    board_json, (md_path, json_path, figure_path) = board
    assert [path.name for path in (md_path, json_path, figure_path)] == [
        "LEADERBOARD.md", "leaderboard.json", "side_by_side.png"]
    assert md_path.parent == json_path.parent.parent.parent / "leaderboard" / "smoke"  # runs_root/leaderboard/smoke
    rows = rows_by_name(board_json)
    assert rows.keys() == {GRAY, BASELINE0, *TRAINED}  # the truth is no row, the pretraining folder no run
    assert {name: rows[name]["image_size"] for name in TRAINED} == TRAINED
    assert rows[GRAY]["image_size"] == rows[BASELINE0]["image_size"] == RESOLUTION
    assert rows["mine: tiny"]["run_key"] == "tiny" and rows["mine: tiny"]["run_folder"].endswith("mine/smoke/tiny")
    psnrs = [model["metrics"]["psnr"]["value"] for model in board_json["models"]]
    assert psnrs == sorted(psnrs, reverse=True)
    markdown = md_path.read_text()
    for name in rows:
        assert f"\n| {name} | {rows[name]['image_size']} | " in markdown
    assert board_json["protocol"]["images"] == 6 and board_json["protocol"]["eval_data"] == EVAL_DATA


def test_a_run_not_finished_or_not_loading_is_listed_as_not_scored(board):
    board_json, (md_path, _, _) = board
    reasons = {entry["name"]: entry["not_scored"] for entry in board_json["not_scored"]}
    assert reasons.keys() == {"nampouri: ResNet-18 cGAN", "mine: not_a_generator"}
    assert "holds no generator.keras: its run has not finished" in reasons["nampouri: ResNet-18 cGAN"]
    assert "holds a Sequential, not a chroma generator" in reasons["mine: not_a_generator"]
    not_scored = md_path.read_text().split("Not scored:")[1]
    assert "- nampouri: ResNet-18 cGAN: " in not_scored and "- mine: not_a_generator: " in not_scored


def test_every_value_has_an_interval_that_holds_it_and_missing_networks_are_marked(board):
    board_json, (md_path, _, _) = board
    for model in board_json["models"]:
        for name in METRICS:
            summary = model["metrics"][name]
            if name == "fid":  # no fid asset given
                assert summary == {"value": None, "low": None, "high": None}
                continue
            assert summary["low"] <= summary["value"] <= summary["high"], (model["name"], name)
    gray = rows_by_name(board_json)[GRAY]["metrics"]
    assert gray["l1_ab"]["low"] > 0 and gray["colorfulness"]["value"] < 0.01  # ab = 0 in RGB's rounding
    gray_row = next(line for line in md_path.read_text().splitlines() if line.startswith(f"| {GRAY} |"))
    assert gray_row.endswith(" | – |")  # FID
    low, high = gray["lpips"]["low"], gray["lpips"]["high"]
    assert f"[{low:.4f}, {high:.4f}] | –" in gray_row


def test_the_smoke_board_says_its_numbers_mean_little(board):
    heading, _, first_paragraph, *_ = board[1][0].read_text().splitlines()
    assert heading.startswith("# Leaderboard, smoke scale") and "numbers mean little" in heading
    assert EVAL_DATA in heading and "the machinery" in first_paragraph


def test_the_figure_shows_the_first_photo_gray_colorized_by_every_model_and_original(board):
    board_json, (_, _, figure_path) = board
    columns = board_json["figure"]["columns"]
    others = [model["name"] for model in board_json["models"] if model["name"] != GRAY]
    assert columns == [GRAY, *others, "original"]
    with PIL.Image.open(figure_path) as figure:  # one panel per model, gray and original, MOSAIC_COLUMNS to a row
        assert figure.width == round(min(len(columns), MOSAIC_COLUMNS) * MOSAIC_CELL_WIDTH * FIGURE_DPI)


def test_a_model_sees_l_at_its_own_size_with_the_captions_and_is_scored_at_the_common_resolution():
    dataset = dataset_from_spec(EVAL_DATA, RESOLUTION, 8)
    seen = []

    def gray_at_16(batch):
        seen.append((tuple(batch["L"].shape), batch["caption"].shape))
        return tf.zeros(batch["L"].shape[:3] + (2,))

    small = score_colorizer(gray_at_16, 16, dataset)
    assert seen == [((6, 16, 16, 1), (6,))]
    gray = score_colorizer(evaluation.gray_prediction, RESOLUTION, dataset)
    assert gray.first_image.shape == small.first_image.shape == (RESOLUTION, RESOLUTION, 3)
    for name, values in gray.per_image.items():  # ab = 0 at any size is gray, joined with the same full L
        np.testing.assert_allclose(small.per_image[name], values, atol=1e-6, err_msg=name)


def test_a_perfect_colorizer_has_no_l1_error_a_zero_interval_and_beats_gray():
    dataset = dataset_from_spec(EVAL_DATA, RESOLUTION, 8)
    truth = score_colorizer(evaluation.ground_truth, RESOLUTION, dataset)
    gray = score_colorizer(evaluation.gray_prediction, RESOLUTION, dataset)
    indices = resample_indices(6, 1000, seed=0)
    assert truth.per_image["l1_ab"].tolist() == [0.0] * 6
    assert mean_interval(truth.per_image["l1_ab"], indices) == (0.0, 0.0)
    assert truth.per_image["psnr"].min() > gray.per_image["psnr"].max()


def test_intervals_are_reproducible_with_a_seed_and_none_below_two_images():
    values = np.random.default_rng(5).normal(size=50)
    same = mean_interval(values, resample_indices(50, 1000, seed=0))
    assert same == mean_interval(values, resample_indices(50, 1000, seed=0))
    assert same != mean_interval(values, resample_indices(50, 1000, seed=1))
    assert same[0] < values.mean() < same[1]
    assert resample_indices(1, 1000, seed=0) is None and mean_interval(values[:1], None) is None


# Six images' covariances are singular: scipy says so of their product's square root, which is still finite.
@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_fid_resamples_the_rows_of_both_feature_sets_together():
    rng = np.random.default_rng(0)
    true_features = rng.normal(size=(6, 40))
    predicted_features = true_features + rng.normal(size=(6, 40))
    indices = resample_indices(6, 50, seed=0)
    value, interval = fid_interval(true_features, true_features, indices)
    assert value == pytest.approx(0.0, abs=1e-6) and interval == pytest.approx((0.0, 0.0), abs=1e-6)
    value, (low, high) = fid_interval(predicted_features, true_features, indices)
    assert value == pytest.approx(fid(predicted_features, true_features), rel=1e-6)
    assert 0.0 < low < high and (value, (low, high)) == fid_interval(predicted_features, true_features, indices)
    assert fid_interval(true_features[:1], predicted_features[:1], None) == (None, None)
    # 12 rows span at most 12 of the 40 dimensions: FID in their coordinates is the same.
    reduced = in_shared_span(true_features, predicted_features)
    assert reduced[0].shape == (6, 12)
    assert fid(*reduced) == pytest.approx(fid(true_features, predicted_features), rel=1e-6)


def test_without_trained_runs_the_command_scores_baseline0_and_gray_alike_and_says_so(board, tmp_path, capsys,
                                                                                      lpips_file):
    runs_root = tmp_path / "runs"
    runs_root.mkdir()
    assert cli.main(["leaderboard", "--runs-root", str(runs_root), "--eval-data", EVAL_DATA, "--baseline-data",
                     BASELINE_DATA, "--resolution", str(RESOLUTION), "--asset", f"lpips={lpips_file}"]) == 0
    captured = capsys.readouterr()
    assert f"no trained run found under {runs_root.as_posix()}/*/smoke/" in captured.err
    assert "make reproduce-<paper>" in captured.err and "leaderboard: scoring gray (ab = 0) (1 of 2)" in captured.err
    assert captured.out.startswith("# Leaderboard, smoke scale")
    alone = rows_by_name(json.loads((runs_root / "leaderboard" / "smoke" / "leaderboard.json").read_text()))
    assert alone.keys() == {GRAY, BASELINE0}
    beside_runs = rows_by_name(board[0])
    for name in (GRAY, BASELINE0):  # the same seed, the same intervals, whatever else is on the board
        assert alone[name]["metrics"] == beside_runs[name]["metrics"]
    assert (runs_root / "leaderboard" / "smoke" / "side_by_side.png").is_file()


@pytest.mark.parametrize("flags, message", [
    (["--scale", "paper"], "give --coco ROOT, or both --eval-data SPEC and --baseline-data SPEC"),
    (["--scale", "paper", "--eval-data", EVAL_DATA], "give --coco ROOT, or both"),
    (["--asset", "vgg19=/weights"], "reads no asset named vgg19. Its assets"),
])
def test_refused_before_anything_is_written(flags, message, tmp_path, capsys):
    out = tmp_path / "board"
    assert cli.main(["leaderboard", "--runs-root", str(tmp_path), "--out", str(out), *flags]) == 2
    error = capsys.readouterr().err
    assert error.startswith("chroma: error: ") and message in error
    if "--asset" in flags:
        assert "\n  lpips: " in error and "\n  fid: " in error and "\n  inception: " in error  # bruvik's
    assert not out.exists()


def test_help_names_the_command_and_where_it_writes(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert re.search(r"\n    leaderboard\s", capsys.readouterr().out)
    with pytest.raises(SystemExit):
        cli.main(["leaderboard", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "LEADERBOARD.md, leaderboard.json and side_by_side.png" in help_text
    assert "RUNS_ROOT/leaderboard/<scale>" in help_text and "95% bootstrap interval" in help_text
