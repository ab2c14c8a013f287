"""A method's search space as Optuna suggestions, and where each sampled value goes.

Names follow :mod:`promptlearning.methods.search_space`: ``train.NAME`` is a training option,
any other name an option of the method. What the user fixed (a flag, ``--option``, the YAML)
is not searched: the space keeps only the options left at their defaults.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from promptlearning.errors import ConfigError
from promptlearning.methods import get_method
from promptlearning.methods.search_space import (
    TRAIN_PREFIX,
    Choice,
    Dimension,
    IntRange,
    LogFloat,
    full_space,
)
from promptlearning.training import TrainConfig


def method_space(method: str) -> dict[str, Dimension]:
    """Everything ``method`` declares, with its learning rate; refuses a method with nothing to tune."""
    cls = get_method(method)
    if not cls.needs_training:
        raise ConfigError(f"method {method} trains nothing, so there is nothing to tune; choose a trained method")
    space = full_space(dict(cls.search_space), cls.default_lr)
    options = {f.name for f in dataclasses.fields(cls.config_class)}
    train = {f.name for f in dataclasses.fields(TrainConfig)}
    for name in space:
        known = name[len(TRAIN_PREFIX):] in train if name.startswith(TRAIN_PREFIX) else name in options
        if not known:  # a declaration that names no option: the method's bug, caught by the contract test
            raise ConfigError(f"method {method} declares search dimension {name!r}, which is no option of it")
    return space


def where(name: str) -> tuple[str, str]:
    """(section of the experiment's options, key) that the dimension ``name`` sets."""
    return ("train", name[len(TRAIN_PREFIX):]) if name.startswith(TRAIN_PREFIX) else ("method_options", name)


def free_space(method: str, values: dict[str, Any]) -> dict[str, Dimension]:
    """The method's space less what the user fixed in ``values`` (the nested experiment options)."""
    return {name: dim for name, dim in method_space(method).items()
            if where(name)[1] not in values.get(where(name)[0], {})}


def suggest(trial: Any, space: dict[str, Dimension]) -> dict[str, Any]:
    """One value per dimension, drawn by the trial's sampler."""
    params: dict[str, Any] = {}
    for name, dim in space.items():
        if isinstance(dim, LogFloat):
            params[name] = trial.suggest_float(name, dim.low, dim.high, log=True)
        elif isinstance(dim, IntRange):
            params[name] = trial.suggest_int(name, dim.low, dim.high, step=dim.step)
        elif isinstance(dim, Choice):
            params[name] = trial.suggest_categorical(name, list(dim.values))
        else:  # pragma: no cover - Dimension is closed
            raise TypeError(f"unknown dimension {dim!r}")
    return params


def defaults(method: str, space: dict[str, Dimension]) -> dict[str, Any]:
    """The values the method runs with today, for each dimension (enqueued as a study's first trial)."""
    cls = get_method(method)
    method_defaults = {f.name: f.default for f in dataclasses.fields(cls.config_class)}
    train_defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    out = {}
    for name in space:
        section, key = where(name)
        value = train_defaults[key] if section == "train" else method_defaults[key]
        if section == "train" and key == "lr" and value is None and not isinstance(space[name], Choice):
            value = cls.default_lr  # None means the method's own rate
        out[name] = value
    return out


def apply(values: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of the nested experiment options with the sampled values put in place."""
    out = copy.deepcopy(values)
    for name, value in params.items():
        section, key = where(name)
        out.setdefault(section, {})[key] = value
    return out


def describe(space: dict[str, Dimension]) -> dict[str, str]:
    """The space in words, recorded with the study (a resumed study must search the same one)."""
    return {name: repr(dim) for name, dim in space.items()}
