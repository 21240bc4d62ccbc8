"""The paper recipes in experiments/: the papers' models at the papers' sizes, and every run's at smoke size."""

import keras
import pytest

from chroma.models.caption_chromagan import CaptionChromaGANGenerator
from chroma.models.chromagan import ChromaGANGenerator
from chroma.models.chromagan_critic import ChromaGANCritic
from chroma.models.dcgan_critic import DCGANCritic
from chroma.models.iizuka import IizukaColorizer
from chroma.models.inception_embedding import InceptionEmbedding
from chroma.models.koalarization import KoalarizationGenerator
from chroma import cli
from chroma.recipes import known_experiments, load_experiment, select_runs, settings_at
from chroma.reproduce import reproduce
from helpers import trainable_count

pytestmark = pytest.mark.xdist_group("experiments")  # every recipe's smoke models: built once, on one worker


def test_nampouri_paper_scale_builds_figures_10_to_15():
    nampouri = load_experiment("nampouri")
    settings = settings_at(nampouri, "paper", coco="/data/coco")
    assert (settings.image_size, settings.batch_size, settings.epochs) == (256, 16, 300)
    assert settings.train_data == "coco:/data/coco?split=train2017&take=8000"
    unet_run, resnet_run = select_runs(nampouri)
    unet_cgan = unet_run.build(settings)
    assert trainable_count(unet_cgan.generator) == 19_536_128 + 34_874_242  # "54 million" (section 7)
    assert trainable_count(unet_cgan.discriminator) == 2_765_633
    resnet_cgan = resnet_run.build(settings)
    assert trainable_count(resnet_cgan.generator) == 11_176_512 + 3_544_066  # "15 million"
    recipe = unet_run.compile_args(total_steps=150_000)
    assert recipe["reconstruction_weight"] == 100.0
    assert float(recipe["g_optimizer"].learning_rate) == pytest.approx(2e-4)
    assert float(recipe["d_optimizer"].beta_1) == 0.5


def test_paper_scale_without_coco_says_what_it_needs():
    with pytest.raises(ValueError, match="COCO="):
        settings_at(load_experiment("nampouri"), "paper")


def test_unknown_experiment_lists_the_known_ones():
    with pytest.raises(FileNotFoundError, match="known: .*nampouri"):
        load_experiment("no_such_paper")


def test_efthymiadis_recipe_follows_section_3():
    efthymiadis = load_experiment("efthymiadis")
    settings = settings_at(efthymiadis, "paper", coco="/data/coco", data="/data/imagenet27")
    runs = {run.key: run for run in select_runs(efthymiadis)}
    assert len(runs) == 6  # every row of Table 1
    cnn = runs["cnn"].settings_for(settings)
    assert (cnn.image_size, cnn.epochs) == (224, 100)
    classifier = runs["cnn_classifier"]
    assert (classifier.settings_for(settings).image_size, classifier.settings_for(settings).epochs) == (224, 200)
    recipe = classifier.compile_args(total_steps=1)
    term, = recipe["auxiliary_losses"]
    assert (term.name, term.output, term.target, term.weight) == ("classification", "class_logits", "label", 1 / 300)
    assert float(recipe["optimizer"].learning_rate) == pytest.approx(5e-5)
    for key in ("pretrained_ugan", "pretrained_attention_ugan"):
        fine_tuning = runs[key].settings_for(settings)
        pretraining = runs[key].pretrain.settings(fine_tuning)
        assert fine_tuning.epochs == 20 and fine_tuning.train_data == "/data/imagenet27/train"
        assert pretraining.train_data.startswith("coco:/data/coco?split=train2017")
    assert runs["attention_ugan"].settings_for(settings).image_size == 256
    # 3.3.3's "quite small" D rate is the Attention U-Net's; the Baseline UGANs are pix2pix's ([16]).
    d_rates = {key: float(runs[key].compile_args(total_steps=1)["d_optimizer"].learning_rate)
               for key in ("attention_ugan", "pretrained_attention_ugan", "baseline_ugan", "pretrained_ugan")}
    assert d_rates == pytest.approx({"attention_ugan": 2e-5, "pretrained_attention_ugan": 2e-5,
                                     "baseline_ugan": 2e-4, "pretrained_ugan": 2e-4})
    model = classifier.build(classifier.settings_for(settings))
    assert model.generator.classifier.output_shape[-1] == 27


def test_efthymiadis_paper_scale_needs_both_datasets():
    with pytest.raises(ValueError, match="DATA=.*COCO="):
        settings_at(load_experiment("efthymiadis"), "paper", coco="/data/coco")


# Every recipe's networks at smoke size: synchronised batch norm


# Networks with no batch norm of their own to train, and why. Every other network a recipe builds must have
# some (so the walk below cannot pass by finding none); each listed one must have none (so the list stays true).
NO_BATCH_NORM = {
    ChromaGANCritic: "WGAN-GP critic (ChromaGAN's release; Gulrajani et al. 4): batch norm would tie the scores",
    DCGANCritic: "WGAN-GP critic (paper agosti VI): 'no critic batch normalization'",
    IizukaColorizer: "paper efthymiadis 3.2 follows Joniak's implementation of Iizuka et al., which has none",
    KoalarizationGenerator: "Deep Koalarization has none; its Inception-ResNet-v2 is frozen (FROZEN_PRETRAINED)",
}

