"""What some methods can do beyond the sites every method answers: small, checkable protocols.

Drivers that need more than a prompt at a site (prompt search writing a soft prompt, transfer
and continual learning copying one, the bi-level trainer reading SPT's gates) ask the method
for one of these protocols instead of reaching into its attributes. A method takes part by
having the members; nothing is registered, and :func:`soft_prompt_of` / :func:`layer_gates_of`
turn a method that lacks them into a one-line error naming the methods that have them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from promptlearning.errors import ConfigError


@runtime_checkable
class SoftPrompt(Protocol):
    """A method whose prompt is one trainable tensor of vectors, read and written as a whole.

    The tensor is (P, H) for an input prompt and (S, P, H) for prompts at S layers (in the order of
    ``prompt_layers``). Search, transfer and continual learning start or replace prompts through it.
    """

    def soft_prompt(self) -> torch.Tensor:
        """A detached copy of the prompt, (P, H) or (S, P, H)."""
        ...

    def set_soft_prompt(self, value: torch.Tensor) -> None:
        """Overwrite the prompt in place (no gradient recorded); a wrong shape is a ConfigError."""
        ...


@runtime_checkable
class LayerGates(Protocol):
    """A method with a learnable gate per candidate layer (SPT): what the bi-level search trains and reads.

    The gate logits are the method's ``architecture_parameters``; the search ends by choosing the
    layers that keep a prompt (:meth:`select_layers`).
    """

    @property
    def candidate_layers(self) -> list[int]:
        """The layers that may get a prompt, in layer order (one gate each)."""
        ...

    def architecture_parameters(self) -> list[nn.Parameter]: ...

    def probabilities(self) -> torch.Tensor:
        """Each candidate's gate probability, (S,), detached."""
        ...

    def top_layers(self, k: int) -> list[int]:
        """The k candidates with the highest gate probability, in layer order."""
        ...

    def select_layers(self, k: int, threshold: float | None = None) -> list[int]:
        """The architecture the search chose: the top k, or those of them whose probability reaches threshold."""
        ...

    def discretised(self, layers: list[int]) -> AbstractContextManager[None]:
        """Within the block, behave as the fixed architecture that injects at exactly ``layers`` (no gates)."""
        ...


_WHAT: dict[type, str] = {SoftPrompt: "a soft prompt to read and set", LayerGates: "layer gates"}


def soft_prompt_of(method: object, purpose: str) -> SoftPrompt:
    """``method`` as a :class:`SoftPrompt`, or a one-line ConfigError naming the methods that have one."""
    if isinstance(method, SoftPrompt):
        return method
    raise _lacking(method, SoftPrompt, purpose)


def layer_gates_of(method: object, purpose: str) -> LayerGates:
    """``method`` as :class:`LayerGates`, or a one-line ConfigError naming the methods that have them."""
    if isinstance(method, LayerGates):
        return method
    raise _lacking(method, LayerGates, purpose)


def _lacking(method: object, protocol: type, purpose: str) -> ConfigError:
    name = getattr(type(method), "name", "") or type(method).__name__
    having = methods_with(protocol)
    return ConfigError(f"{purpose} needs a method with {_WHAT[protocol]}, and method {name} has none; "
                       f"use --method {' or '.join(having) if having else 'one that has them'}")


def methods_with(protocol: type) -> list[str]:
    """Names of the registered methods whose class has every member of ``protocol``."""
    from promptlearning.methods import list_methods

    members = [n for n in vars(protocol) if not n.startswith("_")]
    return [cls.name for cls in list_methods() if all(hasattr(cls, m) for m in members)]


def shape_checked(current: torch.Tensor, value: torch.Tensor, name: str) -> torch.Tensor:
    """``value`` when it has ``current``'s shape, else the ConfigError :meth:`SoftPrompt.set_soft_prompt` raises."""
    if tuple(value.shape) != tuple(current.shape):
        raise ConfigError(f"a prompt of shape {tuple(value.shape)} does not fit method {name}'s "
                          f"{tuple(current.shape)}; give num_tokens={current.shape[-2]} and a prompt made on "
                          "the same backbone")
    return value
