"""Turn finished runs into what a researcher compares with a paper.

Per run directory (`runs/<paper>/<scale>/`): `results.md` and `results.csv`
(our scores beside the paper's), loss curves in the style of nampouri figures
8-9 and a sample grid in the style of its figure 7. `update_results_index`
gathers every run's results.md into one top-level RESULTS.md.
"""

import csv
import datetime
import os
import textwrap
from pathlib import Path

import numpy as np
import PIL.Image
# Figure directly, not pyplot: it needs no backend and keeps no global figure state.
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

MISSING = "–"
GAN_ADVERSARIAL_SCALE = 0.1  # nampouri figures 8-9 plot the generator's BCE scaled by 0.1
PANEL_SIZE = (7.0, 3.0)  # inches, one loss panel
GRID_CELL_WIDTH = 2.5  # inches, one sample-grid column
TITLE_CHARACTERS = 22  # a line of a sample-grid column title


def format_value(value):
    """Integers (epoch counts) as they are; else 4 decimals below 10, 2 from there on; the missing mark for None."""
    if value is None:
        return MISSING
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def write_results(out_dir, title, rows, columns, paper_name=None):
    """rows: [{"model", "ours": {column: value}, "paper"?: {column: value}, "note"?}] -> (results.md, results.csv),
    for every command that scores models (reproduce, train, evaluate, demo).

    With paper_name, the Markdown table puts each column's "ours" and
    "paper" side by side; without, "ours" alone. The CSV is the same for
    all: one row per model and column (model, metric, ours, paper), values
    at full precision.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, csv_path = out_dir / "results.md", out_dir / "results.csv"
    quoted = f"\"paper\" columns quote paper `{paper_name}`; " if paper_name else ""
    lines = [
        f"# {title}",
        "",
        f"Written {datetime.date.today().isoformat()} by chroma.reports. {quoted}{MISSING} marks a value not "
        f"{'reported or not ' if paper_name else ''}measured.",
        "",
        *table_lines(rows, columns, with_paper=paper_name is not None),
    ]
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with csv_path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["model", "metric", "ours", "paper"])
        writer.writerows(csv_rows(rows, columns))
    return md_path, csv_path


def markdown_table(rows, columns):
    """write_results' table without paper columns, as a command prints it."""
    return "\n".join(table_lines(rows, columns, with_paper=False))


