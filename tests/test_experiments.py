"""The paper recipes in experiments/: they build the papers' models at the papers' sizes."""

import pytest

from chroma.reproduce import load_experiment, select_runs


def trainable(model):
    return sum(int(w.shape.num_elements()) for w in model.trainable_weights)


def test_nampouri_paper_scale_builds_figures_10_to_15():
    nampouri = load_experiment("nampouri")
    settings = nampouri.settings("paper", coco="/data/coco")
    assert (settings.image_size, settings.batch_size, settings.epochs) == (256, 16, 300)
    assert settings.train_data == "coco:/data/coco?split=train2017&take=8000"
    unet_run, resnet_run = select_runs(nampouri)
    unet_cgan = unet_run.build(settings)
    assert trainable(unet_cgan.generator) == 19_536_128 + 34_874_242  # "54 million" (section 7)
    assert trainable(unet_cgan.discriminator) == 2_765_633
    resnet_cgan = resnet_run.build(settings)
    assert trainable(resnet_cgan.generator) == 11_176_512 + 3_544_066  # "15 million"
    recipe = unet_run.compile_args(total_steps=150_000)
    assert recipe["reconstruction_weight"] == 100.0
    assert float(recipe["g_optimizer"].learning_rate) == pytest.approx(2e-4)
    assert float(recipe["d_optimizer"].beta_1) == 0.5


def test_paper_scale_without_coco_says_what_it_needs():
    with pytest.raises(ValueError, match="COCO="):
        load_experiment("nampouri").settings("paper")


def test_unknown_experiment_lists_the_known_ones():
    with pytest.raises(FileNotFoundError, match="known: .*nampouri"):
        load_experiment("no_such_paper")


def test_efthymiadis_recipe_follows_section_3():
    efthymiadis = load_experiment("efthymiadis")
    settings = efthymiadis.settings("paper", coco="/data/coco", data="/data/imagenet27")
    runs = {run.key: run for run in select_runs(efthymiadis)}
    assert len(runs) == 6  # every row of Table 1
    cnn = runs["cnn"].settings_for(settings)
    assert (cnn.image_size, cnn.epochs) == (224, 100)
    classifier = runs["cnn_classifier"]
    assert (classifier.settings_for(settings).image_size, classifier.settings_for(settings).epochs) == (224, 200)
    recipe = classifier.compile_args(total_steps=1)
    assert recipe["classification_weight"] == pytest.approx(1 / 300)
    assert float(recipe["optimizer"].learning_rate) == pytest.approx(5e-5)
    for key in ("pretrained_ugan", "pretrained_attention_ugan"):
        fine_tuning = runs[key].settings_for(settings)
        pretraining = runs[key].pretrain.settings(fine_tuning)
        assert fine_tuning.epochs == 20 and fine_tuning.train_data == "/data/imagenet27/train"
        assert pretraining.train_data.startswith("coco:/data/coco?split=train2017")
    assert runs["attention_ugan"].settings_for(settings).image_size == 256
    model = classifier.build(classifier.settings_for(settings))
    assert model.generator.classifier.output_shape[-1] == 27


def test_efthymiadis_paper_scale_needs_both_datasets():
    with pytest.raises(ValueError, match="DATA=.*COCO="):
        load_experiment("efthymiadis").settings("paper", coco="/data/coco")
