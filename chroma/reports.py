"""Turn finished runs into what a researcher compares with a paper.

Per run directory (`runs/<paper>/<scale>/`): `results.json`, what a machine
reads (our scores, the paper's and their difference, each run's protocol,
settings and provenance), and made from it `results.md` and `results.csv`;
loss curves in the style of nampouri figures 8-9 and a sample grid in the
style of its figure 7. `update_results_index` gathers every results.json
into one top-level RESULTS.md.
"""

import csv
import datetime
import json
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
MOSAIC_COLUMNS = 6  # panels in a row of image_mosaic: a figure that still reads at a page's width
# inches, one image_mosaic panel: smaller than a sample-grid column, so a board of ~30 models stays near 1 MB of PNG
MOSAIC_CELL_WIDTH = 1.6
RESULTS_JSON = "results.json"  # what write_results writes first; results.md and .csv are made from it


def format_value(value):
    """Integers (epoch counts) as they are; else 4 decimals below 10, 2 from there on; the missing mark for None."""
    if value is None:
        return MISSING
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def write_results(out_dir, title, rows, columns, paper_name=None, provenance=None):
    """rows: [{"model", "ours": {column: value}, "paper"?: {column: value}, "note"?, "run"?: {...}}] -> (results.md,
    results.csv), for every command that scores models (reproduce, train, evaluate, demo).

    results.json is written first and the other two are made from it: the
    numbers at full precision, each row's difference from the paper, the
    run's protocol and settings where a row has them ("run"), and
    `provenance` (the commit and the machine, chroma.provenance). With
    paper_name, the Markdown table puts each column's "ours", "paper" and
    their difference side by side; without, "ours" alone. The CSV has one
    row per model and column (model, metric, ours, paper, delta).
    """
    results = {"title": title, "written": datetime.date.today().isoformat(), "paper": paper_name,
               "provenance": provenance or {}, "tables": [results_table(None, rows, columns, paper_name is not None)]}
    return save_results(out_dir, results)


def append_table(out_dir, heading, rows, columns):
    """A further table (e.g. a paper's second one) under `heading`, with paper columns, in the results out_dir
    holds (write_results)."""
    results = read_results(out_dir)
    results["tables"].append(results_table(heading, rows, columns, with_paper=True))
    return save_results(out_dir, results)


def results_table(heading, rows, columns, with_paper):
    """One table of results.json: its rows with "delta", ours - paper, for each column that has both."""
    return {"heading": heading, "columns": list(columns), "with_paper": with_paper,
            "rows": [{**row, "delta": differences(row, columns)} for row in rows]}


def differences(row, columns):
    ours, paper = row.get("ours", {}), row.get("paper", {})
    return {column: ours[column] - paper[column] for column in columns
            if ours.get(column) is not None and paper.get(column) is not None}


def read_results(out_dir):
    """The results.json write_results left in out_dir."""
    path = Path(out_dir) / RESULTS_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{out_dir} holds no {RESULTS_JSON}: write its results first (write_results)")
    return json.loads(path.read_text(encoding="utf-8"))


def save_results(out_dir, results):
    """results (write_results' dict) -> out_dir's results.json, results.md and results.csv; (md path, csv path)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, csv_path = out_dir / "results.md", out_dir / "results.csv"
    (out_dir / RESULTS_JSON).write_text(json.dumps(results, indent=1, allow_nan=False, default=plain) + "\n",
                                        encoding="utf-8")
    md_path.write_text("\n".join([f"# {results['title']}", "", *results_lines(results)]) + "\n", encoding="utf-8")
    with csv_path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["model", "metric", "ours", "paper", "delta"])
        for table in results["tables"]:
            writer.writerows(csv_rows(table["rows"], table["columns"]))
    return md_path, csv_path


def plain(value):
    """json.dumps' fallback: NumPy numbers as Python's (a metric may come back as np.float32)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def results_lines(results):
    """results.md's body below its title: the provenance line, then each table (further ones under a heading)."""
    paper_name = results.get("paper")
    quoted = f"\"paper\" columns quote paper `{paper_name}`, Δ is ours − paper; " if paper_name else ""
    version = results.get("provenance", {}).get("code", {})
    at = (f" at commit {version['commit'][:12]}{' with uncommitted changes' if version.get('modified') else ''}"
          if "commit" in version else f" by chroma {version['version']}" if "version" in version else "")
    lines = [f"Written {results['written']}{at} by chroma.reports. {quoted}{MISSING} marks a value not "
             f"{'reported or not ' if paper_name else ''}measured."]
    for table in results["tables"]:
        if table["heading"] is not None:
            lines += ["", f"## {table['heading']}"]
        lines += ["", *table_lines(table["rows"], table["columns"], with_paper=table["with_paper"])]
    return lines


def markdown_table(rows, columns):
    """write_results' table without paper columns, as a command prints it."""
    return "\n".join(table_lines(rows, columns, with_paper=False))


def table_lines(rows, columns, with_paper=True):
    """Markdown lines: each column's "ours", "paper" and Δ side by side, then the notes (a table without paper
    columns has them only where a row has one)."""
    sides = ("ours", "paper", "delta") if with_paper else ("ours",)
    titles = {"ours": "ours", "paper": "paper", "delta": "Δ"}
    notes = with_paper or any("note" in row for row in rows)
    header = ["model"] + [f"{column}, {titles[side]}" if with_paper else column for column in columns
                          for side in sides]
    lines = [markdown_row(header + (["note"] if notes else [])),
             "|---|" + "---:|" * (len(sides) * len(columns)) + ("---|" if notes else "")]
    for row in rows:
        deltas = row.get("delta", differences(row, columns))
        cells = [row["model"]] + [format_difference(deltas.get(column), row.get("ours", {}).get(column))
                                  if side == "delta" else format_value(row.get(side, {}).get(column))
                                  for column in columns for side in sides]
        lines.append(markdown_row(cells + ([row.get("note", "")] if notes else [])))
    return lines


