import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from labelclean import CoTeachingFilter, NoisyStudent, PUClassifier, SelfTrainer, detection_scores
from labelclean.api import filter_labels, pu_labels, run_labeling, selftrain_labels
from labelclean.cli import cli
from labelclean.contrastive import (
    ContrastiveEncoder,
    alignment_loss,
    augment_images,
    corrupt_features,
    embedding_stats,
    margin_repulsion_loss,
    nt_xent_loss,
    phase_of,
)
from labelclean.io import OptionError
from tests.helpers import FAST, FAST_PARAMS, image_table, tabular_table, write

# ----------------------------------------------------------------- pure functions


def test_nt_xent_matches_its_definition():
    g = torch.Generator().manual_seed(0)
    z1, z2, tau = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g), 0.3
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    expected = 0.0
    for i in range(10):  # the textbook loop: -log(exp(s_i,p / t) / sum_{k != i} exp(s_i,k / t))
        partner = (i + 5) % 10
        sims = torch.stack([z[i] @ z[k] for k in range(10) if k != i]) / tau
        expected += -(z[i] @ z[partner] / tau - torch.logsumexp(sims, 0))
    assert nt_xent_loss(z1, z2, tau).item() == pytest.approx(expected.item() / 10, rel=1e-5)
    # scale-free: projections are normalised first
    assert nt_xent_loss(3 * z1, z2, tau).item() == pytest.approx(nt_xent_loss(z1, z2, tau).item(), rel=1e-5)


def test_alignment_and_margin_losses_do_one_thing_each():
    z = torch.eye(4)  # unit vectors, sqrt(2) apart
    w = torch.eye(8)
    assert alignment_loss(z, z).item() == 0.0
    assert alignment_loss(w[:4], w[4:]).item() == pytest.approx(2.0)
    # repulsion ignores positive pairs and negatives beyond the margin
    assert margin_repulsion_loss(w[:4], w[4:], 1.0).item() == 0.0
    assert margin_repulsion_loss(z, z, 1.0).item() == 0.0  # identical views: positives at distance 0 are fine
    close = torch.tensor([[1.0, 0.0], [1.0, 0.1]], requires_grad=True)
    loss = margin_repulsion_loss(close, close.detach() + 0.0, 1.0)
    loss.backward()
    assert loss.item() > 0 and close.grad.abs().sum() > 0
    stats = embedding_stats(z, z, 1.0)
    assert stats["alignment"].item() == 0.0 and stats["within_margin"].item() == 0.0
    assert stats["uniformity"].item() == pytest.approx(-4.0, abs=1e-5)  # every negative pair at d² = 2


def test_phase_schedule():
    assert [phase_of(e, "joint") for e in range(3)] == ["joint"] * 3
    assert [phase_of(e, "alternating") for e in range(4)] == ["positive", "negative"] * 2


def test_corrupt_features_draws_from_the_column_marginals():
    x = torch.arange(4000.0).reshape(1000, 4)
    view = corrupt_features(x, torch.Generator().manual_seed(0), corruption=0.6, noise=0.0, scale=torch.ones(4))
    for j in range(4):
        assert set(view[:, j].tolist()) <= set(x[:, j].tolist())
    # 60 % of cells resampled; a donor is the row itself 1 time in 1000
    assert float((view != x).float().mean()) == pytest.approx(0.6, abs=0.03)
    same = corrupt_features(x, torch.Generator().manual_seed(0), corruption=0.0, noise=0.0, scale=torch.ones(4))
    assert torch.equal(same, x)
    noisy = corrupt_features(x, torch.Generator().manual_seed(0), corruption=0.0, noise=0.5, scale=torch.full((4,), 2))
    assert float((noisy - x).std()) == pytest.approx(1.0, rel=0.1)


def test_augment_images_warps_each_image_on_its_own():
    x = torch.zeros(64, 1, 12, 12)
    x[:, :, 4:8, 4:8] = 1.0
    gen = torch.Generator().manual_seed(0)
    kw = dict(max_rotation=0.0, max_scale=0.0, noise=0.0, scale=torch.ones(1, 1, 1))
    assert torch.allclose(augment_images(x, gen, max_shift=0.0, **kw), x, atol=1e-6)
    moved = augment_images(x, gen, max_shift=0.25, **kw)
    assert moved.shape == x.shape and torch.isfinite(moved).all()
    centres = (moved[:, 0].sum(1) * torch.arange(12.0)).sum(1) / moved[:, 0].sum((1, 2))
    assert centres.std() > 0.5  # different shifts per image
    rotated = augment_images(x, gen, max_shift=0.0, max_rotation=30.0, max_scale=0.2, noise=0.1, scale=torch.ones(1))
    assert rotated.shape == x.shape and not torch.allclose(rotated[0], rotated[1])


