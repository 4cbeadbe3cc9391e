"""The training driver shared by `train`, `grid_search` and `compare`: a group of members trained
on shared batches, each validated every epoch, logged and checkpointed on its own, resumable.

Resume: every checkpoint holds the whole state plus the data position (epoch, batches done in
it), the partial epoch's metric sums and the history, so a run restarted from its latest
checkpoint ends with the same numbers, bit for bit on CPU, as one never interrupted. SIGTERM
(pre-emption) and Ctrl-C save a checkpoint at the current step and stop with `Preempted`.

A checkpoint is resumed only if it was written by this very configuration (its meta holds the
config; `runs.config_differences` says which keys may differ), so a run never adopts the stale
checkpoints of another one that had the same name. A step that cannot be read back is set aside
and the latest intact one before it is used, said on the console.

Logged per member: every `train.log_every_steps` steps, `train/loss_step` (the mean loss of the
interval's steps) and `train/lr` (the lr that step applied, from the step number and the member's
peak lr: no device transfer); each epoch, a `metrics.jsonl` record with `train/lr` of the epoch's
last step. The compiled step adds its sums to two running totals, the epoch's and the log
interval's (its loss and non-finite counts only). At an interval's end its total is swapped for
zeros and starts its copy to the host; it is read, checked and logged at the next interval's end,
or before a checkpoint save or the epoch's end if one comes first. So the host never waits for the
step it has just issued, the values and steps logged are those of a synchronous read, and every
save still follows the health check of the interval before it.
"""

import contextlib
import dataclasses
import json
import pathlib
import signal
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxdl.data import pipeline
from jaxdl.errors import CheckpointError, DataError, JaxdlError
from jaxdl.tasks.spec import Task
from jaxdl.training import checkpoint, loop, metrics, optim
from jaxdl.training.group import Group
from jaxdl.utils import distributed, files, preemption, runs
from jaxdl.utils.logging import RunLogger

INTERVAL_KEYS = ("count", "loss_sum", *metrics.HEALTH)  # what a log interval's total keeps


class Preempted(JaxdlError):
    """Stopped by SIGTERM or Ctrl-C after saving a checkpoint; rerunning the command resumes."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        # 128 + the signal, as a shell reports it: 143 (SIGTERM) is what batch schedulers
        # expect from a pre-empted job, 130 what Ctrl-C gives.
        self.exit_code = 128 + signal_number


class NonFiniteLoss(JaxdlError):
    """Every member met a non-finite loss or gradient under `train.nan_policy=stop`."""


@dataclasses.dataclass(frozen=True)
class Member:
    """One configuration: its full config and where it logs and checkpoints."""

    name: str
    config: ml_collections.ConfigDict
    log_dir: pathlib.Path
    checkpoint_dir: pathlib.Path


@dataclasses.dataclass(frozen=True)
class Data:
    """What the members share: the splits, batch sizes, and the config that orders the data."""

    config: ml_collections.ConfigDict  # its seed drives data order and augmentation
    task: Task
    train: Any
    val: Any
    names: tuple[str, ...]
    batch_size: int
    eval_batch_size: int
    augment: bool


@dataclasses.dataclass
class Result:
    member: Member
    history: list[dict]
    best_epoch: int | None
    diverged: str | None  # the message when a non-finite loss stopped this member
    seconds: float = 0.0  # wall time of this call (a group's time is shared by its members)


def _prefixed(prefix: str, values: dict) -> dict:
    return {f"{prefix}/{k}": v for k, v in values.items()}


def _encode_sums(sums: dict) -> dict:
    """Host sums as JSON (dtype + values): floats round-trip exactly, so a resume is bitwise."""
    return {
        k: {"dtype": str(np.asarray(v).dtype), "value": np.asarray(v).tolist()}
        for k, v in sums.items()
    }


def _decode_sums(encoded: dict) -> dict:
    return {k: np.asarray(v["value"], dtype=v["dtype"]) for k, v in encoded.items()}


@dataclasses.dataclass
class _Position:
    step: int
    epoch: int  # the epoch the position lies in
    batches_done: int  # of that epoch
    states: list
    histories: list[list[dict]]
    epoch_sums: list[dict] | None
    diverged: list[str | None]


def batches_per_epoch(data: Data) -> int:
    """Train steps per epoch; a train split smaller than one batch is refused. The modes call it
    before they create a run directory, so such a run leaves nothing behind."""
    num_batches = pipeline.num_train_batches(data.train, data.batch_size)
    if num_batches == 0:
        raise DataError(
            f"the training split has {len(data.train)} examples, fewer than one "
            f"batch of train.batch_size={data.batch_size}; lower train.batch_size"
        )
    return num_batches


def _open_checkpoints(member: Member) -> checkpoint.Checkpoints:
    """The member's checkpoint directory; a step whose metrics Orbax cannot read is set aside."""
    train = member.config.train
    while True:
        try:
            return checkpoint.Checkpoints(member.checkpoint_dir, train.best_metric, train.best_mode)
        except checkpoint.UnreadableCheckpoint as err:
            target = checkpoint.set_aside(err.directory, err.step)
            print(f"{err}; set aside as {target.name}, resuming from an earlier step")


