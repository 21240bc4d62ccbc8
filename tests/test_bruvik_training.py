"""Paper bruvik through the engine: frozen networks run once per batch, the embedding cache, the recipe."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from chroma.data import make_dataset, samples
from chroma.models.generator import BatchInput, Generator
from chroma.models.koalarization import KoalarizationGenerator
from chroma.models.patchgan import PatchDiscriminator
from chroma.models.segmentation_prior import SegmentationPrior
from chroma.recipes import load_experiment, select_runs, settings_at
from chroma.training import ConditionalGAN, stack_batches
from chroma.training.embedding_cache import compute_embeddings, with_cached_embeddings
from helpers import ab_of, trainable_count
from test_bruvik_models import TinyEmbedding
from test_experiments import inception_resnet_v2_stand_in

SIZE = 32


class CountingEmbedding(TinyEmbedding):
    """TinyEmbedding that counts the images it embeds, in graph mode too."""

    def __init__(self, classes=8, **kwargs):
        super().__init__(classes, **kwargs)
        self.images = tf.Variable(0, trainable=False, name="images")

    def call(self, scaled_l):
        self.images.assign_add(tf.shape(scaled_l)[0])
        return super().call(scaled_l)


class StepCountingEmbedding(TinyEmbedding):
    """TinyEmbedding that counts the images it embeds inside compiled train and test steps (graph mode)."""

    def __init__(self, classes=8, **kwargs):
        super().__init__(classes, **kwargs)
        self.images_in_steps = tf.Variable(0, trainable=False, name="images_in_steps")

    def call(self, scaled_l):
        if not tf.executing_eagerly():
            self.images_in_steps.assign_add(tf.shape(scaled_l)[0])
        return super().call(scaled_l)


def photo_batches(batch_size=2, **options):
    return make_dataset(samples(), SIZE, batch_size=batch_size, **options)


def bruvik_gan(embedding, g_steps, run_eagerly=False):
    model = ConditionalGAN(KoalarizationGenerator(embedding, SegmentationPrior()), PatchDiscriminator(8, 2), seed=0,
                           g_steps=g_steps)
    model.compile(g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5), d_optimizer=keras.optimizers.Adam(2e-4),
                  run_eagerly=run_eagerly)
    return model


def test_several_generator_updates_run_the_frozen_networks_once_per_image():
    """Paper bruvik's 5 G updates per D update, at 2: each G update on its own batch, the frozen networks
    run once per image (the D update and the first G update share one generator pass)."""
    embedding = CountingEmbedding()
    model = bruvik_gan(embedding, g_steps=2, run_eagerly=True)  # eager: the same step, without seconds of tracing
    batches = next(iter(stack_batches(photo_batches(), 2)))
    before = [w.numpy() for w in model.generator.trainable_weights]
    model.train_on_batch(batches)
    assert int(embedding.images.numpy()) == 4  # two batches of 2, each embedded once
    assert int(model.g_optimizer.iterations) == 2 and int(model.d_optimizer.iterations) == 1
    assert any(np.abs(w.numpy() - b).max() > 0 for w, b in zip(model.generator.trainable_weights, before))


def test_a_batch_with_a_cached_embedding_skips_the_network():
    embedding = CountingEmbedding()
    model = bruvik_gan(embedding, g_steps=1, run_eagerly=True)  # eager: tracing the step costs seconds
    batch = next(iter(photo_batches()))
    vector = tf.one_hot([1, 5], 8)
    model.train_on_batch({**batch, "embedding": vector})
    assert int(embedding.images.numpy()) == 0
    # The cached vector is what the generator fuses.
    generator = model.generator
    with_vector = generator({**generator.complete(batch), "embedding": vector})["ab"]
    np.testing.assert_allclose(generator(generator.complete({**batch, "embedding": vector}))["ab"], with_vector)
    assert np.abs(ab_of(generator, batch["L"]) - with_vector).max() > 1e-6


def test_settings_cache_embeddings_computes_each_vector_once_before_training(tmp_path, capsys):
    from chroma.training import Run, Settings, train
    from test_training import tiny_discriminator

    class EmbeddingShift(Generator):
        """ab from L shifted by a map of the embedding: KoalarizationGenerator's interface at the smallest size."""

        def __init__(self, embedding):
            super().__init__()
            self.embedding = embedding
            self.conv = keras.layers.Conv2D(2, 3, padding="same")
            self.shift = keras.layers.Dense(2)
            self.build({"L": (None, None, None, 1)})

        def batch_inputs(self):
            return {"embedding": BatchInput("L", self.embedding, per_image=True)}

        def call(self, batch, training=False):
            inputs = self.complete(batch)
            return {"ab": keras.ops.tanh(self.conv(inputs["L"]) + self.shift(inputs["embedding"])[:, None, None, :])}

    embedding = StepCountingEmbedding()
    run = Run("cached", "a generator reading a cached embedding",
              lambda settings: ConditionalGAN(EmbeddingShift(embedding), tiny_discriminator(), seed=0),
              lambda total_steps: dict(g_optimizer=keras.optimizers.Adam(2e-4), d_optimizer=keras.optimizers.Adam(2e-4)),
              paper={}, metrics=("l1_ab",))
    settings = Settings(train_data="samples?take=4", eval_data="samples?skip=6", image_size=16, batch_size=2,
                        epochs=1, cache_embeddings=True)
    train(run, settings, tmp_path, verbose=0)
    cache_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("embedding cache:")]
    # One pass over the 4 training and 2 validation images, then never in a train or validation step...
    assert [line.split(" in ")[0] for line in cache_lines] == ["embedding cache: 4 images", "embedding cache: 2 images"]
    assert int(embedding.images_in_steps.numpy()) == 0
    # ...where it would have counted: a traced function of the network counts its images.
    tf.function(embedding)(tf.zeros((3, 16, 16, 1)))
    assert int(embedding.images_in_steps.numpy()) == 3


