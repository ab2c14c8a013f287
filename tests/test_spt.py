"""Selective Prompt Tuning: gates, the bi-level search, selection and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.batching import batches, encode
from promptlearning.errors import ConfigError
from promptlearning.methods import build_method
from promptlearning.methods.protocols import layer_gates_of
from promptlearning.methods.spt import gate_values
from promptlearning.model import PromptModel
from promptlearning.training import TrainConfig
from promptlearning.training.checkpoint import load_checkpoint
from promptlearning.training.gate_search import BilevelTrainer, SearchConfig, split_for_search
from promptlearning.training.layer_selection import search_layers

from .conftest import toy_examples


def _model(backbone: Backbone, **options: object) -> PromptModel:
    return PromptModel.build(backbone, "spt", ["neg", "pos"], method_options={"num_tokens": 2, **options})


def _items(backbone: Backbone, n: int = 8, seed: int = 0):  # type: ignore[no-untyped-def]
    return encode(backbone.tokenizer, toy_examples(n, seed), 32)


def test_gate_off_passes_the_lower_prompt_on(bert: Backbone) -> None:
    method = build_method("spt", bert, {"num_tokens": 2, "gate_init": -60.0})
    hidden = torch.randn(3, 6, 32)
    from promptlearning.methods.base import PromptContext

    ctx = PromptContext(3, hidden.device, hidden.dtype, text_mask=torch.ones(3, 4), num_prompt_positions=2)
    out = method.layer_prompt(1, hidden, ctx)
    assert out is not None and torch.allclose(out, hidden[:, :2], atol=1e-6)
    method.gates.data.fill_(60.0)  # gate on: the new prompt replaces the flow
    new = method.generators["1"](hidden[:, 2:].mean(1))
    assert torch.allclose(method.layer_prompt(1, hidden, ctx), new, atol=1e-5)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["sigmoid", "straight_through", "normalized"])
def test_every_gate_mode_sends_gradient_to_the_logits(mode: str) -> None:
    logits = torch.tensor([0.3, -0.2, 1.0], requires_grad=True)
    values = gate_values(logits, mode, training=True, generator=torch.Generator().manual_seed(0))
    (values * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    if mode == "straight_through":
        assert set(values.detach().round().tolist()) <= {0.0, 1.0}


def test_search_moves_gates_only_with_validation_data(bert: Backbone) -> None:
    model = _model(bert)
    gates0 = model.method.gates.detach().clone()  # type: ignore[union-attr]
    weights0 = {n: p.detach().clone() for n, p in model.method.named_parameters() if n != "gates"}
    trainer = BilevelTrainer(model, TrainConfig(max_steps=3, eval_every=3, quiet=True), SearchConfig(budget=1),
                             _items(bert), _items(bert, 4, 1), _items(bert, 2, 2))
    batch = trainer.batch_at(0)
    trainer.model.train()
    trainer.training_step(batch, 0)
    assert not torch.equal(model.method.gates, gates0)  # the architecture step moved the gates
    # the weights only received gradients (the base loop's optimizer moves them), the gates hold none
    assert model.method.gates.grad is None  # type: ignore[union-attr]
    assert all(torch.equal(p, weights0[n]) for n, p in model.method.named_parameters() if n != "gates")
    assert any(p.grad is not None for n, p in model.method.named_parameters() if n != "gates")


def test_second_order_differs_from_first_order(bert: Backbone) -> None:
    grads = []
    for second in (False, True):
        model = _model(bert)
        trainer = BilevelTrainer(model, TrainConfig(max_steps=1, quiet=True),
                                 SearchConfig(second_order=second, unroll_lr=1.0), _items(bert), _items(bert, 4, 1), [])
        batch, val = trainer.batch_at(0), trainer.val_batch_at(0)
        if second:
            grads.append(trainer._second_order_grads(batch, val)[0])
        else:
            grads.append(torch.autograd.grad(trainer.loss(val), trainer.arch_params)[0])
    assert grads[0].shape == grads[1].shape and not torch.allclose(grads[0], grads[1])


def test_selection_rebuilds_a_fixed_model(bert: Backbone, tmp_path: Path) -> None:
    model = _model(bert)
    found = search_layers(model, TrainConfig(max_steps=4, eval_every=2, quiet=True), SearchConfig(budget=1),
                          _items(bert), _items(bert, 2, 2), tmp_path)
    assert len(found.chosen_layers) == 1 and found.gate_history and (tmp_path / "gates.png").is_file()
    fixed = _model(bert, selected_layers=found.chosen_layers)
    assert fixed.method.architecture_parameters() == [] and fixed.method.prompt_layers == found.chosen_layers
    assert not fixed.method.gates.requires_grad  # type: ignore[union-attr]


def test_search_traces_every_steps_gates_and_chooses_with_the_best_dev_steps(bert: Backbone) -> None:
    model = _model(bert)
    found = search_layers(model, TrainConfig(max_steps=4, eval_every=2, quiet=True), SearchConfig(budget=1, arch_lr=0.5),
                          _items(bert), _items(bert, 2, 2), None)
    assert [t["step"] for t in found.gate_trace] == [1, 2, 3, 4]
    assert all(len(t["gates"]) == len(t["grad"]) == 2 for t in found.gate_trace)  # tiny-bert: 2 candidate layers
    assert [s for s, _ in found.dev_curve] == [2, 4] and found.best_step in (2, 4)
    kept = next(t["gates"] for t in found.gate_trace if t["step"] == found.best_step)
    assert found.final_gates == pytest.approx(kept, abs=1e-6)  # the best-on-dev step's gates, not the last step's
    assert found.gate_trace[0]["gates"] != found.gate_trace[-1]["gates"]


def test_consistency_term_measures_the_gap_to_the_discretised_model(bert: Backbone) -> None:
    model = _model(bert).eval()  # eval: no head dropout, so equal models give equal predictions
    trainer = BilevelTrainer(model, TrainConfig(max_steps=1, quiet=True), SearchConfig(consistency=1.0, budget=2),
                             _items(bert), _items(bert, 4, 1), [])
    batch = trainer.batch_at(0)
    gates = model.method.gates
    assert isinstance(gates, torch.nn.Parameter)
    with torch.no_grad():
        seeded = torch.Generator().manual_seed(0)
        for p in [*model.head.parameters(), *model.method.generators.parameters()]:  # type: ignore[union-attr]
            p.normal_(generator=seeded)  # prompts and a head large enough for the layer choice to show
        gates.fill_(60.0)  # every gate open: the supernet is the top-2 (= every candidate) fixed model
    assert trainer.consistency_loss(batch, model(batch).logits).item() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        gates.fill_(0.0)  # half-open gates mix in the prompt from below: the predictions move away
    kl = trainer.consistency_loss(batch, model(batch).logits)
    assert kl.item() > 1e-5  # (about 1.6e-4 here, against about 1e-9 with the gates open)
    assert torch.autograd.grad(kl, gates)[0].abs().sum() > 0  # the term trains the gates
    assert model.method.discrete is None  # type: ignore[union-attr]  # the supernet is restored afterwards


def test_budget_and_candidate_errors(bert: Backbone) -> None:
    with pytest.raises(ConfigError, match="between 1 and the 2 candidate"):
        search_layers(_model(bert), TrainConfig(max_steps=1, quiet=True), SearchConfig(budget=3),
                      _items(bert), [], None)
    with pytest.raises(ConfigError, match="candidate_layers is empty"):
        _model(bert, candidate_layers=[])
    with pytest.raises(ConfigError, match="too small to search"):
        split_for_search(_items(bert, 1), 0.5, 2, 0)



def test_gates_from_last_chooses_with_the_last_steps_gates(bert: Backbone) -> None:
    """The best-on-dev restore rewinds the gates with the weights; gates_from=last puts the last step's back,
    so the layers are the top-K of the final gates whichever step scored best on dev."""
    def search(gates_from: str):  # type: ignore[no-untyped-def]
        return search_layers(_model(bert), TrainConfig(max_steps=4, eval_every=1, quiet=True),
                             SearchConfig(budget=1, arch_lr=0.5, gates_from=gates_from), _items(bert),
                             _items(bert, 2, 2), None)

    best, last = search("best"), search("last")
    assert best.gate_trace == last.gate_trace and best.best_step == last.best_step < 4  # same search, dev ties
    assert best.final_gates == pytest.approx(best.gate_trace[best.best_step - 1]["gates"], abs=1e-6)
    assert last.final_gates == pytest.approx(last.gate_trace[-1]["gates"], abs=1e-6)
    top = [max(range(2), key=lambda i: t[i]) for t in (best.final_gates, last.final_gates)]
    assert top[0] != top[1]  # the two steps' gates disagree here, so the choices differ
    assert best.chosen_layers == [top[0]] and last.chosen_layers == [top[1]]  # tiny-bert's candidates: 0, 1
    with pytest.raises(ConfigError, match="gates_from must be best or last"):
        SearchConfig(gates_from="first")

def test_arch_batch_zero_trains_the_gates_on_the_whole_validation_split(bert: Backbone) -> None:
    """arch_batch 0: every gate step sees every validation row, so its gradient is the whole split's (the
    batch-noise-free gradient the gate analysis asked for); the default still draws a training-size batch."""
    val = _items(bert, 3, 3)
    n = len(val)
    config = TrainConfig(max_steps=2, batch_size=4, quiet=True)
    full = BilevelTrainer(_model(bert), config, SearchConfig(budget=1, arch_batch=0), _items(bert), val, [])
    assert n > 4 and [full.val_rows_at(step) for step in range(3)] == [list(range(n))] * 3
    assert full.val_batch_at(1).input_ids.shape[0] == n
    drawn = BilevelTrainer(_model(bert), config, SearchConfig(budget=1), _items(bert), val, [])
    assert [len(drawn.val_rows_at(step)) for step in range(2)] == [4, n - 4]
    model = _model(bert).eval()  # no dropout: the two gradients see the same forward
    expected = torch.autograd.grad(model(batches(val, n, model.pad_id, model.left_pad)[0]).loss,
                                   layer_gates_of(model.method, "test").architecture_parameters())
    trainer = BilevelTrainer(model, config, SearchConfig(budget=1, arch_batch=0), _items(bert), val, [])
    trainer.training_step(trainer.batch_at(0), 0)
    step_one = torch.tensor(trainer.gate_trace[0]["grad"])
    assert step_one == pytest.approx(torch.cat([g.reshape(-1) for g in expected]), rel=1e-3, abs=1e-6)
    with pytest.raises(ConfigError, match="arch_batch must be >= 0"):
        SearchConfig(arch_batch=-1)


def test_killed_search_resumes_exactly(bert: Backbone, tmp_path: Path) -> None:
    class Killed(BilevelTrainer):
        def training_step(self, batch, step):  # type: ignore[no-untyped-def]
            if step == 5:
                raise KeyboardInterrupt
            return super().training_step(batch, step)

    def run(out: Path, cls: type[BilevelTrainer] = BilevelTrainer, resume: bool = False) -> None:
        model = _model(bert, gate="straight_through")
        cfg = TrainConfig(max_steps=8, eval_every=4, checkpoint_every=4, quiet=True)
        cls(model, cfg, SearchConfig(consistency=0.5), _items(bert), _items(bert, 4, 1), _items(bert, 2, 2),
            out).fit(resume=resume)

    run(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", Killed)
    run(tmp_path / "cut", resume=True)
    a, _ = load_checkpoint(tmp_path / "full/checkpoint")
    b, _ = load_checkpoint(tmp_path / "cut/checkpoint")
    assert set(a) == set(b) and any(k.startswith("strategy.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_search_batches_are_seeded(bert: Backbone) -> None:
    trainer = BilevelTrainer(_model(bert), TrainConfig(max_steps=1, quiet=True), SearchConfig(), _items(bert),
                             _items(bert, 4, 1), [])
    assert torch.equal(trainer.val_batch_at(3).input_ids, trainer.val_batch_at(3).input_ids)
    assert len(batches(_items(bert, 4, 1), 8, 0)) == 1


def test_random_layers_are_drawn_from_the_seed_and_recorded(bert: Backbone) -> None:
    picks = []
    for seed in (0, 0, 1, 2, 3):
        torch.manual_seed(seed)
        method = build_method("spt", bert, {"random_layers": 1})
        assert method.config.selected_layers is not None and len(method.config.selected_layers) == 1
        assert method.prompt_layers == method.config.selected_layers
        assert not method.architecture_parameters()
        picks.append(tuple(method.config.selected_layers))
    assert picks[0] == picks[1]
    with pytest.raises(ConfigError, match="random_layers"):
        build_method("spt", bert, {"random_layers": 3})


def test_fixed_architecture_keeps_only_its_generators_with_supernet_init(bert: Backbone) -> None:
    supernet = build_method("spt", bert, {})
    fixed = build_method("spt", bert, {"selected_layers": [1]})
    assert list(fixed.generators) == ["1"]
    for a, b in zip(fixed.generators["1"].parameters(), supernet.generators["1"].parameters(), strict=True):
        assert torch.equal(a, b)
    assert sum(p.numel() for p in fixed.parameters() if p.requires_grad) < sum(
        p.numel() for p in supernet.parameters() if p.requires_grad)


def test_threshold_keeps_the_confident_layers_under_the_budget(bert: Backbone) -> None:
    method = build_method("spt", bert, {"num_tokens": 2})
    method.gates.data = torch.tensor([2.0, 0.5])  # p = 0.88, 0.62 for layers 0 and 1
    assert method.select_layers(2) == [0, 1]  # no threshold: exactly the top K
    assert method.select_layers(2, threshold=0.7) == [0]
    assert method.select_layers(2, threshold=0.5) == [0, 1]
    assert method.select_layers(1, threshold=0.5) == [0]  # the budget still caps
    method.gates.data = torch.tensor([-3.0, -1.0])  # every gate below the threshold
    assert method.select_layers(2, threshold=0.9) == [1]  # still keeps its best layer
    with pytest.raises(ConfigError, match="must be in \\(0, 1\\)"):
        SearchConfig(threshold=1.5)


def test_search_reports_the_thresholded_choice(bert: Backbone) -> None:
    model = _model(bert)
    found = search_layers(model, TrainConfig(max_steps=2, quiet=True), SearchConfig(budget=2, threshold=0.999),
                          _items(bert), _items(bert, seed=1), None)
    assert len(found.chosen_layers) == 1  # after 2 steps no gate is near 0.999: only the best layer stays
    assert found.chosen_layers == model.method.top_layers(1)  # type: ignore[union-attr]