def _check_same_config(c: checkpoint.Checkpoints, meta: dict, member: Member) -> None:
    """Refuses the checkpoints of another configuration (a run of the same name whose logs were
    removed), naming each key that differs."""
    differences = runs.config_differences(meta["config"], member.config.to_dict())
    if differences:
        shown = "; ".join(differences[:10]) + ("; …" if len(differences) > 10 else "")
        raise CheckpointError(
            f"{c.directory} holds the checkpoints of another configuration, not "
            f"this run's ({shown}); delete that directory to train this "
            "configuration afresh, or choose another --config.run_name"
        )


def _restore(
    members: list[Member], group: Group, checkpoints: list[checkpoint.Checkpoints], num_batches: int
) -> _Position | None:
    """The members' latest common intact position, or None for a fresh start.

    An unreadable step is set aside (renamed, kept for inspection) and the previous one tried.
    """
    while True:
        steps = [set(c.all_steps()) for c in checkpoints]
        if not all(steps):
            return None
        common = set.intersection(*steps)
        if not common:
            raise CheckpointError(
                f"the members of the group in {checkpoints[0].directory.parent} "
                "hold no checkpoint step in common; delete the group's "
                "checkpoints to restart"
            )
        step = max(common)  # members save one after another: one may be a save ahead
        try:
            return _read_position(members, group, checkpoints, step, num_batches)
        except checkpoint.UnreadableCheckpoint as err:
            broken = next(c for c in checkpoints if c.directory == err.directory)
            target = broken.set_aside(err.step)
            print(f"{err}; set aside as {target.name}, resuming from an earlier step")


def _read_position(
    members: list[Member],
    group: Group,
    checkpoints: list[checkpoint.Checkpoints],
    step: int,
    num_batches: int,
) -> _Position:
    metas = [c.read_meta(step) for c in checkpoints]
    for c, meta, member in zip(checkpoints, metas, members, strict=True):
        _check_same_config(c, meta, member)
    states = [
        c.restore_state(step, template)
        for c, template in zip(checkpoints, group.member_states(group.states), strict=True)
    ]
    if metas[0]["num_batches"] != num_batches:
        raise DataError(
            f"cannot resume from {checkpoints[0].directory}/{step}: it was trained "
            f"with {metas[0]['num_batches']} batches per epoch, the data now gives "
            f"{num_batches}; the dataset or batch size changed"
        )
    partial = metas[0]["epoch_sums"] is not None
    return _Position(
        step,
        metas[0]["epoch"],
        metas[0]["batches_done"],
        states,
        [m["history"] for m in metas],
        [_decode_sums(m["epoch_sums"]) for m in metas] if partial else None,
        [m.get("diverged") for m in metas],
    )