def test_the_cache_finds_each_image_by_name_through_shuffling_and_flips():
    embedding = TinyEmbedding(8)
    names, vectors = compute_embeddings(embedding, samples(), SIZE, batch_size=3)
    assert sorted(name.decode() for name in names) == sorted(record.name for record in samples().records)
    unflipped = {}
    for batch in photo_batches(batch_size=1):
        unflipped[batch["name"][0].numpy()] = embedding(batch["L"]).numpy()[0]
    shuffled = with_cached_embeddings(photo_batches(batch_size=3, shuffle=True, flip=True, seed=3), names, vectors)
    seen = 0
    for batch in shuffled:
        for name, vector in zip(batch["name"].numpy(), batch["embedding"].numpy()):
            np.testing.assert_allclose(vector, unflipped[name], rtol=1e-5, atol=1e-7)
            seen += 1
    assert seen == 8


def test_an_image_missing_from_the_cache_is_an_error():
    names, vectors = compute_embeddings(TinyEmbedding(8), samples(), SIZE, batch_size=4)
    dataset = with_cached_embeddings(photo_batches(), names[:3], vectors[:3])
    with pytest.raises(tf.errors.InvalidArgumentError, match="missing from the embedding cache"):
        list(dataset)


# experiments/bruvik.py


@pytest.fixture
def bruvik(monkeypatch):
    """The recipe with a 1001-class stand-in for Inception-ResNet-v2, so every run builds in a second."""
    recipe = load_experiment("bruvik")
    monkeypatch.setattr(recipe, "inception", lambda settings, probabilities=False: TinyEmbedding(1001))
    return recipe


def test_table_2s_rows_are_switches_of_one_generator(bruvik):
    settings = settings_at(bruvik, "paper", coco="/data/coco")._replace(assets={"deeplabv3": "random"})
    assert (settings.image_size, settings.batch_size, settings.epochs) == (256, 64, 15)
    runs = {run.key: run for run in select_runs(bruvik)}
    full = 5_845_656 + 322_048 + 424_802  # table 1's encoder (24 channels in), fusion 1257 -> 256, decoder
    expected = {
        "no_pretraining": (True, True, full),
        "no_segmentation": (True, False, 6_574_050),
        "no_inception": (False, True, 5_845_656 + 65_792 + 424_802),
        "koalarization": (True, False, 6_574_050),
        "ours": (True, True, full),
        "ours_batch16": (True, True, full),
    }
    for key, (inception, segmentation, parameters) in expected.items():
        model = runs[key].build(runs[key].settings_for(settings))
        generator = model.generator
        assert (generator.embedding is not None, generator.segmenter is not None) == (inception, segmentation), key
        assert trainable_count(generator) == parameters, key
        assert model({"L": tf.zeros((1, 256, 256, 1))}).shape == (1, 256, 256, 2)
        assert (runs[key].pretrain is not None) == (key not in ("no_pretraining", "koalarization")), key
    assert trainable_count(runs["ours"].build(settings).discriminator) == 2_765_633  # the 70x70 PatchGAN


