"""The shared training loop: early stopping keeps the best weights; a resumed run equals an
uninterrupted one; checkpoints hold no pickle."""

from __future__ import annotations

import json

import pytest
import torch

from hoprec.train.loop import Interrupted, LoopConfig, train


def _problem(seed: int = 0):
    torch.manual_seed(seed)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(256, 1)
    net = torch.nn.Linear(8, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(seed)

    def step(_: int) -> float:
        idx = torch.randint(0, 256, (32,), generator=gen)
        loss = torch.nn.functional.mse_loss(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    def evaluate() -> float:
        return -float(torch.nn.functional.mse_loss(net(x), y))

    return net, opt, gen, step, evaluate


def test_resume_reaches_the_same_weights_and_log(tmp_path):
    net, opt, gen, step, ev = _problem()
    full = train(net, opt, step, ev, LoopConfig(steps=60, eval_every=10, patience=100), generator=gen)
    cfg = LoopConfig(steps=60, eval_every=10, patience=100, checkpoint_dir=str(tmp_path / "ckpt"))
    net2, opt2, gen2, step2, ev2 = _problem()
    with pytest.raises(Interrupted):
        train(net2, opt2, step2, ev2, cfg, generator=gen2, stop_after=30)
    assert json.loads((tmp_path / "ckpt" / "loop.json").read_text())["loop"]["step"] == 30
    net4, opt4, gen4, step4, ev4 = _problem()  # fresh objects, as a restarted process has
    torch.manual_seed(123)
    gen4.manual_seed(99)  # the checkpoint's generator state must win over this
    resumed = train(net4, opt4, step4, ev4, cfg, generator=gen4)
    assert [r["step"] for r in resumed.log] == [r["step"] for r in full.log]
    for a, b in zip(full.log, resumed.log):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, net4.state_dict()[key])
    assert not list(tmp_path.glob("**/*.pt")) and not list(tmp_path.glob("**/*.pkl"))


def test_early_stopping_keeps_the_best_weights():
    net, opt, gen, step, _ = _problem()
    scores = iter([0.1, 0.5, 0.2, 0.3, 0.4, 0.9])
    snapshots = []

    def ev() -> float:
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})
        return next(scores)

    state = train(net, opt, step, ev, LoopConfig(steps=100, eval_every=5, patience=3), generator=gen)
    assert state.stopped and state.step == 25 and state.best_step == 10 and state.best == 0.5
    for key, value in snapshots[1].items():  # the weights scored 0.5 at step 10 are restored
        torch.testing.assert_close(net.state_dict()[key], value)
