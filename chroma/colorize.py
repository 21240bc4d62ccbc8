"""`chroma colorize`: colour every photo of some files and folders at its full size.

Photos are decoded with chroma's Pillow loader, as training images are (CMYK,
16-bit, transparent, palette and gray files all become RGB; EXIF rotation is
applied), and coloured by an exported SavedModel's `colorize_image` signature.
Its `serving_default` decodes the same pixels from a file's bytes in TensorFlow
(chroma.data.decode.decode_photo, which names the few exceptions), so a photo served
gets the colours it gets here. A .keras model is wrapped by the very functions
that export would save, so both run the same graph.
With `samples`, each photo gets that many colorizations from `colorize_samples`,
which keeps the generator's dropout on (paper agosti, figure 4).
"""

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import tensorflow as tf
from PIL import Image

from chroma.data import IMAGE_EXTENSIONS, MAX_PIXELS, UnreadableImage, load_rgb
from chroma.export import is_saved_model, load_generator, serving_functions

JPEG_QUALITY = 95


def load_colorizer(model_path, image_size=256, samples=None, assets=None):
    """A SavedModel folder from `chroma export`, or a .keras file -> function uint8 RGB (H,W,3) -> uint8 (N,H,W,3).

    N is 1, or `samples` colorizations drawn with dropout on, for a generator
    that has dropout. image_size is the square size a .keras generator was
    trained at; a SavedModel carries its own. assets: the pretrained SavedModels a .keras file's layers run
    (chroma.export.load_keras_model).
    """
    model_path = Path(model_path)
    if is_saved_model(model_path):
        functions = tf.saved_model.load(str(model_path)).signatures
    elif model_path.is_dir():
        raise ValueError(f"{model_path} is a folder but not a SavedModel (no saved_model.pb)")
    else:
        functions = serving_functions(load_generator(model_path, assets), image_size)
    if samples is None:
        signature = functions["colorize_image"]
        return lambda rgb: signature(image=tf.constant(rgb))["colorized"].numpy()[None]
    if "colorize_samples" not in functions:
        reason = "its generator has no dropout"
        if is_saved_model(model_path):
            reason = "no colorize_samples signature (a generator without dropout, or exported before chroma had it)"
        raise ValueError(
            f"--samples needs a generator with dropout, its only source of noise; {model_path}: {reason}, "
            "so every sample would be the same"
        )
    signature = functions["colorize_samples"]
    return lambda rgb: signature(image=tf.constant(rgb), samples=tf.constant(samples))["colorized"].numpy()


def find_images(inputs, output_dir):
    """Files and folders (searched recursively) -> (image path, path relative to the output folder) pairs.

    A file given directly is tried whatever its extension and keeps its name;
    a folder's images (by extension, hidden ones left out) keep their path
    inside it, in sorted order. The output folder may not be, or lie inside,
    an input folder, nor hold an input file.
    """
    output_dir = Path(output_dir).resolve()
    found = []
    for item in map(Path, inputs):
        if item.is_dir():
            if output_dir.is_relative_to(item.resolve()):
                raise ValueError(f"the output folder {output_dir} is inside the input folder {item}; choose another -o")
            for path in sorted(item.rglob("*")):
                relative = path.relative_to(item)
                if (
                    path.suffix.lower() in IMAGE_EXTENSIONS
                    and path.is_file()
                    and not any(part.startswith(".") for part in relative.parts)
                ):
                    found.append((path, relative))
        elif item.is_file():
            if item.resolve().parent == output_dir:
                raise ValueError(f"the output folder {output_dir} holds the input {item}; choose another -o")
            found.append((item, Path(item.name)))
        else:
            raise FileNotFoundError(f"input {item} does not exist")
    return found


def output_path(relative, output_dir):
    """Where an image's colorized copy goes, and a note if its format cannot be written (then: PNG)."""
    path = Path(output_dir) / relative
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format in Image.SAVE:
        return path, ""
    return path.with_suffix(".png"), f" (Pillow cannot write {path.suffix}: saved as PNG)"