# ----------------------------------------------------------------- behaviour


def hidden_circle(n: int = 1200, seed: int = 0):
    """Eight clusters on a circle in a 2-D latent space, classes alternating around it.

    The latent plane is hidden in 24 rotated, noisy features, next to 8 features of pure
    high-variance noise. No hyperplane separates the classes (any line cuts the circle into
    two arcs, and the labels alternate), so a linear probe on the raw features is near
    chance; an encoder that maps the clusters apart makes them linearly separable.
    """
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 8, n)
    angle = 2 * np.pi * cluster / 8
    latent = 3.0 * np.c_[np.cos(angle), np.sin(angle)] + rng.normal(0, 0.35, (n, 2))
    rotation, _ = np.linalg.qr(rng.normal(size=(24, 24)))
    x = latent @ rng.normal(size=(2, 24)) @ rotation + rng.normal(0, 0.5, (n, 24))
    X = np.c_[x, rng.normal(0, 3.0, (n, 8))].astype(np.float32)
    return X, cluster % 2


def linear_probe(Z_train, y_train, Z_test, y_test) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(Z_train, y_train)
    return float(model.score(Z_test, y_test))


@pytest.fixture(scope="module")
def circle():
    X, y = hidden_circle(1200)
    return X[:800], y[:800], X[800:], y[800:]


@pytest.fixture(scope="module")
def fitted(circle):
    X, _, _, _ = circle
    return ContrastiveEncoder(random_state=0).fit(X)


def test_linear_probe_on_embeddings_beats_raw_features(circle, fitted):
    X, y, X_test, y_test = circle
    raw = linear_probe(X, y, X_test, y_test)
    embedded = linear_probe(fitted.transform(X), y, fitted.transform(X_test), y_test)
    assert raw < 0.6, "the task must hide its classes from a linear model"
    assert embedded > raw + 0.2, (raw, embedded)


def test_alternating_phases_run_and_also_learn(circle):
    X, y, X_test, y_test = circle
    enc = ContrastiveEncoder(phases="alternating", max_epochs=20, random_state=0).fit(X)
    assert [h["phase"] for h in enc.history_] == ["positive", "negative"] * 10
    assert all(np.isfinite(h["loss"]) for h in enc.history_)
    assert linear_probe(enc.transform(X), y, enc.transform(X_test), y_test) > 0.7


def test_embeddings_shape_dtype_names_and_history(circle, fitted):
    X, _, X_test, _ = circle
    Z = fitted.transform(X_test)
    assert Z.shape == (len(X_test), 64) and Z.dtype == np.float32 and np.isfinite(Z).all()
    assert fitted.get_feature_names_out().tolist() == [f"contrastiveencoder{i}" for i in range(64)]
    assert [h["phase"] for h in fitted.history_] == ["joint"] * 20
    assert {"loss", "alignment", "uniformity", "within_margin", "seconds"} <= set(fitted.history_[0])
    # the loss goes down: views of a row become easier to match
    assert fitted.history_[-1]["loss"] < fitted.history_[0]["loss"]
    df = pd.DataFrame(X[:100], columns=[f"f{i}" for i in range(X.shape[1])])
    enc = ContrastiveEncoder(n_components=3, max_epochs=1, random_state=0).fit(df)
    assert list(enc.feature_names_in_) == list(df.columns) and enc.transform(df).shape == (100, 3)


def test_images_in_every_layout():
    rng = np.random.default_rng(0)
    X = rng.random((96, 12, 12), dtype=np.float32)
    params = dict(n_components=6, max_epochs=2, batch_size=32, random_state=0)
    ref = ContrastiveEncoder(**params).fit(X)
    assert ref.input_shape_ == (1, 12, 12)
    Z = ref.transform(X)
    assert Z.shape == (96, 6) and Z.dtype == np.float32 and np.isfinite(Z).all()
    nhwc = ContrastiveEncoder(**params).fit(X[..., None])
    np.testing.assert_allclose(nhwc.transform(X[..., None]), Z, atol=1e-5)
    rows = ContrastiveEncoder(input_shape=(1, 12, 12), **params).fit(X.reshape(96, -1))
    np.testing.assert_allclose(rows.transform(X.reshape(96, -1)), Z, atol=1e-5)


def test_custom_module():
    X = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    enc = ContrastiveEncoder(module=lambda shape, k: torch.nn.Linear(shape[0], k), n_components=4, max_epochs=2)
    assert isinstance(enc.fit(X).encoder_[1], torch.nn.Linear) and enc.transform(X).shape == (64, 4)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        ContrastiveEncoder(module=lambda shape, k: "not a net", max_epochs=1).fit(X)


