"""Saving and loading fitted estimators without pickle.

One file per estimator, written with :func:`torch.save` and read back with
``torch.load(weights_only=True)``, which refuses anything but tensors and plain
containers: loading never runs code from the file. Inside:

- ``meta``: a JSON string with the class name, the parameters and every fitted attribute
  that is not a tensor (``classes_``, ``input_shape_``, ``noise_rate_``, ``history_``, ...),
  plus, per network, how to rebuild it (outputs and width);
- ``tensors``: the network weights (``state_dict``) and numeric arrays (``clean_mask_``,
  ``label_quality_``, ...), by name;
- ``digest``: SHA-256 of both, so a damaged or edited file is refused.

Networks are rebuilt from the parameters (the default MLP or CNN) and the weights loaded
into them. A registered parameter object (:func:`register_params`: a ``SelfTrainer``
strategy such as ``NoisyStudent(max_iter=2)``, as a parameter or the fitted ``strategy_``) is
stored as its class name and its parameters, and rebuilt from them. A ``module=`` factory is code, so it
is not stored: pass the same factory to ``load``. Fitted scikit-learn models (``estimator=``,
``teacher=``) cannot be stored without pickle; ``save`` refuses them with an error that says
so. A ``random_state`` given as a ``RandomState`` instance is stored as ``None`` (it only
matters to ``fit``).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "labelclean-estimator"
VERSION = 1
#: Parameters holding scikit-learn models (not storable without pickle).
_MODEL_PARAMS = ("estimator", "teacher")
#: Torch dtypes that ``torch.load(weights_only=True)`` reads back, for numeric fitted arrays.
_TENSOR_KINDS = "biuf"


# ---------------------------------------------------------------------------
# JSON encoding of parameters and fitted attributes
# ---------------------------------------------------------------------------


class _Unsupported(TypeError):
    pass


#: Parameter classes stored as their parameters, by name (see :func:`register_params`).
PARAM_CLASSES: dict[str, type] = {}


def register_params(cls: type) -> type:
    """Let ``save`` store instances of ``cls`` as their ``get_params(deep=False)``, and ``load`` rebuild them.

    For small parameter objects such as the strategies of ``SelfTrainer``; ``load`` rebuilds
    ``cls(**params)`` for a name registered here and refuses any other (nothing is imported by a
    name read from the file).
    """
    known = PARAM_CLASSES.setdefault(cls.__qualname__, cls)
    if known is not cls:
        raise ValueError(f"two parameter classes are named {cls.__qualname__!r}: {known} and {cls}")
    return cls


def _encode(value: Any, name: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-ready form of ``value``; numeric arrays and tensors go to ``tensors`` under ``name``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, torch.device):
        return {"__device__": str(value)}
    if isinstance(value, torch.Tensor):
        tensors[name] = value.detach().cpu().contiguous()
        return {"__tensor__": name}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in _TENSOR_KINDS and value.dtype.itemsize <= 8:
            stored = value.astype(np.int64) if value.dtype.kind == "u" and value.dtype != np.uint8 else value
            tensors[name] = torch.from_numpy(np.ascontiguousarray(stored)).clone()
            return {"__ndarray__": name, "dtype": value.dtype.str, "shape": list(value.shape)}
        if value.dtype.kind in "UO" and all(isinstance(v, str) for v in value.ravel().tolist()):
            return {"__strarray__": value.ravel().tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
        raise _Unsupported(f"{name} is an array of {value.dtype}")
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{name}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{name}.{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v, f"{name}.{k}", tensors) for k, v in value.items()}}
    if PARAM_CLASSES.get(type(value).__qualname__) is type(value):
        params = value.get_params(deep=False)
        return {
            "__params__": type(value).__qualname__,
            "params": {k: _encode(v, f"{name}.{k}", tensors) for k, v in params.items()},
        }
    raise _Unsupported(f"{name} is a {type(value).__module__}.{type(value).__qualname__}")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__device__" in value:
        return torch.device(value["__device__"])
    if "__tensor__" in value:
        return tensors[value["__tensor__"]].clone()
    if "__ndarray__" in value:
        array = tensors[value["__ndarray__"]].numpy().astype(np.dtype(value["dtype"]), copy=True)
        return array.reshape(value["shape"])
    if "__strarray__" in value:
        return np.array(value["__strarray__"], dtype=np.dtype(value["dtype"])).reshape(value["shape"])
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode(v, tensors) for k, v in value["__dict__"].items()}
    if "__params__" in value:
        cls = PARAM_CLASSES.get(value["__params__"])
        if cls is None:
            raise ValueError(f"unknown parameter class {value['__params__']!r}")
        return cls(**{k: _decode(v, tensors) for k, v in value["params"].items()})
    raise ValueError(f"unknown entry {sorted(value)[:3]}")


def _digest(meta: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(meta.encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# ---------------------------------------------------------------------------
# Save
# ---------------------------------------------------------------------------


def _params(estimator: Any, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    params = estimator.get_params(deep=False)
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name in _MODEL_PARAMS and value is not None and not isinstance(value, str):
            raise ValueError(
                f"{type(estimator).__name__}.save cannot store {name}={type(value).__name__}(...): scikit-learn "
                "models need pickle, which labelclean does not use. Refit with the default networks to save, "
                "or store the whole estimator with joblib at your own risk."
            )
        if name == "module" and value is not None:
            out[name] = {"__module_factory__": getattr(value, "__qualname__", type(value).__name__)}
        elif name == "random_state" and not (value is None or isinstance(value, (int, np.integer))):
            out[name] = None  # a RandomState instance only matters for fit; it is not stored
        else:
            try:
                out[name] = _encode(value, f"param.{name}", tensors)
            except _Unsupported as exc:
                raise ValueError(f"cannot save parameter {name!r}: {exc}; pass a plain value instead.") from exc
    return out


def _network_specs(estimator: Any) -> list[dict[str, Any]]:
    specs = []
    for i, net in enumerate(estimator.networks_):
        spec = getattr(net, "_labelclean_spec", None)
        if spec is None:
            raise ValueError(
                f"network {i} of {type(estimator).__name__} was not built by labelclean, so it cannot be rebuilt "
                "at load time; save its state_dict with torch.save instead."
            )
        specs.append(dict(spec))
    return specs


def save_estimator(estimator: Any, path: str | os.PathLike) -> Path:
    """Write a fitted ``estimator`` to ``path`` (atomically); see the module docstring for the format."""
    from sklearn.utils.validation import check_is_fitted

    from .io import atomic_path

    check_is_fitted(estimator, "networks_")
    tensors: dict[str, torch.Tensor] = {}
    params = _params(estimator, tensors)
    skip = set(params) | {"networks_"}
    fitted: dict[str, Any] = {}
    for name, value in vars(estimator).items():
        if name in skip:
            continue
        if name in ("estimator_", "teacher_", "estimators_") and value is not None and (name != "estimators_" or value):
            kind = type(value[0] if name == "estimators_" else value).__name__
            raise ValueError(
                f"{type(estimator).__name__}.save cannot store the fitted scikit-learn model {name} ({kind}) without "
                "pickle; refit with the networks (estimator='network') to save."
            )
        try:
            fitted[name] = _encode(value, name, tensors)
        except _Unsupported as exc:
            raise ValueError(f"cannot save fitted attribute {name!r} without pickle ({exc}).") from exc
    for i, net in enumerate(estimator.networks_):
        for key, t in net.state_dict().items():
            tensors[f"networks_.{i}.{key}"] = t.detach().cpu().contiguous()
    meta = json.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "class": type(estimator).__name__,
            "module": type(estimator).__module__,
            "params": params,
            "fitted": fitted,
            "networks": _network_specs(estimator),
            "torch": torch.__version__,
        }
    )
    payload = {"format": FORMAT, "meta": meta, "tensors": tensors, "digest": _digest(meta, tensors)}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


# ---------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The checked ``meta`` and ``tensors`` of a saved estimator, or a ValueError that says what is wrong."""
    if not path.is_file():
        raise FileNotFoundError(f"model file '{path}' does not exist; check the path.")
    not_ours = f"'{path}' is not a labelclean model file (written by estimator.save)"
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{not_ours}: it is not a torch archive.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, KeyError, zipfile.BadZipFile) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{not_ours}, or it is damaged; refusing to load it ({first[:200]}).") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{not_ours}.")
    meta_text, tensors, digest = payload.get("meta"), payload.get("tensors"), payload.get("digest")
    if not (isinstance(meta_text, str) and isinstance(tensors, dict) and isinstance(digest, str)):
        raise ValueError(f"{not_ours}: its contents are incomplete.")
    if _digest(meta_text, tensors) != digest:
        raise ValueError(f"'{path}' has been modified or damaged since it was saved (checksum mismatch); save it anew.")
    meta = json.loads(meta_text)
    if meta.get("version", 0) > VERSION:
        raise ValueError(
            f"'{path}' was written by a newer labelclean (format version {meta['version']}); upgrade labelclean."
        )
    return meta, tensors


