"""The one assembler: members start from their own lr and weight decay and share one compiled
step; train scores its best checkpoint with the model it trained, compiling nothing more."""

import jax
import numpy as np
import optax

from jaxdl import tasks
from jaxdl.training import evaluation, fit, group
from jaxdl.training.data import training_data
from jaxdl.training.grid import member_config
from tests.helpers import counting_compilations, tiny_esc50_config


def test_each_member_starts_from_its_own_lr_and_weight_decay(tmp_path):
    config = tiny_esc50_config(tmp_path, optimizer="adamw")
    members = [
        member_config(config, 1, lr=lr, weight_decay=wd, seed=config.seed + i)
        for i, (lr, wd) in enumerate(((1e-2, 1e-4), (3e-3, 5e-4)))
    ]
    names = tuple(f"class{i}" for i in range(10))
    trainer = group.build(members, names)
    states = trainer.member_states(trainer.states)
    for state, member in zip(states, members, strict=True):
        hyperparameters = state.opt_state.hyperparams
        assert hyperparameters["learning_rate"] == np.float32(member.train.lr)
        assert hyperparameters["weight_decay"] == np.float32(member.train.weight_decay)
    assert states[0].tx is states[1].tx  # one optimizer object: one compiled step for both
    alone = group.build([members[1]], names).state  # the second member trained on its own
    for a, b in zip(
        jax.tree.leaves((alone.params, alone.opt_state)),
        jax.tree.leaves((states[1].params, states[1].opt_state)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    assert optax.tree_utils.tree_get(alone.opt_state, "learning_rate") == np.float32(3e-3)


def test_the_trained_model_scores_its_checkpoint_without_compiling(tmp_path):
    config = tiny_esc50_config(tmp_path, epochs=1)
    data = training_data(config, jax.device_count())
    trainer = group.build([config], data.names, steps_per_epoch=fit.batches_per_epoch(data))
    fit.fit([fit.Member("run", config, tmp_path / "logs", tmp_path / "ckpt")], data, trainer)
    tasks.get(config).load_split(config, "test")  # its features cached: only scoring is counted
    with counting_compilations() as compiled:
        scores = evaluation.score_checkpoint(config, tmp_path / "ckpt", "test", trainer)
    assert compiled == []  # validation compiled the predict step; the test batches reuse it
    fresh = evaluation.score_checkpoint(config, tmp_path / "ckpt", "test")  # evaluate's own build
    assert scores.results == fresh.results and scores.epoch == fresh.epoch == 1
    np.testing.assert_array_equal(scores.probabilities, fresh.probabilities)


def test_members_of_one_architecture_compile_its_init_once(tmp_path):
    """A grid of 24 members used to compile the model's init 24 times (4-6 s each on CPU)."""
    config = tiny_esc50_config(tmp_path)
    names = tuple(f"class{i}" for i in range(10))
    members = [
        member_config(config, 1, lr=lr, weight_decay=1e-4, seed=seed)
        for seed, lr in enumerate((1e-2, 3e-3, 1e-3))
    ]
    group.build(members[:1], names)  # the architecture's init (and the optimizer's ops) compiled
    with counting_compilations() as compiled:
        trainer = group.build(members, names)  # a new, equal model object: the same program
    assert compiled == []
    first, second, _ = trainer.member_states(trainer.states)
    leaves = zip(jax.tree.leaves(first.params), jax.tree.leaves(second.params), strict=True)
    assert not all(np.array_equal(a, b) for a, b in leaves)  # each member's seed still counts
