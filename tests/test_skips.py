"""Skipped updates: a non-finite loss or gradient norm never reaches the weights, and with
--skip-loss-z / --skip-norm-z neither does an outlier (llm.c's z-score rule); K skips in a row
stop the run with a message and a loadable last checkpoint; a resumed run skips as an
uninterrupted one. The faults are injected with GPT2C_TEST_FAULT (the first micro-batch of a step
has its loss and gradient multiplied by NaN or a factor); the expected weights are PyTorch's
(tests/torch_gpt2.py) with the same steps' updates left out, or the same factor applied."""
import copy
import os

import pytest

import torch_gpt2 as ref
from conftest import assert_one_line_error, run_gpt2c
from test_train import (LOSS_ATOL, assert_weights_close, data, init_dir, read_log, read_weights,  # noqa: F401
                        reference_args, train_cmd, train_records, without_timing)


def fault(spec):
    """The environment under which gpt2c injects the fault spec (GPT2C_TEST_FAULT)."""
    return dict(os.environ, GPT2C_TEST_FAULT=spec)


class References:
    """The reference runs of this file, each made once. Each is the plain recipe up to its first
    fault or skipped step, so it starts from a copy of the plain run taken before that step
    (torch_gpt2.Run) and runs the rest with its own fault and skips: the same float64 steps as
    a run from the start, with the shared ones (half of them) run once."""

    def __init__(self, init_dir, data):
        self.data = data
        self.plain = {0: ref.Run(ref.load_hf_dir(init_dir).double(), reference_args(data.train, data.val))}
        self.done = {}

    def plain_before(self, step):
        """A copy of the plain run before `step`."""
        at = max(s for s in self.plain if s <= step)
        if at < step:
            run = copy.deepcopy(self.plain[at])
            run.run(until=step)
            self.plain[step] = run
        return copy.deepcopy(self.plain[step])

    def __call__(self, **kw):
        key = repr(sorted(kw.items()))
        if key not in self.done:
            args = reference_args(self.data.train, self.data.val, **kw)
            faults = [] if args.fault_step is None else [args.fault_step]
            diverges = min([*args.skip_steps, *faults, args.max_steps])
            run = self.plain_before(diverges)
            run.args = args
            records = run.run()
            self.done[key] = dict(run.model.named_parameters()), [r for r in records if "loss" in r]
        return self.done[key]


@pytest.fixture(scope="module")
def references(init_dir, data):
    return References(init_dir, data)


def check_losses(log, want, skipped):
    for g, w in zip(train_records(log), want):
        assert g["step"] == w["step"]
        if g["step"] in skipped:
            continue
        assert abs(g["loss"] - w["loss"]) <= LOSS_ATOL, (g, w)


def test_a_non_finite_loss_never_reaches_the_weights(tmp_path, data, init_dir, references):
    out = run_gpt2c(*train_cmd(init_dir, data.train, data.val, tmp_path / "run"), env=fault("6:nan"))
    log = read_log(tmp_path / "run")
    rec = train_records(log)[6]
    assert rec["loss"] is None and rec["skipped"] == "non-finite" and rec["skips"] == 1
    assert all("skipped" not in r for r in train_records(log) if r["step"] != 6)
    assert "update skipped: non-finite, 1 so far" in out.stdout.decode()
    want, records = references(skip_steps={6})
    assert_weights_close(read_weights(tmp_path / "run" / "model"), want)
    check_losses(log, records, {6})


@pytest.mark.parametrize("flags, skipped", [((), False),
                                            (dict(skip_loss_z=3), "loss outlier"),
                                            (dict(skip_norm_z=3), "norm outlier")])
def test_an_outlier_is_skipped_only_when_asked(tmp_path, data, init_dir, references, flags, skipped):
    """The first micro-batch of step 12 counts 40 times: its loss and norm are far outside the
    recent ones. Skipped with --skip-loss-z or --skip-norm-z; applied (clipped) without."""
    flags = dict(flags)
    run_gpt2c(*train_cmd(init_dir, data.train, data.val, tmp_path / "run", **flags), env=fault("12:scale=40"))
    log = read_log(tmp_path / "run")
    rec = train_records(log)[12]
    assert rec.get("skipped", False) == skipped
    if skipped:
        assert rec["z"] > 3
    assert sum("skipped" in r for r in train_records(log)) == (1 if skipped else 0)
    want, records = references(fault_step=12, fault_scale=40.0, skip_steps={12} if skipped else ())
    assert_weights_close(read_weights(tmp_path / "run" / "model"), want)
    check_losses(log, records, set())


def test_skips_in_a_row_stop_the_run_and_the_checkpoint_stays(tmp_path, data, init_dir, references):
    out_dir = tmp_path / "run"
    cmd = train_cmd(init_dir, data.train, data.val, out_dir, ckpt_every=5, max_skips=3)
    got = run_gpt2c(*cmd, env=fault("6+:nan"), check=False)
    assert_one_line_error(got)
    assert "3 updates skipped in a row" in got.stderr.decode()
    assert [r["step"] for r in train_records(read_log(out_dir))][-3:] == [6, 7, 8]
    # the checkpoint after step 4 is whole: the run goes on from it without the fault
    run_gpt2c(*train_cmd(init_dir, data.train, data.val, out_dir, ckpt_every=5, resume=True))
    want, _ = references()
    assert_weights_close(read_weights(out_dir / "model"), want)


def test_a_resumed_run_skips_as_an_uninterrupted_one(tmp_path, data, init_dir):
    """The recent updates' losses and norms are in the state: stopped after 8 steps, the
    resumed run still sees step 12 as an outlier, and ends byte for byte as the whole run."""
    flags = dict(skip_loss_z=3, ckpt_every=4)
    a, b = tmp_path / "a", tmp_path / "b"
    run_gpt2c(*train_cmd(init_dir, data.train, data.val, a, **flags), env=fault("12:scale=40"))
    run_gpt2c(*train_cmd(init_dir, data.train, data.val, b, stop_after=8, **flags), env=fault("12:scale=40"))
    run_gpt2c(*train_cmd(init_dir, data.train, data.val, b, resume=True, **flags), env=fault("12:scale=40"))
    assert train_records(read_log(a))[12]["skipped"] == "loss outlier"
    assert without_timing(read_log(b)) == without_timing(read_log(a))
    assert (b / "model" / "model.safetensors").read_bytes() == (a / "model" / "model.safetensors").read_bytes()


def test_bad_skip_flags_are_one_line_errors(tmp_path, data, init_dir):
    for flags in (dict(skip_loss_z=-1), dict(max_skips=0), dict(skip_norm_z="x")):
        cmd = train_cmd(init_dir, data.train, data.val, tmp_path / "r", **flags)
        assert_one_line_error(run_gpt2c(*cmd, check=False))