def test_determinism_without_touching_global_rng(circle):
    X = circle[0][:300]
    params = dict(n_components=8, max_epochs=3, dropout=0.2, batch_size=64, random_state=7)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = ContrastiveEncoder(**params).fit_transform(X)
    after = torch.rand(3)
    b = ContrastiveEncoder(**params).fit(X).transform(X)
    assert torch.equal(before, after), "fit must not consume or reseed torch's global generator"
    assert np.array_equal(a, b)
    c = ContrastiveEncoder(**{**params, "random_state": 8}).fit_transform(X)
    assert not np.array_equal(a, c)


# ----------------------------------------------------------------- pipelines

# On the hidden-circle task every estimator does far better on the embeddings than on the raw
# features (measured: 0.99 vs 0.64 for each of the three, with these short settings).
ENC = dict(max_epochs=10, random_state=0)


def test_pipeline_with_coteaching_filter(circle):
    X, y, X_test, y_test = circle
    flip = np.random.default_rng(0).random(len(y)) < 0.2
    y_noisy = np.where(flip, 1 - y, y)
    params = dict(max_epochs=6, refine_epochs=1, random_state=0)
    pipe = make_pipeline(ContrastiveEncoder(**ENC), CoTeachingFilter(**params)).fit(X, y_noisy)
    filt = pipe[-1]
    assert filt.n_features_in_ == 64 and filt.clean_mask_.shape == (len(X),)
    assert np.mean(filt.pseudo_labels_ == y) >= np.mean(y_noisy == y)
    assert detection_scores(filt.clean_mask_, y_noisy, y)["f1"] > 0.8
    raw = CoTeachingFilter(estimator="network", **params).fit(X, y_noisy)  # the same networks on the raw features
    assert pipe.score(X_test, y_test) > max(0.9, raw.score(X_test, y_test) + 0.15)


def test_pipeline_with_self_trainer_passes_unlabeled_rows_through(circle):
    X, y, X_test, y_test = circle
    y_semi = np.full(len(y), -1)
    labeled = np.random.default_rng(0).choice(len(y), 80, replace=False)
    y_semi[labeled] = y[labeled]
    params = dict(estimator="network", strategy=NoisyStudent(max_iter=1), max_epochs=4, min_steps=100, random_state=0)
    pipe = make_pipeline(ContrastiveEncoder(**ENC), SelfTrainer(**params)).fit(X, y_semi)
    st = pipe[-1]
    assert list(st.classes_) == [0, 1], "-1 marks unlabeled rows, it is not a class"
    assert st.pseudo_labels_.shape == (len(X),) and set(np.unique(st.pseudo_labels_)) == {0, 1}
    raw = SelfTrainer(**params).fit(X, y_semi)
    assert pipe.score(X_test, y_test) > max(0.9, raw.score(X_test, y_test) + 0.15)