class _Run:
    """Per-member bookkeeping of one `fit` call: loggers, checkpoints, histories, divergence."""

    def __init__(
        self,
        members: list[Member],
        data: Data,
        group: Group,
        num_batches: int,
        checkpoints: list[checkpoint.Checkpoints],
        position: _Position | None,
    ):
        self.members, self.data, self.group, self.num_batches = members, data, group, num_batches
        self.checkpoints = checkpoints
        self.loggers: list[RunLogger] = []  # opened by `fit` when there is an epoch to train
        self.histories = position.histories if position else [[] for _ in members]
        self.diverged = position.diverged if position else [None] * len(members)
        self.finished_interval = None  # (last step, the group's sums): their host copy under way
        self.config = members[0].config

    def active(self) -> list[int]:
        return [i for i, message in enumerate(self.diverged) if message is None]

    def learning_rate(self, i: int, step: int) -> float:
        """The lr of member `i`'s optimizer step `step`: its peak train.lr through the schedule."""
        train = self.members[i].config.train
        return optim.learning_rate(train, self.num_batches, step, train.lr)

    def save(
        self,
        step: int,
        epoch: int,
        batches_done: int,
        states,
        epoch_sums,
        val_metrics: list[dict] | None = None,
    ) -> None:
        """Checkpoints every member still training (epoch end: with its val metrics), after the
        finished log interval is checked and logged."""
        self.log_interval(epoch)
        member_states = self.group.member_states(states)
        member_sums = None if epoch_sums is None else self.group.member_sums(epoch_sums)
        for i in self.active():
            if step in self.checkpoints[i].all_steps():  # a stale save from before a resume
                self.checkpoints[i].delete(step)
            meta = {
                "config": self.members[i].config.to_dict(),
                "class_names": list(self.data.names),
                "epoch": epoch,
                "batches_done": batches_done,
                "num_batches": self.num_batches,
                "history": self.histories[i],
                "diverged": self.diverged[i],
                "epoch_sums": None if member_sums is None else _encode_sums(member_sums[i]),
                "metrics": self.histories[i][-1] if self.histories[i] else {},
            }
            self.checkpoints[i].save(
                step, member_states[i], meta, None if val_metrics is None else val_metrics[i]
            )

    def check_health(self, member_sums: list[dict], epoch: int) -> None:
        """Marks members whose loss or gradients went non-finite; stops when none is left."""
        if self.config.train.nan_policy == "skip":
            return
        for i in self.active():
            if member_sums[i][metrics.NONFINITE]:
                first = int(member_sums[i][metrics.FIRST_NONFINITE])
                last = self.checkpoints[i].latest_step()
                where = (
                    f"the last good checkpoint is {self.checkpoints[i].directory}/{last}"
                    if last is not None
                    else "no checkpoint was written yet"
                )
                self.diverged[i] = (
                    f"{self.members[i].name}: non-finite loss or gradients at step "
                    f"{first} (epoch {epoch}); training stopped, {where}. "
                    "Lower train.lr, or set train.nan_policy=skip."
                )
                print(f"  {self.diverged[i]}")
        if not self.active():
            raise NonFiniteLoss("\n".join(m for m in self.diverged if m))

    def after_step(self, epoch: int, epoch_start: int, watcher) -> Any:
        """The per-step hook of `loop.train_epoch` for this epoch."""
        interval = self.config.train.log_every_steps
        every = self.config.train.checkpoint_every_steps
        last_step = epoch_start + self.num_batches

        def hook(step: int, states, sums: dict) -> dict:
            if interval and step % interval == 0:
                sums = self.end_interval(step, epoch, sums)
            saved = False
            if every and step % every == 0 and step != last_step:
                self.save(step, epoch, step - epoch_start, states, sums["epoch"])
                saved = True
            if watcher.stop_at(step):
                if not saved:
                    self.save(step, epoch, step - epoch_start, states, sums["epoch"])
                self.stop(step, epoch, watcher)
            return sums

        return hook

    def interval_totals(self) -> dict:
        return interval_totals(self.group, self.config)

    def end_interval(self, step: int, epoch: int, sums: dict) -> dict:
        """Ends the log interval at `step`: the one before is logged (its copy to the host had a
        whole interval to land), this one's total starts its copy, and zeros take its place."""
        self.log_interval(epoch)
        for leaf in jax.tree.leaves(sums["interval"]):
            leaf.copy_to_host_async()
        self.finished_interval = (step, sums["interval"])
        return sums | self.interval_totals()

    def log_interval(self, epoch: int) -> None:
        """Checks the health of the finished log interval, if any, then logs each active
        member's `train/loss_step` and `train/lr` at the interval's last step."""
        if self.finished_interval is None:
            return
        step, sums = self.finished_interval
        self.finished_interval = None
        member_sums = self.group.member_sums(sums)
        self.check_health(member_sums, epoch)
        for i in self.active():
            self.loggers[i].scalars(
                step,
                {
                    "train/loss_step": metrics.mean_loss(member_sums[i]),
                    "train/lr": self.learning_rate(i, step),
                },
            )

    def stop(self, step: int, epoch: int, watcher: preemption.SigtermWatcher) -> None:
        """Raises `Preempted` once the checkpoint saved at `step` is complete."""
        for c in self.checkpoints:
            c.wait()
        where = (
            self.checkpoints[0].directory
            if len(self.checkpoints) == 1
            else self.checkpoints[0].directory.parent
        )
        received = watcher.received or signal.SIGTERM  # several processes: jax's SIGTERM
        raise Preempted(
            f"{received.name} at step {step} (epoch {epoch}): checkpoint saved in "
            f"{where}; rerun the same command to resume",
            received.value,
        )

    def end_epoch(
        self, epoch: int, step: int, states, train_sums, val_sums, seconds: float
    ) -> None:
        self.log_interval(epoch)
        train_members = self.group.member_sums(train_sums)
        self.check_health(train_members, epoch)
        val_members = self.group.member_sums(val_sums)
        val_metrics = [None] * len(self.members)
        for i in self.active():
            skipped = int(train_members[i][metrics.NONFINITE])
            train_metrics = self.group.objective.summary(
                {k: v for k, v in train_members[i].items() if k not in metrics.HEALTH}
            )
            val_metrics[i] = self.group.objective.summary(val_members[i])
            record = {
                "epoch": epoch,
                "step": step,
                **_prefixed("train", train_metrics),
                "train/lr": self.learning_rate(i, step),
                **_prefixed("val", val_metrics[i]),
                "seconds": seconds,
            }
            if skipped:
                record["train/skipped_steps"] = skipped
            self.loggers[i].scalars(
                epoch, _prefixed("train", train_metrics) | _prefixed("val", val_metrics[i])
            )
            self.loggers[i].log_epoch(record)
            self.histories[i].append(record)
            metric = self.config.train.best_metric
            label = f"{self.members[i].name}  " if len(self.members) > 1 else ""
            note = (
                f"  {skipped} of {self.num_batches} steps skipped (non-finite loss or gradients)"
                if skipped
                else ""
            )
            print(
                f"{label}epoch {epoch:3d}  train loss {train_metrics['loss']:.4f} "
                f"{metric} {train_metrics.get(metric, float('nan')):.4f}  |  val loss "
                f"{val_metrics[i]['loss']:.4f} {metric} {val_metrics[i][metric]:.4f}  "
                f"({seconds:.1f} s){note}"
            )
        self.save(step, epoch, self.num_batches, states, None, val_metrics)

    def results(self) -> list[Result]:
        out = []
        for member, c, history, diverged in zip(
            self.members, self.checkpoints, self.histories, self.diverged, strict=True
        ):
            c.wait()
            best = c.best_step()
            out.append(
                Result(
                    member, history, None if best is None else c.read_meta(best)["epoch"], diverged
                )
            )
        return out