# Networks whose batch norms may stay per-replica: pretrained feature extractors kept frozen (trainable=False).
# Keras 3 runs a BatchNormalization that is not trainable in inference mode, on its moving statistics, whatever
# `training` says: it computes no batch statistics, so there is nothing to synchronise across replicas.
FROZEN_PRETRAINED = {
    InceptionEmbedding: "paper bruvik's class embedding (5.3.3): keras.applications' Inception-ResNet-v2, frozen",
}


def inception_resnet_v2_stand_in(classifier_activation="softmax", **kwargs):
    """keras.applications.InceptionResNetV2's interface with one plain batch norm, built in milliseconds.

    The real network builds in seconds; inside the frozen InceptionEmbedding
    every batch norm is exempt alike (FROZEN_PRETRAINED), so one stands for its 204.
    """
    del kwargs  # weights: random either way
    images = keras.Input((299, 299, 3))
    x = keras.layers.Conv2D(8, 3, strides=8, use_bias=False)(images)
    x = keras.layers.BatchNormalization(scale=False)(x)  # as keras.applications builds them: not synchronized
    x = keras.layers.GlobalAveragePooling2D()(x)
    classes = keras.layers.Dense(1000, activation=classifier_activation)(x)
    return keras.Model(images, classes, name="inception_resnet_v2_stand_in")


@pytest.fixture(scope="module")
def smoke_models():
    """{(recipe, run key): model} for every run of every recipe in experiments/ at smoke size, and
    {(recipe, "<run key>/pretrain"): model} for a pretraining phase with a model of its own.

    Paper bruvik's Inception-ResNet-v2 is inception_resnet_v2_stand_in. Runs with the same builder and
    settings (rows of a table that differ in their training recipe alone) share one model: a builder
    reads nothing but the settings, so it would build the same networks again, at seconds apiece.
    """
    models, built = {}, []  # built: (builder, settings, model); Settings holds a dict, so it is no dict key

    def build(builder, settings):
        for known_builder, known_settings, model in built:
            if known_builder is builder and known_settings == settings:
                return model
        model = builder(settings)
        built.append((builder, settings, model))
        return model

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.applications, "InceptionResNetV2", inception_resnet_v2_stand_in)
        for name in known_experiments():
            recipe = load_experiment(name)
            smoke = recipe.SCALES["smoke"]
            for run in select_runs(recipe):
                settings = run.settings_for(smoke)
                models[name, run.key] = build(run.build, settings)
                if run.pretrain is not None and run.pretrain.build is not None:
                    models[name, f"{run.key}/pretrain"] = build(run.pretrain.build, run.pretrain.settings(settings))
    return models


def batch_norms(network):
    """(path, layer, frozen) for each BatchNormalization in `network`, however deeply nested.

    Children are the layers a layer tracks: a Functional or Sequential
    model's, and a custom layer's or model's layer attributes. `frozen`: the
    layer lies in a frozen network of a FROZEN_PRETRAINED class.
    """
    found, seen = [], set()

    def walk(layer, path, frozen):
        if id(layer) in seen:  # a layer two parents share counts once
            return
        seen.add(id(layer))
        frozen = frozen or (isinstance(layer, tuple(FROZEN_PRETRAINED)) and not layer.trainable)
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append((path, layer, frozen))
        for child in layer._flatten_layers(include_self=False, recursive=False):
            walk(child, f"{path}/{child.name}", frozen)

    walk(network, "", False)
    return found


def test_every_trained_batch_norm_is_synchronized_across_replicas(smoke_models):
    """README: under tf.distribute batch norm uses the global batch's statistics, in every recipe's networks."""
    plain, missing, unexpected, trained_count, frozen_count = [], [], [], 0, 0
    for (recipe, run), model in smoke_models.items():
        for network_name, network in model.networks().items():
            where = f"{recipe}/{run}/{network_name}"
            found = batch_norms(network)
            # The walk found every batch norm the network's weights hold (each has a moving mean).
            moving_means = {id(weight) for weight in network.weights if weight.path.endswith("/moving_mean")}
            assert {id(layer.moving_mean) for _, layer, _ in found} == moving_means, f"{where}: the walk missed some"
            assert all(not layer.trainable for _, layer, frozen in found if frozen), where
            trained = [(path, layer) for path, layer, frozen in found if not frozen]
            plain += [f"{where}{path}" for path, layer in trained if not layer.synchronized]
            trained_count += len(trained)
            frozen_count += len(found) - len(trained)
            if type(network) in NO_BATCH_NORM and trained:
                unexpected.append(f"{where} ({type(network).__name__})")
            elif type(network) not in NO_BATCH_NORM and not trained:
                missing.append(f"{where} ({type(network).__name__})")
    assert not plain, "batch norm not synchronized across replicas (synchronized=False):\n" + "\n".join(plain)
    assert not missing, "no batch norm; if on purpose, add the class to NO_BATCH_NORM with why:\n" + "\n".join(missing)
    assert not unexpected, "batch norm in a network of NO_BATCH_NORM; drop it from there:\n" + "\n".join(unexpected)
    assert {recipe for recipe, _ in smoke_models} == set(known_experiments())
    assert trained_count > 0
    assert frozen_count > 0, "no network needs FROZEN_PRETRAINED's allowance any more: drop it"