def format_difference(value, ours):
    """A signed difference with the decimals format_value gives the larger of it and `ours` ("+0.0004", "−1.60",
    "−10.25", "+1"); empty where there is nothing to compare."""
    if value is None:
        return ""
    decimals = 2 if max(abs(value), abs(ours)) >= 10 else 4
    text = format_value(abs(value)) if isinstance(value, int) else f"{abs(value):.{decimals}f}"
    return ("−" if value < 0 else "+") + text


def csv_rows(rows, columns):
    for row in rows:
        ours, paper = row.get("ours", {}), row.get("paper", {})
        deltas = row.get("delta", differences(row, columns))
        for metric in columns:
            yield [row["model"], metric, csv_value(ours.get(metric)), csv_value(paper.get(metric)),
                   csv_value(deltas.get(metric))]


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
    L1 reconstruction loss (and its validation curve) below; above them the
    generator's total loss (efthymiadis' figure 8), and where it logs them, a
    panel with D's losses on real and on colorized images (efthymiadis'
    figure 9). A regression
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
        # Paper efthymiadis' figure 8: the generator's whole loss, its weighted terms and any auxiliary one summed.
        total = [(label, history[key]) for key, label in [
            ("g_loss", "generator loss (train)"), ("val_g_loss", "generator loss (validation)")] if key in history]
        return [("generator loss, total", total), ("adversarial loss", adversarial),
                ("reconstruction (L1) loss", reconstruction), ("discriminator loss, by input", discriminator_parts)]
    curves = [(label, history[key]) for key, label in [("loss", "train"), ("val_loss", "validation")]
              if key in history]
    return [("loss", curves)]


def class_histogram(counts, path, title):
    """{class name: images} -> a bar per class, most frequent first (paper bruvik's figure 6, COCO's class
    imbalance); returns the path. No counts (data without class labels) gives a figure that says so."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    figure = Figure(figsize=(max(PANEL_SIZE[0], 0.16 * len(ranked)), PANEL_SIZE[1] + 1.5), layout="constrained")
    figure.suptitle(title)
    axes = figure.subplots()
    if not ranked:
        axes.text(0.5, 0.5, "no class labels in this data (COCO's are its instance annotations)", ha="center",
                  va="center")
        axes.set_axis_off()
        return save(figure, path)
    axes.bar(range(len(ranked)), [count for _, count in ranked])
    axes.set_xticks(range(len(ranked)), [name for name, _ in ranked], rotation=90, fontsize=7)
    axes.set_xlim(-0.5, len(ranked) - 0.5)
    axes.set_ylabel("training images")
    axes.grid(alpha=0.3, axis="y")
    return save(figure, path)


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


def image_mosaic(panels, path, title=None, per_row=MOSAIC_COLUMNS):
    """(title, image) panels, `per_row` to a row, each titled: one photo as many models colour it (the
    leaderboard's side-by-side figure); returns the path. Images as sample_grid takes them, all of one size."""
    panels = list(panels)
    if not panels:
        raise ValueError("image_mosaic needs at least one panel")
    columns = min(per_row, len(panels))
    rows = -(-len(panels) // columns)
    height, width = displayable(panels[0][1]).shape[:2]
    figure = Figure(figsize=(MOSAIC_CELL_WIDTH * columns, (MOSAIC_CELL_WIDTH * height / width + 0.6) * rows),
                    layout="constrained")
    if title:
        figure.suptitle(title)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat:
        axes.set_axis_off()
    for axes, (panel_title, image) in zip(grid.flat, panels):
        image = displayable(image)
        axes.imshow(image, **({"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if image.ndim == 2 else {}))
        axes.set_title("\n".join(textwrap.wrap(panel_title, TITLE_CHARACTERS)), fontsize=7)
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
    """Every runs_root/<paper>/<scale>/results.json, with links to its figures, -> one Markdown file at index_path.

    Deterministic (sorted, no timestamp of its own), so rerunning it without new runs leaves the file unchanged.
    """
    runs_root, index_path = Path(runs_root), Path(index_path)
    index_dir = index_path.parent
    lines = [
        "# chroma reproduction results",
        "",
        f"Generated by `chroma.reports.update_results_index` from every `{relative(runs_root, index_dir)}/"
        f"<paper>/<scale>/{RESULTS_JSON}`; do not edit by hand. Regenerate a paper's section with "
        "`make reproduce-<paper> SCALE=smoke|paper` (papers: see `experiments/`). Smoke runs only check the "
        "pipeline on a few images; compare the paper scale with the papers.",
    ]
    results = sorted(runs_root.glob(f"*/*/{RESULTS_JSON}"), key=lambda p: (p.parent.parent.name, p.parent.name))
    if not results:
        lines += ["", "No runs yet."]
    for results_path in results:
        run_dir = results_path.parent
        lines += ["", f"## {run_dir.parent.name} ({run_dir.name})", "", *results_lines(read_results(run_dir))]
        figures = sorted(run_dir.glob("*.png"))
        if figures:
            lines += ["", "Figures:", ""]
            lines += [f"- [{figure.name}]({relative(figure, index_dir)})" for figure in figures]
    index_dir.mkdir(parents=True, exist_ok=True)
    index_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return index_path


def relative(path, start):
    """`path` relative to directory `start`, with forward slashes as Markdown links want."""
    return Path(os.path.relpath(path, start)).as_posix()
