"""Saving and loading fitted estimators without pickle (labelclean/_persist.py): bit-identical round trips, refusals."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from torch import nn

from labelclean import ContrastiveEncoder, CoTeachingFilter, NoisyStudent, PUClassifier, Relabel, SelfTrainer
from labelclean._base import LabelEstimatorBase
from tests.helpers import X40 as _X
from tests.helpers import Y40 as _Y
from tests.helpers import labels_for, tiny, xy

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("cls", "params", "labels"),
    [
        (CoTeachingFilter, {}, "str"),
        (CoTeachingFilter, {"method": "jocor", "refine_epochs": 1}, "int"),
        (SelfTrainer, {"strategy": NoisyStudent(student_width=2.0)}, "int"),
        (SelfTrainer, {"strategy": Relabel(max_teacher_epochs=1, max_iter=0)}, "int"),
        (PUClassifier, {}, "int"),
        (PUClassifier, {"method": "elkan_noto", "prior": "auto"}, "int"),
    ],
)
def test_save_load_round_trip_is_bit_identical(tmp_path, cls, params, labels):
    X, y = xy(60, 5)
    y = y if isinstance(params.get("strategy"), Relabel) else labels_for(cls, y)
    if labels == "str":
        y = np.array(["no", "yes"])[y]
    est = tiny(cls, random_state=0, **params).fit(X, y)
    path = est.save(tmp_path / "model.pt")
    loaded = cls.load(path)
    assert type(loaded) is cls and loaded.get_params() == est.get_params()
    assert loaded.predict_proba(X).tobytes() == est.predict_proba(X).tobytes()
    assert np.array_equal(loaded.predict(X), est.predict(X)) and loaded.predict(X).dtype == est.predict(X).dtype
    for name in ("classes_", "clean_mask_", "pseudo_labels_", "label_quality_"):
        a, b = getattr(loaded, name), getattr(est, name)
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert loaded.input_shape_ == est.input_shape_ and loaded.n_features_in_ == est.n_features_in_
    assert loaded.history_ == est.history_
    assert type(LabelEstimatorBase.load(path)) is cls  # the base loads any of the three


def test_save_load_images_dataframe_and_custom_module(tmp_path):
    rng = np.random.RandomState(0)
    X, y = rng.rand(40, 1, 6, 6).astype(np.float32), np.r_[[0] * 20, [1] * 20]
    est = tiny(CoTeachingFilter, random_state=0).fit(X, y)
    loaded = CoTeachingFilter.load(est.save(tmp_path / "cnn.pt"))
    assert loaded.predict_proba(X).tobytes() == est.predict_proba(X).tobytes()
    df = pd.DataFrame(_X, columns=list("abcd"))
    est = tiny(PUClassifier, random_state=0).fit(df, _Y)
    loaded = PUClassifier.load(est.save(tmp_path / "df.pt"))
    assert list(loaded.feature_names_in_) == list("abcd")
    assert loaded.predict_proba(df).tobytes() == est.predict_proba(df).tobytes()

    def factory(input_shape, n_outputs):
        return nn.Sequential(nn.Linear(input_shape[0], 5), nn.ReLU(), nn.Linear(5, n_outputs))

    est = tiny(SelfTrainer, module=factory, random_state=0).fit(_X, labels_for(SelfTrainer, _Y))
    path = est.save(tmp_path / "custom.pt")
    with pytest.raises(ValueError, match=r"custom module=.*factory.*load\(path, module=...\)"):
        SelfTrainer.load(path)
    loaded = SelfTrainer.load(path, module=factory)
    assert loaded.predict_proba(_X).tobytes() == est.predict_proba(_X).tobytes()
    with pytest.raises(ValueError, match="do not fit"):
        SelfTrainer.load(path, module=lambda s, n: nn.Sequential(nn.Linear(s[0], 9), nn.ReLU(), nn.Linear(9, n)))


def test_save_refuses_what_needs_pickle(tmp_path):
    est = tiny(PUClassifier, method="spy", estimator=LogisticRegression(), random_state=0).fit(_X, _Y)
    with pytest.raises(ValueError, match="needs? pickle|without pickle"):
        est.save(tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists() and os.listdir(tmp_path) == []
    with pytest.raises(NotFittedError):
        tiny(CoTeachingFilter).save(tmp_path / "unfitted.pt")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch exploited",))


def test_load_refuses_foreign_damaged_and_tampered_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    est = tiny(CoTeachingFilter, random_state=0).fit(_X, _Y)
    good = est.save(tmp_path / "good.pt").read_bytes()
    cases = {
        "text.pt": b"hello, not a model",
        "truncated.pt": good[: len(good) // 2],
        "empty.pt": b"",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    torch.save({"weight": torch.zeros(3)}, tmp_path / "state_dict.pt")
    torch.save([_Exploit()], tmp_path / "exploit.pt")  # a pickle that would run a command
    (tmp_path / "exploit.pkl").write_bytes(pickle.dumps(_Exploit()))
    # tampered: one weight changed inside an otherwise valid file
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    name = next(k for k in payload["tensors"] if k.startswith("networks_.0.") and k.endswith("weight"))
    payload["tensors"][name] = payload["tensors"][name] + 1.0
    torch.save(payload, tmp_path / "tampered.pt")
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    payload["meta"] = payload["meta"].replace('"CoTeachingFilter"', '"PUClassifier"')
    torch.save(payload, tmp_path / "meta_edited.pt")
    for name, match in [
        ("text.pt", "not a labelclean model file"),
        ("truncated.pt", "not a labelclean model file"),
        ("empty.pt", "not a labelclean model file"),
        ("state_dict.pt", "not a labelclean model file"),
        ("exploit.pt", "refusing to load"),
        ("exploit.pkl", "not a labelclean model file"),
        ("tampered.pt", "modified or damaged"),
        ("meta_edited.pt", "modified or damaged"),
    ]:
        with pytest.raises(ValueError, match=match):
            CoTeachingFilter.load(tmp_path / name)
    assert not (tmp_path / "exploited").exists()
    with pytest.raises(ValueError, match="holds a 'CoTeachingFilter', not a PUClassifier"):
        PUClassifier.load(tmp_path / "good.pt")
    with pytest.raises(FileNotFoundError):
        CoTeachingFilter.load(tmp_path / "missing.pt")


def test_nothing_in_the_package_unpickles():
    """The CLI and the library never unpickle: no pickle/joblib loads, torch.load only with weights_only=True."""
    offenders = []
    for path in (ROOT / "labelclean").rglob("*.py"):
        text = path.read_text()
        for pattern in (
            r"pickle\.loads?\(",
            r"joblib\.load\(",
            r"read_pickle\(",
            r"allow_pickle\s*=\s*True",
            r"dill\.",
        ):
            offenders += [f"{path.name}: {m.group(0)}" for m in re.finditer(pattern, text)]
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in m.group(1):
                offenders.append(f"{path.name}: {m.group(0)}")
    assert offenders == []


@pytest.mark.parametrize("shape", [(60, 5), (60, 1, 12, 12)])
def test_contrastive_encoder_saves_and_loads_bit_identically(tmp_path, shape):
    X = np.random.RandomState(0).rand(*shape).astype(np.float32)
    est = ContrastiveEncoder(n_components=3, max_epochs=1, batch_size=32, device="cpu", n_jobs=1, random_state=0)
    est.fit(X)
    loaded = ContrastiveEncoder.load(est.save(tmp_path / "encoder.pt"))
    assert loaded.get_params() == est.get_params() and loaded.history_ == est.history_
    assert loaded.transform(X).tobytes() == est.transform(X).tobytes()
    assert list(loaded.get_feature_names_out()) == list(est.get_feature_names_out())
    with pytest.raises(ValueError, match="holds a 'ContrastiveEncoder', not a CoTeachingFilter"):
        CoTeachingFilter.load(tmp_path / "encoder.pt")