def test_villarenteria_runs_build_their_generators(smoke_models):
    built = {run: model.generator for (recipe, run), model in smoke_models.items() if recipe == "villarenteria"}
    assert list(built) == ["reference", "reference_no_classes", "model_a_1_epoch", "model_a", "model_a2",
                           "model_b", "model_c1", "model_c2"]
    assert all(isinstance(built[key], ChromaGANGenerator)
               for key in ("reference", "reference_no_classes", "model_a_1_epoch", "model_a", "model_a2"))
    assert (built["model_b"].mode, built["model_c1"].mode, built["model_c2"].mode) == ("channel", "film", "film")
    assert (built["model_c1"].captioning, built["model_c2"].captioning) == ("colour", "gray")
    assert isinstance(built["model_b"], CaptionChromaGANGenerator)
    # The vocabulary is the training captions' words (the bundled photos' hand-written captions), not those of the
    # photo it validates on.
    vocabulary = built["model_b"].tokenizer.get_vocabulary()
    assert "motorcycle" in vocabulary and "astronaut" not in vocabulary


def test_a_best_epoch_monitor_is_a_value_its_smoke_model_logs(smoke_models):
    """test_scoring's check of every recipe at once, on the models built here anyway: compiled with its
    run's arguments, a model tracks the losses it will log."""
    for name in known_experiments():
        for run in select_runs(load_experiment(name)):
            if run.scored_at == "best":
                model = smoke_models[name, run.key]
                model.compile(**run.compile_args(total_steps=1))
                assert run.monitor.removeprefix("val_") in model.loss_trackers, f"{name}/{run.key}"


def test_a_recipes_asset_reaches_its_runs_and_a_missing_file_says_how_to_do_without(tmp_path):
    nampouri = load_experiment("nampouri")
    missing = tmp_path / "resnet_18_imagenet"
    settings = settings_at(nampouri, "paper", coco="/data/coco")._replace(assets={"resnet18": str(missing)})
    _, resnet_run = select_runs(nampouri)
    with pytest.raises(FileNotFoundError, match="--asset resnet18=none") as error:
        resnet_run.build(settings)
    assert str(missing) in str(error.value)


def test_an_asset_no_recipe_reads_is_refused_with_the_ones_it_does(tmp_path):
    with pytest.raises(ValueError, match="nampouri reads no asset named vgg16. Its assets:\n  resnet18: ") as error:
        reproduce(load_experiment("nampouri"), "smoke", runs_root=tmp_path, assets={"vgg16": "imagenet"})
    assert "lpips" not in str(error.value)  # nampouri's table has no LPIPS column
    # agosti's table has FID and LPIPS, so their weights are its assets.
    with pytest.raises(ValueError, match="Its assets:\n  lpips: .*\n  fid: "):
        reproduce(load_experiment("agosti"), "smoke", runs_root=tmp_path, assets={"resnet18": "none"})
    assert not any(tmp_path.iterdir())  # refused before any training


def test_asset_arguments_are_name_equals_path(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["reproduce", "nampouri", "--asset", "resnet18"])
    assert exit_info.value.code == 2
    assert "expected NAME=PATH, got 'resnet18'" in capsys.readouterr().err


def test_each_recipe_draws_the_figures_and_tables_its_paper_has():
    runs = {(paper, run.key): run for paper in ("bruvik", "efthymiadis", "villarenteria")
            for run in select_runs(load_experiment(paper))}
    assert tuple(runs["bruvik", "ours"].sample_epochs(15)) == (14, 15)  # figure 8: epochs 14 and 15
    assert runs["efthymiadis", "cnn"].sample_epochs(100) == [1, 25, 50, 75, 100]  # figure 7: over 100 epochs
    assert runs["efthymiadis", "cnn"].sample_epochs(2) == [1, 2]  # a short run: its own epochs, no epoch 0
    assert list(runs["villarenteria", "model_a2"].sample_epochs(5)) == [1, 2, 3, 4, 5]  # figure 6: the diverged
    assert load_experiment("agosti").TRAINING_SAMPLES  # figure 5: training images
    literature, = load_experiment("bruvik").REFERENCE_ROWS  # table 2's first column
    assert literature["paper"] == {"ssim": 0.94} and "22-25" in literature["note"]
    heading, epochs = load_experiment("villarenteria").BEST_EPOCH_TABLE  # table 3
    assert epochs == {"model_a": {"epochs": 5, "best epoch": 1}, "model_a2": {"epochs": 5, "best epoch": 4},
                      "model_b": {"epochs": 10, "best epoch": 8}}
    assert all(runs["villarenteria", key].scored_at == "best" for key in epochs)