def test_the_recipe_follows_sections_5_5_and_5_6(bruvik):
    settings = settings_at(bruvik, "paper", coco="/data/coco")
    runs = {run.key: run for run in select_runs(bruvik)}
    gan = runs["ours"].compile_args(total_steps=1)
    assert gan["reconstruction_loss"] == "l1"
    for key in ("no_pretraining", "no_segmentation", "no_inception", "ours", "ours_batch16"):
        model = runs[key].build(bruvik.SCALES["smoke"])
        assert (model.g_steps, model.d_steps) == (5, 1), key  # 5.6: one D update per five G updates
    assert runs["pix2pix"].build(bruvik.SCALES["smoke"]).g_steps == 1
    for optimizer in (gan["g_optimizer"], gan["d_optimizer"]):
        assert float(optimizer.learning_rate) == pytest.approx(2e-4) and float(optimizer.beta_1) == 0.5
    pretraining = runs["ours"].pretrain
    assert pretraining.settings(settings).epochs == 20
    assert float(pretraining.compile_args(1)["optimizer"].learning_rate) == pytest.approx(1e-4)
    assert pretraining.compile_args(1)["loss"] == "l1"
    koalarization = runs["koalarization"].compile_args(1)
    assert koalarization["loss"] == "mse" and float(koalarization["optimizer"].learning_rate) == pytest.approx(1e-3)
    assert runs["ours_batch16"].settings_for(settings).batch_size == 16
    assert set(bruvik.LOSS_TABLE[1]) == {"ours", "ours_batch16"}


def test_paper_scale_asks_for_the_pretrained_networks():
    bruvik = load_experiment("bruvik")
    settings = settings_at(bruvik, "paper", coco="/data/coco")
    with pytest.raises(ValueError, match="--asset inception="):
        bruvik.inception(settings)
    with pytest.raises(ValueError, match="--asset deeplabv3="):
        bruvik.segmenter(settings)


def test_the_embedding_is_inceptions_logits_as_section_5_3_3_says(monkeypatch):
    # The stand-in ends in a Dense with the classifier_activation asked for, as the real network (which
    # test_bruvik_models builds) does, in milliseconds rather than seconds.
    monkeypatch.setattr(keras.applications, "InceptionResNetV2", inception_resnet_v2_stand_in)
    bruvik = load_experiment("bruvik")
    embedding = bruvik.inception(bruvik.SCALES["smoke"])  # "the final layer preceding the softmax"
    assert not embedding.probabilities
    assert embedding.network.layers[-1].activation.__name__ == "linear"
    # Deep Koalarization's own baseline fuses the classifier's softmax, as its code does; the GANs the logits.
    runs = {run.key: run for run in select_runs(bruvik)}
    for key, activation in (("koalarization", "softmax"), ("ours", "linear"), ("no_segmentation", "linear")):
        fused = runs[key].build(bruvik.SCALES["smoke"]).generator.embedding
        assert fused.network.layers[-1].activation.__name__ == activation, key


def test_figure_6_counts_the_training_images_of_each_coco_class(fake_coco, tmp_path):
    from chroma import reports
    from chroma.reproduce import class_counts

    assert load_experiment("bruvik").CLASS_HISTOGRAM
    # Each image under the category covering most of its area; images without instances are left out.
    counts = class_counts(f"coco:{fake_coco}?split=train2017")
    assert counts == {"person": 1, "dog": 1, "car": 1}
    assert class_counts("samples") == {}  # the bundled photos have no classes: the figure says so
    bars = reports.class_histogram({"person": 5, **counts}, tmp_path / "classes.png", "classes")
    empty = reports.class_histogram({}, tmp_path / "none.png", "classes")
    assert bars.stat().st_size > 0 and empty.stat().st_size > 0