def test_pipeline_with_pu_classifier(circle):
    X, y, X_test, y_test = circle
    y_pu = np.zeros(len(y), dtype=int)
    positives = np.flatnonzero(y == 1)
    y_pu[positives[: len(positives) // 2]] = 1
    params = dict(estimator="network", method="nnpu", prior=0.5, max_epochs=8, random_state=0)  # the networks
    pipe = make_pipeline(ContrastiveEncoder(**ENC), PUClassifier(**params)).fit(X, y_pu)
    assert pipe[-1].n_features_in_ == 64
    raw = PUClassifier(**params).fit(X, y_pu)
    assert pipe.score(X_test, y_test) > max(0.9, raw.score(X_test, y_test) + 0.15)


def test_clone_and_set_params():
    enc = clone(ContrastiveEncoder(temperature=0.2)).set_params(phases="alternating")
    assert enc.get_params()["temperature"] == 0.2 and enc.phases == "alternating" and not hasattr(enc, "encoder_")


# ----------------------------------------------------------------- scikit-learn

SMALL = dict(n_components=4, projection_dim=4, hidden_dims=(16,), max_epochs=2, batch_size=32, random_state=0)
# Every check passes; a future expected failure is listed here with its reason.
EXPECTED_FAILURES: dict[str, str] = {}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILURES


@parametrize_with_checks(
    [ContrastiveEncoder(**SMALL), ContrastiveEncoder(phases="alternating", **SMALL)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("X", "params", "error", "match"),
    [
        (np.array([[0.0, np.inf], [1.0, 2.0]] * 5), {}, ValueError, "infinity"),
        (np.zeros((0, 3)), {}, ValueError, "0 sample"),
        (np.zeros((1, 3)), {}, ValueError, "1 sample"),
        (np.zeros(10), {}, ValueError, "2D array"),
        (np.array([["a", "b"]] * 10), {}, ValueError, "numeric features"),
        (np.zeros((10, 2, 2, 2, 2)), {}, ValueError, "5 dimensions"),
        (np.zeros((10, 12)), {"input_shape": (1, 5, 5)}, ValueError, "does not fit rows of 12"),
        (np.zeros((10, 3)), {"phases": "sleep"}, ValueError, "phases"),
        (np.zeros((10, 3)), {"temperature": 0.0}, ValueError, "temperature"),
        (np.zeros((10, 3)), {"margin": 2.5}, ValueError, "margin"),
        (np.zeros((10, 3)), {"corruption": 1.0}, ValueError, "corruption"),
        (np.zeros((10, 3)), {"n_components": 0}, ValueError, "n_components"),
        (np.zeros((10, 3)), {"device": "tpu-9"}, ValueError, "device"),
    ],
)
def test_bad_input_is_named(X, params, error, match):
    with pytest.raises(error, match=match):
        ContrastiveEncoder(max_epochs=1, **params).fit(X)


def test_text_column_and_missing_values_are_encoded():
    df = pd.DataFrame({"x": np.r_[np.arange(9.0), np.nan], "colour": ["red", "blue"] * 5})
    Z = ContrastiveEncoder(max_epochs=1, n_components=2, random_state=0).fit(df).transform(df)
    assert Z.shape == (10, 2) and np.isfinite(Z).all()


def test_transform_errors(circle, fitted):
    from sklearn.exceptions import NotFittedError

    X = circle[0]
    with pytest.raises(NotFittedError):
        ContrastiveEncoder().transform(X)
    with pytest.raises(ValueError, match="features"):
        fitted.transform(X[:, :5])


# ----------------------------------------------------------------- data-ops API and command line

PRE = {"pretrain__max_epochs": 2, "pretrain__n_components": 8, "pretrain__hidden_dims": (32,)}


def test_api_pretrain_fits_each_estimator_on_embeddings():
    df = tabular_table(150).to_pandas()
    result = run_labeling("filter", df, params={**FAST_PARAMS, **PRE}, pretrain="contrastive")
    assert result.summary["pretrain"] == "contrastive" and result.summary["embedding_width"] == 8
    assert result.estimator.n_features_in_ == 8 and result.encoder.random_state == FAST_PARAMS["random_state"]
    assert result.X.shape == (150, *result.plan.row_shape), "the raw features stay in the result (for the report)"
    out = filter_labels(df, pretrain="contrastive", **FAST_PARAMS, **PRE)
    assert list(out.columns) == list(df.columns) + ["is_clean", "pseudo_label", "label_quality"]
    semi = df.assign(label=df.label.where(np.arange(150) < 75))
    out = selftrain_labels(
        semi, pretrain="contrastive", strategy=NoisyStudent(max_iter=1), max_epochs=2, min_steps=5, **PRE
    )
    assert out.pseudo_label.notna().all()
    out = pu_labels(df, positive="cat", pretrain="contrastive", max_epochs=2, random_state=0, **PRE)
    assert set(out.pseudo_label) <= {"cat", "negative"}


def test_api_pretrain_errors_name_the_fix():
    df = pd.DataFrame({"a": np.arange(20.0), "label": [0, 1] * 10})
    with pytest.raises(OptionError, match="unknown pretraining 'byol'"):
        filter_labels(df, pretrain="byol")
    with pytest.raises(OptionError, match="add --pretrain contrastive"):
        filter_labels(df, pretrain__max_epochs=3)
    with pytest.raises(OptionError, match="ContrastiveEncoder has no parameter tempo"):
        filter_labels(df, pretrain="contrastive", pretrain__tempo=3)


def test_cli_pretrain_on_png_images(tmp_path):
    pytest.importorskip("PIL")
    src = write(image_table(), tmp_path / "img.parquet")
    args = ["filter", str(src), *FAST, "--json", "--pretrain", "contrastive"]
    args += ["--param", "pretrain__max_epochs=2", "--param", "pretrain__n_components=8"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["pretrain"] == "contrastive" and summary["embedding_width"] == 8
    assert summary["feature_shape"] == [1, 8, 8] and summary["rows_written"] == 120
    bad = CliRunner().invoke(cli, ["pu", str(src), "--positive", "1", "--pretrain", "simclr"])
    assert bad.exit_code == 2 and "simclr" in bad.output
    for command in ("filter", "selftrain", "pu"):
        assert "--pretrain [none|contrastive]" in CliRunner().invoke(cli, [command, "--help"]).output