#: Where the classes of files written before the module was recorded live.
_SAVED_MODULES = {
    "CoTeachingFilter": "labelclean.coteaching",
    "SelfTrainer": "labelclean.self_training",
    "PUClassifier": "labelclean.pu",
}


def _saved_class(meta: dict[str, Any]) -> type | None:
    """The class a file was saved from, imported by the module name it records (labelclean's own only)."""
    import importlib

    name = meta.get("class")
    module = meta.get("module") or _SAVED_MODULES.get(name)
    if not isinstance(name, str) or not isinstance(module, str) or not module.startswith("labelclean."):
        return None
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def load_estimator(
    cls: type, path: str | os.PathLike, *, module: Any = None, device: str | torch.device | None = None
) -> Any:
    """Rebuild the estimator saved at ``path``; ``cls`` must be its class or a base of it."""
    from ._train import resolve_device

    path = Path(path)
    meta, tensors = _read(path)
    target = _saved_class(meta)
    if target is None or not issubclass(target, cls):
        raise ValueError(f"'{path}' holds a {meta.get('class')!r}, not a {cls.__name__}; load it with that class.")
    try:
        saved_module = meta["params"].get("module")
        params = {k: _decode(v, tensors) for k, v in meta["params"].items() if k != "module"}
        fitted = {k: _decode(v, tensors) for k, v in meta["fitted"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"'{path}' is damaged: cannot decode its contents ({exc}).") from exc
    upgrade = getattr(target, "_upgrade_saved_params", None)
    if upgrade is not None:  # a file of an earlier version: its parameters as this version spells them
        params = upgrade(params)
    if isinstance(saved_module, dict) and "__module_factory__" in saved_module:
        if module is None:
            raise ValueError(
                f"'{path}' was saved with a custom module= ({saved_module['__module_factory__']}), which is code and "
                "is not stored; pass the same factory: load(path, module=...)."
            )
        params["module"] = module
    elif module is not None:
        raise ValueError(f"'{path}' uses the default networks; drop module= from load.")
    else:
        params["module"] = None
    if device is not None:
        params["device"] = device
    estimator = target(**params)
    for name, value in fitted.items():
        setattr(estimator, name, value)
    estimator.device_ = resolve_device(estimator.device)
    nets = []
    for i, spec in enumerate(meta["networks"]):
        net = estimator._rebuild_network(spec)
        prefix = f"networks_.{i}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(
                f"the weights in '{path}' do not fit network {i} rebuilt from its parameters "
                f"({str(exc).splitlines()[0]}); was it saved with a different module= or labelclean version?"
            ) from exc
        net.eval()
        nets.append(net)
    estimator.networks_ = nets
    return estimator