def append_table(out_dir, heading, rows, columns):
    """A further table (e.g. a paper's second one) under `heading` in results.md, its rows added to results.csv."""
    out_dir = Path(out_dir)
    with (out_dir / "results.md").open("a", encoding="utf-8") as file:
        file.write("\n".join(["", f"## {heading}", "", *table_lines(rows, columns)]) + "\n")
    with (out_dir / "results.csv").open("a", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(csv_rows(rows, columns))


def table_lines(rows, columns, with_paper=True):
    """Markdown lines: each column's "ours" (and "paper") side by side, then the notes (a table without paper
    columns has them only where a row has one)."""
    sides = ("ours", "paper") if with_paper else ("ours",)
    notes = with_paper or any("note" in row for row in rows)
    header = ["model"] + [f"{column}, {side}" if with_paper else column for column in columns for side in sides]
    lines = [markdown_row(header + (["note"] if notes else [])),
             "|---|" + "---:|" * (len(sides) * len(columns)) + ("---|" if notes else "")]
    for row in rows:
        cells = [row["model"]] + [format_value(row.get(side, {}).get(column)) for column in columns for side in sides]
        lines.append(markdown_row(cells + ([row.get("note", "")] if notes else [])))
    return lines


def csv_rows(rows, columns):
    for row in rows:
        ours, paper = row.get("ours", {}), row.get("paper", {})
        for metric in columns:
            yield [row["model"], metric, csv_value(ours.get(metric)), csv_value(paper.get(metric))]


def markdown_row(cells):
    # A "|" inside a cell would split it; a newline would end the table.
    escaped = [str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells]
    return "| " + " | ".join(escaped) + " |"


def csv_value(value):
    return "" if value is None else repr(float(value))


def plot_gan_losses(history, path, title):
    """Per-epoch losses (Keras History.history) -> PNG at `path`; returns the path.

    A GAN history gets nampouri figures 8-9's two panels: the generator's
    adversarial loss x0.1 with the discriminator's loss on top, the generator's
    L1 reconstruction loss (and its validation curve) below; and where it
    logs them, a third with D's losses on real and on colorized images
    (efthymiadis' figure 9). A regression
    history ("loss", "val_loss") gets one panel. Other keys are ignored.
    """
    return plot_panels([panel for panel in loss_panels(history) if panel[1]], path, title, "losses")


def plot_metric_curves(history, metrics, path, title):
    """Each metric's training and validation value per epoch, one panel each (paper agosti's figure 3).

    metrics: {history key: axis label}, e.g. {"psnr": "PSNR (dB)"}; keys the
    history lacks are skipped. Returns the path.
    """
    return plot_panels(metric_panels(history, metrics), path, title, "metrics")


def plot_panels(panels, path, title, what):
    """[(y label, [(curve label, per-epoch values)])] -> one panel each, sharing the epoch axis; returns the path."""
    figure = Figure(figsize=(PANEL_SIZE[0], PANEL_SIZE[1] * max(len(panels), 1)), layout="constrained")
    figure.suptitle(title)
    if not panels:
        # A run with no history.csv (read_history gives {}) still gets a figure rather than failing the report.
        axes = figure.subplots()
        axes.text(0.5, 0.5, f"no per-epoch {what} recorded", ha="center", va="center")
        axes.set_axis_off()
        return save(figure, path)
    all_axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for axes, (ylabel, curves) in zip(all_axes, panels):
        for label, values in curves:
            epochs = np.arange(1, len(values) + 1)
            # Markers keep a one- or two-epoch smoke run visible; on long runs they would only clutter.
            axes.plot(epochs, values, label=label, marker="o" if len(values) <= 50 else None, markersize=3)
        axes.set_ylabel(ylabel)
        axes.legend()
        axes.grid(alpha=0.3)
    all_axes[-1].set_xlabel("epoch")
    # Whole epochs only, with room either side so a one-epoch run does not get a range of 1 +- 0.05.
    epochs_run = max(len(values) for _, curves in panels for _, values in curves)
    all_axes[-1].set_xlim(0.5, epochs_run + 0.5)
    all_axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    return save(figure, path)


def metric_panels(history, metrics):
    """[(axis label, [("train" | "validation", values)])] for the metrics `history` holds."""
    panels = [(label, [(side, history[prefix + key]) for side, prefix in (("train", ""), ("validation", "val_"))
                       if history.get(prefix + key)]) for key, label in metrics.items()]
    return [panel for panel in panels if panel[1]]


def loss_panels(history):
    """[(y label, [(curve label, values)])] for the curves `history` holds."""
    if any(key in history for key in ("d_loss", "g_adversarial_loss", "g_reconstruction_loss")):
        adversarial = []
        if "g_adversarial_loss" in history:
            scaled = [GAN_ADVERSARIAL_SCALE * value for value in history["g_adversarial_loss"]]
            adversarial.append((f"generator adversarial loss × {GAN_ADVERSARIAL_SCALE}", scaled))
        if "d_loss" in history:
            adversarial.append(("discriminator loss", history["d_loss"]))
        reconstruction = [(label, history[key]) for key, label in [
            ("g_reconstruction_loss", "generator reconstruction loss (train)"),
            ("val_g_reconstruction_loss", "generator reconstruction loss (validation)"),
        ] if key in history]
        # Paper efthymiadis' figure 9: D's losses on the real and on the colorized images, apart.
        discriminator_parts = [(label, history[key]) for key, label in [
            ("d_real_loss", "discriminator loss on real images"),
            ("d_fake_loss", "discriminator loss on colorizations"),
        ] if key in history]
        return [("adversarial loss", adversarial), ("reconstruction (L1) loss", reconstruction),
                ("discriminator loss, by input", discriminator_parts)]
    curves = [(label, history[key]) for key, label in [("loss", "train"), ("val_loss", "validation")]
              if key in history]
    return [("loss", curves)]


def epoch_samples(kept_dir, epochs, path, title):
    """The held-out samples' colorizations at `epochs` (SampleImages' kept PNGs) between gray and truth, one
    column each (bruvik's figure 8, efthymiadis' figure 7); returns the path."""
    kept_dir = Path(kept_dir)

    def images(name):
        column = np.asarray(PIL.Image.open(kept_dir / f"{name}.png"))
        side = column.shape[1]  # square samples, stacked top to bottom
        return [column[top:top + side] for top in range(0, column.shape[0], side)]

    missing = [epoch for epoch in epochs if not (kept_dir / f"epoch_{epoch}.png").exists()]
    if missing:
        raise FileNotFoundError(f"{kept_dir} holds no samples of epochs {missing}")
    columns = [("grayscale", images("gray")), *[(f"epoch {epoch}", images(f"epoch_{epoch}")) for epoch in epochs],
               ("original", images("truth"))]
    return sample_grid(columns, path, title)


def sample_grid(columns, path, title=None):
    """Figure 7's layout: one column per (title, images) pair, one row per image; returns the path.

    Images are RGB (or gray) arrays, float in [0, 1] or uint8; every column
    holds the same count, and rows may differ in size.
    """
    columns = list(columns.items()) if isinstance(columns, dict) else list(columns)
    counts = {len(images) for _, images in columns}
    if not columns or len(counts) != 1 or 0 in counts:
        raise ValueError(f"sample_grid needs columns with the same, non-zero number of images; got {sorted(counts)}")
    rows = [[displayable(images[i]) for _, images in columns] for i in range(counts.pop())]
    # Each row is as tall as its tallest image at the common column width, so nothing is squeezed.
    row_heights = [max(image.shape[0] / image.shape[1] for image in row) for row in rows]
    width = GRID_CELL_WIDTH * len(columns)
    figure = Figure(figsize=(width, GRID_CELL_WIDTH * sum(row_heights) + (0.8 if title else 0.4)),
                    layout="constrained")
    if title:
        figure.suptitle(title)
    grid = figure.subplots(len(rows), len(columns), squeeze=False, gridspec_kw={"height_ratios": row_heights})
    for row_index, row in enumerate(rows):
        for column_index, image in enumerate(row):
            axes = grid[row_index, column_index]
            gray = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if image.ndim == 2 else {}
            axes.imshow(image, **gray)
            axes.set_xticks([])
            axes.set_yticks([])
            if row_index == 0:
                # Wrapped to the column's width, so long model names do not run into each other.
                axes.set_title("\n".join(textwrap.wrap(columns[column_index][0], TITLE_CHARACTERS)))
    return save(figure, path)


def displayable(image):
    """uint8 or float image -> float in [0, 1], gray kept 2-D."""
    image = np.asarray(image)
    image = image / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    # Colour conversions overshoot [0, 1] by rounding; imshow would warn and clip anyway.
    return np.clip(image, 0.0, 1.0)


def save(figure, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def update_results_index(runs_root, index_path):
    """Every runs_root/<paper>/<scale>/results.md, with links to its figures, -> one Markdown file at index_path.

    Deterministic (sorted, no timestamp of its own), so rerunning it without new runs leaves the file unchanged.
    """
    runs_root, index_path = Path(runs_root), Path(index_path)
    index_dir = index_path.parent
    lines = [
        "# chroma reproduction results",
        "",
        f"Generated by `chroma.reports.update_results_index` from every `{relative(runs_root, index_dir)}/"
        "<paper>/<scale>/results.md`; do not edit by hand. Regenerate a paper's section with "
        "`make reproduce-<paper> SCALE=smoke|paper` (papers: see `experiments/`). Smoke runs only check the "
        "pipeline on a few images; compare the paper scale with the papers.",
    ]
    results = sorted(runs_root.glob("*/*/results.md"), key=lambda p: (p.parent.parent.name, p.parent.name))
    if not results:
        lines += ["", "No runs yet."]
    for results_path in results:
        run_dir = results_path.parent
        body = results_path.read_text(encoding="utf-8").splitlines()
        if body and body[0].startswith("# "):
            body = body[1:]
        lines += ["", f"## {run_dir.parent.name} ({run_dir.name})", *trim_blank(body)]
        figures = sorted(run_dir.glob("*.png"))
        if figures:
            lines += ["", "Figures:", ""]
            lines += [f"- [{figure.name}]({relative(figure, index_dir)})" for figure in figures]
    index_dir.mkdir(parents=True, exist_ok=True)
    index_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return index_path


def trim_blank(lines):
    """`lines` with leading and trailing blank lines dropped, then one blank line in front to separate them."""
    text = "\n".join(lines).strip("\n")
    return ["", *text.split("\n")] if text else []


def relative(path, start):
    """`path` relative to directory `start`, with forward slashes as Markdown links want."""
    return Path(os.path.relpath(path, start)).as_posix()