def sample_paths(path, samples):
    """a.jpg -> a_sample1.jpg ... a_sampleN.jpg, beside it."""
    return [path.with_name(f"{path.stem}_sample{number}{path.suffix}") for number in range(1, samples + 1)]


def save(rgb, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(rgb)
    if Image.registered_extensions()[path.suffix.lower()] == "JPEG":
        image.save(path, quality=JPEG_QUALITY)
    else:
        image.save(path)


def save_all(colorizations, paths):
    for rgb, path in zip(colorizations, paths):
        save(rgb, path)


def decoded_ahead(images, pool):
    """Each image's pixels as colorize reads them (or its UnreadableImage), the next decoding in `pool` meanwhile."""
    def read(path):
        try:
            # max_side: no resizing, every image keeps its size; MAX_PIXELS still bounds memory.
            return load_rgb(str(path), max_side=MAX_PIXELS, min_side=1)
        except UnreadableImage as error:
            return error

    upcoming = pool.submit(read, images[0][0]) if images else None
    for index in range(len(images)):
        current = upcoming.result()
        if index + 1 < len(images):
            upcoming = pool.submit(read, images[index + 1][0])
        yield current


def colorize_files(inputs, model_path, output_dir, image_size=256, samples=None, assets=None):
    """Colorizes every image of `inputs` into output_dir; returns (colorized, skipped) counts.

    With `samples` (N >= 1), each image gives N files, name_sample1 ... name_sampleN,
    each a different colorization. Unreadable files are skipped with one line
    each on stderr. Progress goes to stdout: a bar on a terminal, else one line per file.
    """
    if samples is not None and samples < 1:
        raise ValueError(f"--samples must be at least 1, got {samples}")
    model_path = Path(model_path)
    if not model_path.exists():
        raise FileNotFoundError(f"model {model_path} does not exist")
    images = find_images(inputs, output_dir)
    if not images:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {' '.join(map(str, inputs))}")
    colorize = load_colorizer(model_path, image_size, samples, assets)

    progress = keras.utils.Progbar(len(images), unit_name="image") if sys.stdout.isatty() else None
    line_break = "\n" if progress else ""  # a message must not land on the progress bar's line
    # Inputs, then each output written: none of them is ever overwritten.
    taken = {path.resolve() for path, _ in images}
    colorized, skipped = 0, 0
    writing = None  # the previous photo's save and its report, under way while this photo is coloured

    def report(number, path, written, note):
        if not progress:
            print(f"[{number}/{len(images)}] {path} -> {written}{note}", flush=True)
        elif note:
            print(f"{line_break}{written}{note}", file=sys.stderr)
        if progress:
            progress.update(number)

    def finish_writing():
        if writing:
            save_job, line = writing
            save_job.result()
            report(*line)

    # One thread decodes the next photo and one encodes the last while the network colours this one,
    # so the cores stay busy (Pillow and TensorFlow both release the GIL while they work).
    with ThreadPoolExecutor(max_workers=2) as pool:
        for number, ((path, relative), rgb) in enumerate(zip(images, decoded_ahead(images, pool)), start=1):
            destination, note = output_path(relative, output_dir)
            destinations = [destination] if samples is None else sample_paths(destination, samples)
            written = ", ".join(map(str, destinations))
            if isinstance(rgb, UnreadableImage):
                problem = str(rgb)
            else:
                clashes = [str(target) for target in destinations if target.resolve() in taken]
                problem = f"{clashes[0]} is an input or an earlier output" if clashes else ""
            if problem:
                finish_writing()
                writing = None
                skipped += 1
                print(f"{line_break}skipped {path}: {problem}", file=sys.stderr)
                if progress:
                    progress.update(number)
                continue
            colours = colorize(rgb)
            finish_writing()
            taken.update(target.resolve() for target in destinations)
            writing = pool.submit(save_all, colours, destinations), (number, path, written, note)
            colorized += 1
        finish_writing()
    print(f"colorized {colorized}, skipped {skipped}; written to {output_dir}")
    if not colorized:
        raise ValueError(f"none of the {len(images)} images could be colorized")
    return colorized, skipped
