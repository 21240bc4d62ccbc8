"""The model card every exported SavedModel carries: README.md in the Hugging Face format.

Its YAML header holds the licence, tags and a `model-index` whose eval results are the run's scores from the
results.json that `chroma reproduce` or `chroma train` wrote (chroma.reports), so a folder uploaded to a model
hub shows them; the body says what the model is, the recipe and paper, the data, the commit, and the known
limits. JSON strings are YAML scalars, so every value is written as JSON: no YAML library is needed.
"""

import json
from pathlib import Path

from chroma.evaluation import COLUMN_TITLES

CARD_FILE = "README.md"
LICENSE = "apache-2.0"  # chroma's (setup.cfg); trained weights follow their data's terms, which the card says
METRIC_KEYS = {title: key for key, title in COLUMN_TITLES.items()}
KNOWN_LIMITS = (
    "Colours are guesses learnt from the training photos: a colorization is plausible, not a record of the "
    "true colours, and the model's biases are its data's.",
    "The generator sees a copy resized to its square input size; its colours are upsampled and joined to the "
    "photo's own lightness, so small objects may take their surroundings' colour.",
    "PSNR and SSIM reward grayish output (every paper chroma reproduces says so); compare colourfulness too.",
)


def scored_result(run_dir):
    """(results.json's dict, the row of the run in run_dir) where `chroma train` (results in the run folder) or
    `chroma reproduce` (results beside the run folders) scored it; None for a run not scored yet."""
    from chroma.export import RUN_FILE  # chroma.export writes the card: imported here, not at the top
    from chroma.reports import RESULTS_JSON  # matplotlib's import, only where results are read

    run_dir = Path(run_dir)
    key = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8")).get("run")
    for folder in (run_dir, run_dir.parent):
        path = folder / RESULTS_JSON
        if not path.is_file():
            continue
        results = json.loads(path.read_text(encoding="utf-8"))
        for row in results["tables"][0]["rows"]:
            if row.get("run", {}).get("key") == key:
                return results, row
    return None


def model_card(model_class, image_size, result=None):
    """README.md's text for an exported generator; `result`: scored_result's pair, or None (a bare .keras file:
    no scores to show)."""
    results, row = result if result is not None else ({}, {})
    name = row.get("model", model_class)
    run = row.get("run", {})
    protocol, code = run.get("protocol", {}), results.get("provenance", {}).get("code", {})
    paper = results.get("paper") or run.get("recipe")  # `chroma train`'s table quotes no paper; its run names it
    header = [
        "---",
        f"license: {LICENSE}",
        "library_name: tensorflow",
        "pipeline_tag: image-to-image",
        "tags:",
        *[f"- {json.dumps(tag)}" for tag in ("image-colorization", "chroma", "keras", *([paper] if paper else []))],
    ]
    scores = {title: value for title, value in row.get("ours", {}).items() if value is not None}
    if scores:
        header += [
            "model-index:",
            f"- name: {json.dumps(name)}",
            "  results:",
            "  - task:",
            "      type: image-to-image",
            "      name: Image colorization",
            "    dataset:",
            f"      name: {json.dumps(protocol.get('eval_data', 'unknown'))}",
            f"      type: {json.dumps(dataset_type(protocol.get('eval_data')))}",
            "    metrics:",
        ]
        for title, value in scores.items():
            header += [f"    - type: {json.dumps(METRIC_KEYS.get(title, title))}",
                       f"      name: {json.dumps(title)}",
                       f"      value: {json.dumps(value)}"]
    header.append("---")
    body = [f"# {name}", "", f"A {model_class} colorizer exported by chroma: it takes a gray photo of any size "
            f"and returns it in colour (the generator reads {image_size}x{image_size}). Serve it with TensorFlow "
            "Serving or `chroma serve`; its signatures are listed in chroma.json beside this file."]
    if row:
        body += ["", "## How it was trained and scored", "",
                 f"- Recipe: {results.get('title', paper)} (chroma recipe `{paper}`, run `{run.get('key')}`)"
                 if paper else f"- {results.get('title', '')}",
                 f"- Training data: `{protocol.get('train_data')}`; scored on `{protocol.get('eval_data')}` at "
                 f"{protocol.get('image_size')}x{protocol.get('image_size')}, its {protocol.get('scored_at')} "
                 f"weights in {protocol.get('scored_in')} mode",
                 f"- Trained in {run.get('precision')} on {run.get('replicas')} replica(s)",
                 f"- Code: {code_line(code)}",
                 f"- Scores: {', '.join(f'{title} {value:.4g}' for title, value in scores.items()) or 'none'}"
                 + (f" ({row['note']})" if row.get("note") else "")]
    body += ["", "## Known limits", "", *[f"- {limit}" for limit in KNOWN_LIMITS],
             "- Trained weights inherit the terms of the photos they learnt from (COCO's images carry their own "
             "Flickr licences); check them before you publish this model."]
    return "\n".join(header + [""] + body) + "\n"


def dataset_type(spec):
    """A data spec's kind, as a model hub's dataset type: coco, samples, tfds, or a folder."""
    if not spec:
        return "unknown"
    for kind in ("coco", "tfds"):
        if spec.startswith(f"{kind}:"):
            return kind
    return "samples" if spec.split("?")[0] == "samples" else "folder"


def code_line(code):
    if "commit" in code:
        return f"chroma at commit {code['commit']}" + (" with uncommitted changes" if code.get("modified") else "")
    return f"chroma {code.get('version', 'of unknown version')}"