def _rewrite_jsonl(log_dir: pathlib.Path, history: list[dict]) -> None:
    """metrics.jsonl holds exactly the checkpointed epochs: a killed epoch's line is dropped on
    resume, and a file that already holds them is left as it is."""
    path = log_dir / "metrics.jsonl"
    text = "".join(json.dumps(record) + "\n" for record in history)
    if not (path.is_file() and path.read_text() == text):
        log_dir.mkdir(parents=True, exist_ok=True)
        files.write_text_atomic(path, text)


def _start(position: _Position | None, group: Group) -> tuple:
    """(states, epoch sums, first epoch, batches of it already done, step) to continue from."""
    if position is None:
        return group.states, None, 1, 0, 0
    if position.epoch_sums is None:  # saved at an epoch end, validated and logged
        return group.join_states(position.states), None, position.epoch + 1, 0, position.step
    # Saved within the epoch, or after its last step before validation (a signal there): the
    # rest of the epoch runs from here, validation and logging included.
    return (
        group.join_states(position.states),
        group.join_sums(position.epoch_sums),
        position.epoch,
        position.batches_done,
        position.step,
    )


def fit(members: list[Member], data: Data, group: Group) -> list[Result]:
    """Trains `group` (one state per member) for `train.epochs`, resuming where it stopped."""
    config = members[0].config
    num_batches = batches_per_epoch(data)
    distributed.check_batch_size("train.batch_size", data.batch_size, group.mesh)
    distributed.check_batch_size("train.eval_batch_size", data.eval_batch_size, group.mesh)
    with contextlib.ExitStack() as stack:
        checkpoints = [stack.enter_context(_open_checkpoints(m)) for m in members]
        position = _restore(members, group, checkpoints, num_batches)
        run = _Run(members, data, group, num_batches, checkpoints, position)
        for member, history in zip(members, run.histories, strict=True):
            _rewrite_jsonl(member.log_dir, history)
        states, epoch_sums, start_epoch, skip, step = _start(position, group)
        if position is not None:
            print(f"resuming from step {step} (epoch {start_epoch}, batch {skip} of {num_batches})")
        if start_epoch > config.train.epochs:  # finished before: nothing to train, nothing logged
            return run.results()
        run.loggers = [
            stack.enter_context(RunLogger(m.log_dir, m.config.to_dict())) for m in members
        ]
        watcher = stack.enter_context(preemption.watch_sigterm())
        totals = run.interval_totals()  # runs on across epochs, as the step count does
        epochs = range(start_epoch, config.train.epochs + 1)
        # One feed (one worker pool) for every epoch left; each process loads the rows its
        # devices hold on the mesh (members may be laid across hosts).
        feed = stack.enter_context(
            pipeline.EpochFeed(
                data.train,
                data.val,
                data.task,
                data.config,
                epochs,
                data.batch_size,
                data.eval_batch_size,
                data.augment,
                skip=skip,
                process=distributed.data_block(group.mesh),
            )
        )
        for epoch in epochs:
            started = time.perf_counter()
            epoch_start = (epoch - 1) * num_batches
            batches = feed.train(epoch)
            totals["epoch"] = group.zero_sums() if epoch_sums is None else epoch_sums
            states, totals = loop.train_epoch(
                group.train,
                states,
                totals,
                batches,
                num_batches - skip,
                group.mesh,
                f"epoch {epoch}/{config.train.epochs}",
                first_step=epoch_start + skip,
                after_step=run.after_step(epoch, epoch_start, watcher),
            )
            train_sums = totals.pop("epoch")
            skip, epoch_sums, step = 0, None, epoch_start + num_batches
            val_sums = loop.evaluate(
                group.eval,
                states,
                group.zero_sums(train=False),
                feed.val(epoch),
                group.mesh,
                "val",
            )
            run.end_epoch(epoch, step, states, train_sums, val_sums, time.perf_counter() - started)
            if watcher.requested:  # the signal came during validation: the epoch's save holds it
                run.stop(step, epoch, watcher)
        return run.results()


def interval_totals(group: Group, config: ml_collections.ConfigDict) -> dict:
    """`{"interval": zeros}`, the running total of a log interval (none without logging); the
    train step also carries the epoch's total."""
    if not config.train.log_every_steps:
        return {}
    return {"interval": group.zero_sums(keys=INTERVAL_KEYS)}


def history_records(result: Result) -> dict:
    """The best epoch's record of a member (or {} when it never finished an epoch)."""
    if result.best_epoch is None:
        return {}
    return next(r for r in result.history if r["epoch"] == result.best_epoch)
