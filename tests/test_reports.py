import csv
import json

import numpy as np
import pytest
import skimage.color
import skimage.data
from PIL import Image

from chroma import reports

COLUMNS = ["L1 ab", "PSNR", "SSIM"]
ROWS = [
    {"model": "baseline0", "ours": {"L1 ab": 0.123456, "PSNR": 21.0, "SSIM": 0.81234}, "paper": {}},
    {
        "model": "U-Net cGAN",
        "ours": {"L1 ab": 0.0921348, "PSNR": 23.456789, "SSIM": None, "colourfulness": 30.0},
        "paper": {"L1 ab": 0.0917},
        "note": "smoke | 2 epochs",
    },
]
GAN_HISTORY = {
    "d_loss": [0.69, 0.61, 0.58],
    "g_adversarial_loss": [2.1, 2.6, 2.9],
    "g_reconstruction_loss": [0.21, 0.14, 0.11],
    "val_g_reconstruction_loss": [0.19, 0.15, 0.13],
}


def png_pixels(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def table_rows(md_text):
    """The Markdown table's rows as lists of cells (header first, separator dropped)."""
    lines = [line for line in md_text.splitlines() if line.startswith("|") and not line.startswith("|---")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_results_md_puts_ours_beside_paper_with_a_dash_for_missing(tmp_path):
    md_path, _ = reports.write_results(tmp_path / "run", "nampouri — smoke scale", ROWS, COLUMNS, "nampouri")

    text = md_path.read_text(encoding="utf-8")
    assert md_path == tmp_path / "run" / "results.md"
    assert text.splitlines()[0] == "# nampouri — smoke scale"
    assert "nampouri" in text.splitlines()[2]  # provenance line names the paper
    header, baseline, unet = table_rows(text)
    assert header == ["model", "L1 ab, ours", "L1 ab, paper", "L1 ab, Δ", "PSNR, ours", "PSNR, paper", "PSNR, Δ",
                      "SSIM, ours", "SSIM, paper", "SSIM, Δ", "note"]
    assert baseline == ["baseline0", "0.1235", "–", "", "21.00", "–", "", "0.8123", "–", "", ""]
    # The "|" in the note is escaped, so it stays one cell; metrics outside `columns` are left out.
    assert unet == ["U-Net cGAN", "0.0921", "0.0917", "+0.0004", "23.46", "–", "", "–", "–", "", "smoke \\| 2 epochs"]


def test_results_csv_round_trips_the_numbers(tmp_path):
    _, csv_path = reports.write_results(tmp_path, "title", ROWS, COLUMNS, "nampouri")

    with csv_path.open(newline="", encoding="utf-8") as file:
        records = list(csv.DictReader(file))
    assert [(r["model"], r["metric"]) for r in records] == [(row["model"], m) for row in ROWS for m in COLUMNS]
    for record in records:
        row = next(row for row in ROWS if row["model"] == record["model"])
        for side in ("ours", "paper"):
            expected = row[side].get(record["metric"])
            assert (float(record[side]) if record[side] else None) == expected
    assert [record["delta"] for record in records if record["delta"]] == [repr(0.0921348 - 0.0917)]


def test_results_json_holds_what_the_tables_are_made_from(tmp_path):
    provenance = {"code": {"commit": "0123456789abcdef", "modified": True}, "machine": {"cpu": "test CPU"}}
    rows = [ROWS[0], {**ROWS[1], "run": {"key": "unet_cgan", "protocol": {"eval_data": "samples?skip=6"}}}]
    run_dir = tmp_path / "runs" / "nampouri" / "smoke"
    md_path, _ = reports.write_results(run_dir, "nampouri — smoke scale", rows, COLUMNS, "nampouri", provenance)
    reports.append_table(run_dir, "Epochs", [{"model": "U-Net cGAN", "ours": {"epochs": 3}, "paper": {"epochs": 5}}],
                         ("epochs",))

    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert results["paper"] == "nampouri" and results["provenance"] == provenance
    main, epochs = results["tables"]
    assert main["heading"] is None and main["columns"] == COLUMNS
    assert main["rows"][1]["run"]["key"] == "unet_cgan"
    assert main["rows"][1]["delta"] == {"L1 ab": pytest.approx(0.0921348 - 0.0917)}  # only where both are known
    assert epochs["rows"][0]["delta"] == {"epochs": -2}
    text = md_path.read_text(encoding="utf-8")
    assert "at commit 0123456789ab with uncommitted changes" in text.splitlines()[2]
    assert "| U-Net cGAN | 3 | 5 | −2 |  |" in text
    # The Markdown is made from the JSON alone: the index renders the same table from it.
    index = reports.update_results_index(tmp_path / "runs", tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "| U-Net cGAN | 3 | 5 | −2 |  |" in index


def test_results_refuse_a_value_json_cannot_hold(tmp_path):
    with pytest.raises(ValueError):
        reports.write_results(tmp_path, "title", [{"model": "m", "ours": {"PSNR": float("nan")}}], ["PSNR"])


def test_gan_loss_plot_has_two_panels_and_ignores_unknown_keys(tmp_path):
    gan = reports.plot_gan_losses(GAN_HISTORY, tmp_path / "gan.png", "U-Net cGAN")
    noisy_history = {**GAN_HISTORY, "gradient_penalty": [5.0, 1.0, 9.0], "val_psnr": [20.0, 21.0, 22.0]}
    noisy = reports.plot_gan_losses(noisy_history, tmp_path / "noisy.png", "U-Net cGAN")
    regression = reports.plot_gan_losses({"loss": [0.3, 0.2], "val_loss": [0.35, 0.3], "lr": [1e-3, 1e-4]},
                                         tmp_path / "regression.png", "CNN")

    gan_pixels, regression_pixels = png_pixels(gan), png_pixels(regression)
    np.testing.assert_array_equal(png_pixels(noisy), gan_pixels)
    assert gan_pixels.shape[1] == regression_pixels.shape[1] >= 300
    assert gan_pixels.shape[0] > 1.5 * regression_pixels.shape[0]  # two stacked panels against one
    assert gan_pixels.std() > 10 and regression_pixels.std() > 10  # curves, not a blank canvas


def test_gan_loss_panels_scale_the_adversarial_loss_as_figures_8_and_9():
    (_, total), (_, adversarial), (_, reconstruction), (_, parts) = reports.loss_panels(GAN_HISTORY)
    assert parts == total == []  # a history without them: plot_gan_losses leaves those panels out

    (adversarial_label, scaled), (_, discriminator) = adversarial
    assert "0.1" in adversarial_label
    np.testing.assert_allclose(scaled, [0.21, 0.26, 0.29])
    assert discriminator == GAN_HISTORY["d_loss"]
    assert [values for _, values in reconstruction] == [GAN_HISTORY["g_reconstruction_loss"],
                                                        GAN_HISTORY["val_g_reconstruction_loss"]]


def test_the_generators_total_loss_gets_a_panel_of_its_own():
    """Paper efthymiadis' figure 8: the whole generator loss, not only its terms."""
    history = {**GAN_HISTORY, "g_loss": [23.1, 16.0, 13.9], "val_g_loss": [20.0, 17.5, 15.2]}
    (label, total), *_ = reports.loss_panels(history)
    assert label == "generator loss, total"
    assert total == [("generator loss (train)", history["g_loss"]),
                     ("generator loss (validation)", history["val_g_loss"])]


def test_discriminator_losses_on_real_and_colorized_images_get_their_own_panel(tmp_path):
    """Paper efthymiadis' figure 9."""
    history = {**GAN_HISTORY, "d_real_loss": [0.5, 0.4, 0.45], "d_fake_loss": [0.6, 0.3, 0.5]}
    *_, (label, parts) = reports.loss_panels(history)
    assert parts == [("discriminator loss on real images", history["d_real_loss"]),
                     ("discriminator loss on colorizations", history["d_fake_loss"])]
    three = png_pixels(reports.plot_gan_losses(history, tmp_path / "three.png", "UGAN"))
    two = png_pixels(reports.plot_gan_losses(GAN_HISTORY, tmp_path / "two.png", "UGAN"))
    assert three.shape[0] > 1.3 * two.shape[0]


def test_epoch_samples_put_each_kept_epoch_between_gray_and_truth(tmp_path):
    stacked = np.concatenate([skimage.data.astronaut()[:32, :32], skimage.data.coffee()[:32, :32]])  # two photos
    for name in ("gray", "truth", "epoch_7", "epoch_8"):
        Image.fromarray(stacked).save(tmp_path / f"{name}.png")
    two_epochs = png_pixels(reports.epoch_samples(tmp_path, (7, 8), tmp_path / "two.png", "epochs"))
    one_epoch = png_pixels(reports.epoch_samples(tmp_path, (8,), tmp_path / "one.png", "epochs"))
    assert two_epochs.shape[1] > one_epoch.shape[1]  # a column per epoch
    with pytest.raises(FileNotFoundError, match=r"no samples of epochs \[9\]"):
        reports.epoch_samples(tmp_path, (8, 9), tmp_path / "missing.png", "epochs")


def test_loss_plot_of_an_empty_history_is_still_a_png(tmp_path):
    assert png_pixels(reports.plot_gan_losses({}, tmp_path / "empty.png", "resumed run")).size > 0


def sample_photos():
    # Subsampled so the test stays fast; the three photos differ in size and aspect.
    return [skimage.data.astronaut()[::8, ::8], skimage.data.chelsea()[::6, ::6], skimage.data.coffee()[::8, ::8]]


def test_sample_grid_draws_rows_of_differently_sized_photos(tmp_path):
    photos = sample_photos()
    grays = [skimage.color.rgb2gray(photo) for photo in photos]
    overshooting = [photo / 255.0 * 1.05 - 0.02 for photo in photos]  # like a model's out-of-gamut output
    columns = [("original", photos), ("grayscale", grays), ("model A", overshooting)]

    as_list = reports.sample_grid(columns, tmp_path / "list.png", "held-out images")
    as_dict = reports.sample_grid(dict(columns), tmp_path / "dict.png", "held-out images")

    pixels = png_pixels(as_list)
    np.testing.assert_array_equal(png_pixels(as_dict), pixels)
    height, width, _ = pixels.shape
    assert width >= 3 * 100 and height >= 3 * 50
    # The photos' colours made it in: chelsea's orange fur is far from the gray page.
    assert np.abs(pixels[..., 0].astype(int) - pixels[..., 2]).max() > 80


def test_sample_grid_rejects_columns_of_unequal_length(tmp_path):
    photos = sample_photos()
    with pytest.raises(ValueError, match="same"):
        reports.sample_grid([("original", photos), ("model", photos[:2])], tmp_path / "grid.png")


def fake_run(runs_root, paper, scale, model):
    run_dir = runs_root / paper / scale
    rows = [{"model": model, "ours": {"PSNR": 22.5}, "paper": {"PSNR": 24.1}}]
    reports.write_results(run_dir, f"{paper} — {scale} scale", rows, ["PSNR"], paper)
    Image.new("RGB", (8, 8)).save(run_dir / "samples.png")
    return run_dir


def test_results_index_gathers_every_run_and_is_idempotent(tmp_path):
    runs_root = tmp_path / "runs"
    fake_run(runs_root, "nampouri", "smoke", "U-Net cGAN")
    fake_run(runs_root, "agosti", "paper", "PixelGAN")
    (runs_root / "demo").mkdir()
    (runs_root / "demo" / "results.md").write_text("# not a <paper>/<scale> run\n")
    index_path = tmp_path / "docs" / "RESULTS.md"

    assert reports.update_results_index(runs_root, index_path) == index_path
    first = index_path.read_bytes()
    reports.update_results_index(runs_root, index_path)
    assert index_path.read_bytes() == first

    text = first.decode("utf-8")
    assert "make reproduce-<paper> SCALE=smoke|paper" in text
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == ["# chroma reproduction results", "## agosti (paper)", "## nampouri (smoke)"]
    assert "| PixelGAN | 22.50 | 24.10 | −1.60 |" in text and "| U-Net cGAN | 22.50 | 24.10 | −1.60 |" in text
    assert "not a <paper>/<scale> run" not in text
    links = [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("- [samples.png](")]
    assert links == ["../runs/agosti/paper/samples.png", "../runs/nampouri/smoke/samples.png"]
    assert all((index_path.parent / link).is_file() for link in links)


def test_a_further_table_keeps_the_note_column_of_a_papers_table(tmp_path):
    reports.write_results(tmp_path, "title", ROWS, COLUMNS, "nampouri")
    reports.append_table(tmp_path, "Epochs", [{"model": "U-Net cGAN", "ours": {"epochs": 3}, "paper": {"epochs": 5}}],
                         ("epochs",))
    assert (tmp_path / "results.md").read_text(encoding="utf-8").splitlines()[-3:] == [
        "| model | epochs, ours | epochs, paper | epochs, Δ | note |", "|---|---:|---:|---:|---|",
        "| U-Net cGAN | 3 | 5 | −2 |  |"]


def test_a_table_without_a_paper_has_ours_alone(tmp_path):
    rows = [{"model": "baseline0", "ours": {"PSNR": 21.0}}, {"model": "U-Net cGAN", "ours": {"PSNR": 23.456}}]
    md_path, csv_path = reports.write_results(tmp_path, "mine", rows, ["PSNR"])
    assert md_path.read_text(encoding="utf-8").splitlines()[-4:] == [
        "| model | PSNR |", "|---|---:|", "| baseline0 | 21.00 |", "| U-Net cGAN | 23.46 |"]
    assert csv_path.read_text(encoding="utf-8").splitlines() == [
        "model,metric,ours,paper,delta", "baseline0,PSNR,21.0,,", "U-Net cGAN,PSNR,23.456,,"]


def test_a_mosaic_wraps_its_panels_into_rows(tmp_path):
    photo = sample_photos()[0]
    seven = png_pixels(reports.image_mosaic([(f"model {i}", photo) for i in range(7)], tmp_path / "seven.png"))
    three = png_pixels(reports.image_mosaic([(f"model {i}", photo) for i in range(3)], tmp_path / "three.png"))
    assert seven.shape[1] == round(reports.MOSAIC_COLUMNS * reports.MOSAIC_CELL_WIDTH * 100)  # six to a row
    assert three.shape[1] == round(3 * reports.MOSAIC_CELL_WIDTH * 100)
    assert seven.shape[0] > 1.8 * three.shape[0]  # a second row
