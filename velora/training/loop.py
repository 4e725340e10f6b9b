"""The one training loop, shared by every NeuroFlow agent whatever its action space."""

import math
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import TimeLimit

from velora.gym import add_core_env_wrappers, env_name, make_env
from velora.metrics import EpisodeRecord, MetricsWriter
from velora.training.callback import TrainCallback
from velora.training.config import TrainConfig
from velora.training.display import TrainDisplay
from velora.training.protocol import TrainableAgent
from velora.training.state import TrainState, TrainSummary

LOSS_NAMES = ("actor_loss", "critic_loss", "entropy_loss")
#: a finished episode as the runners yield it: (return, length, mean losses).
FinishedEpisode = tuple[float, int, dict[str, float]]


def _check_callbacks(callbacks: Sequence[TrainCallback] | None) -> list[TrainCallback]:
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if not isinstance(callback, TrainCallback):
            raise TypeError(
                f"{callback!r} is not a callback; subclass velora.callbacks.TrainCallback."
            )
    return sorted(callbacks, key=lambda callback: callback.order)


@contextmanager
def _cpu_threads(device: torch.device, threads: int = 1) -> Iterator[None]:
    """Run tiny-network training on one CPU thread, then restore the user's setting.

    Each op of these networks is far too small to split across threads; extra threads
    only add synchronisation and fight the env for cores.
    """
    if device.type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _keep_going(answers: list[bool | None]) -> bool:
    """False if any callback asked to stop (every hook has run by then)."""
    return all(answer is not False for answer in answers)


def train_agent(
    agent: TrainableAgent,
    config: TrainConfig,
    *,
    callbacks: Sequence[TrainCallback] | None = None,
) -> TrainSummary:
    """Train `agent` as `config` says, with one gradient step per environment step.

    The first `config.warmup` steps act at random to fill the buffer. Every finished
    episode becomes a row of the metrics database; rows are written in one transaction
    every `log_freq` episodes and when training ends. A progress line is printed every
    `display_count` episodes; `window_size` episodes make the moving average. Episodes
    are cut at `max_steps` steps (a truncation, not a terminal state).
    `updates_per_step` gradient steps follow each environment step once learning starts.

    With `n_envs > 1` the agent acts in `n_envs` copies of the env at once (a Gymnasium
    `SyncVectorEnv`, sub-env `i` seeded `seed + i` on the agent's first run): each
    vector step stores `n_envs` transitions and counts `n_envs` steps, and is followed
    by `updates_per_step` gradient steps (Stable-Baselines3's `gradient_steps`), so
    there are `updates_per_step / n_envs` updates per transition. Episodes are still
    recorded one by one, in the order they finish, until `n_episodes` have finished;
    episodes still running then are dropped. Callbacks that render (`RecordVideos`)
    need `n_envs=1`.

    Callbacks' hooks run at training start, after each step (each vector step), at each
    episode end, after each metrics write, and at training end; a hook returning False
    stops training.
    """
    batch_size, n_envs = config.batch_size, config.n_envs
    if batch_size > agent.buffer.capacity:
        raise ValueError(
            f"batch_size ({batch_size}) is larger than the buffer ({agent.buffer.capacity})."
        )
    if config.sequence_length * n_envs > agent.buffer.capacity:
        raise ValueError(
            f"sequence_length ({config.sequence_length}) windows over {n_envs} env(s) do not "
            f"fit the buffer ({agent.buffer.capacity} transitions); shorten them or enlarge "
            "buffer_size."
        )
    callbacks = _check_callbacks(callbacks)
    if n_envs > 1:
        for callback in callbacks:
            if callback.render_mode:
                raise ValueError(
                    f"{type(callback).__name__} records one env; use n_envs=1 "
                    f"(got n_envs={n_envs})."
                )

    callback_configs = {type(c).__name__: c.config() for c in callbacks}
    config_json = agent.record_training(config.record(callback_configs))
    progress = agent.progress
    state = TrainState(
        agent=agent,
        callbacks=tuple(callbacks),
        env=agent.env,
        env_id=agent.env_id,
        env_name=env_name(agent.env_id),
        **{**asdict(config), "warmup_steps": config.warmup},
        start_episode=progress.episodes,
        start_step=progress.steps,
        episode=progress.episodes,
        step=progress.steps,
    )
    # Callbacks check their own set-up (e.g. a checkpoint folder) before a run is recorded.
    for callback in callbacks:
        callback.on_train_start(state)
    if progress.episodes == 0:
        # Seed the agent env's generator as its first reset would: a rendering copy
        # shares it, and a later n_envs=1 run after vector training draws from it.
        agent.env.unwrapped.np_random, _ = gym.utils.seeding.np_random(agent.seed)
    if n_envs == 1:
        env = _training_env(agent, callbacks)
    else:
        env = _vector_env(agent, n_envs, config.max_steps)
    state._update(env=env)
    try:
        writer = MetricsWriter(config.db_path)
        if progress.experiment_id is not None:
            writer.resume(progress.experiment_id)
        else:
            progress.experiment_id = writer.start(type(agent).__name__, agent.env_id, config_json)
        state._update(experiment_id=progress.experiment_id)
        if n_envs == 1:
            episodes = _single_env_episodes(agent, state, callbacks)
        else:
            episodes = _vector_env_episodes(agent, state, callbacks)
        with _cpu_threads(agent.device), closing(episodes):
            return _train(agent, state, writer, callbacks, config.db_path, episodes)
    finally:
        if env is not agent.env:
            env.close()  # flushes any video a recording wrapper still holds


def _training_env(agent: TrainableAgent, callbacks: list[TrainCallback]) -> gym.Env:
    """The agent's env, or a rendering copy wrapped by the callbacks that asked for one.

    Agents only render when a callback sets `render_mode` (e.g. video recording). The
    copy shares the agent env's random generator, so episode resets draw from the same
    stream as they would without it.
    """
    render_modes = {c.render_mode for c in callbacks if c.render_mode}
    if not render_modes:
        return agent.env
    if len(render_modes) > 1:
        raise ValueError(f"callbacks ask for different render modes: {sorted(render_modes)}.")
    env = make_env(agent.env_id, render_mode=render_modes.pop())
    for callback in callbacks:
        env = callback.wrap_env(env)
    env = add_core_env_wrappers(env, agent.device)
    env.unwrapped.np_random = agent.env.unwrapped.np_random
    return env


def _vector_env(agent: TrainableAgent, n_envs: int, max_steps: int) -> gym.vector.SyncVectorEnv:
    """`n_envs` copies of the agent's env, each cut at `max_steps`, reset in the same step.

    In `SAME_STEP` autoreset mode a finished sub-env is reset inside the step that ended
    its episode: the step returns the new episode's first observation and puts the
    episode's last one in `info["final_obs"]`.
    """

    def make() -> gym.Env:
        return TimeLimit(make_env(agent.env_id), max_episode_steps=max_steps)

    return gym.vector.SyncVectorEnv(
        [make] * n_envs,
        copy=False,  # each step's observations are copied out at once
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )


def _train(
    agent: TrainableAgent,
    state: TrainState,
    writer: MetricsWriter,
    callbacks: list[TrainCallback],
    db_path: str,
    episodes: Iterator[FinishedEpisode],
) -> TrainSummary:
    """The episode loop proper, once the arguments are checked and the run is recorded.

    `episodes` plays the env(s) and yields each episode as it finishes; this loop does
    the bookkeeping and decides when to stop asking for more.
    """
    display_count = state.display_count
    display = TrainDisplay()
    display.start(state, [c.summary() for c in callbacks])
    pending: list[EpisodeRecord] = []
    # The return history lives on the agent, so a resumed run's moving average continues.
    progress = agent.progress
    recent = deque(progress.recent_rewards, maxlen=state.window_size)
    reward_max = progress.reward_max if progress.reward_max is not None else float("-inf")
    try:
        for reward, length, losses in episodes:
            progress.episodes += 1
            recent.append(reward)
            progress.recent_rewards = list(recent)
            reward_max = max(reward_max, reward)
            progress.reward_max = reward_max
            window = np.array(recent)  # once: np.mean/np.std would each convert the deque
            record = EpisodeRecord(
                episode_num=progress.episodes,
                reward=reward,
                length=length,
                reward_moving_avg=float(window.mean()),
                reward_moving_std=float(window.std()),
                alpha=float(agent.entropy),
                **losses,
            )
            pending.append(record)
            state._update(
                episode=progress.episodes,
                step=progress.steps,
                episode_reward=reward,
                episode_length=length,
                rewards=tuple(recent),
                reward_moving_avg=record.reward_moving_avg,
                reward_moving_std=record.reward_moving_std,
                reward_max=reward_max,
                losses=losses,
            )
            keep_going = _keep_going([c.on_episode_end(state) for c in callbacks])
            if state.status == "early_stopped":
                keep_going = False
            done_here = progress.episodes - state.start_episode
            display.episode_end(state, show=done_here % display_count == 0)
            if len(pending) >= state.log_freq:
                _write(writer, pending, callbacks, state)
            if not keep_going:
                state._update(status="early_stopped")
                break
            if done_here >= state.n_episodes:
                break
        if state.status == "running":
            state._update(status="completed")
    except KeyboardInterrupt:
        state._update(status="interrupted")
        raise
    except Exception:
        state._update(status="failed")
        raise
    finally:
        _write(writer, pending, callbacks, state)  # finished episodes are never lost
        if state.status != "failed":  # a crash leaves no final checkpoint to trust
            _end_all(callbacks, state)
        summary = TrainSummary(
            episodes=progress.episodes - state.start_episode,
            steps=progress.steps - state.start_step,
            time_taken=state.elapsed,
            early_stopped=state.status == "early_stopped",
            interrupted=state.status == "interrupted",
            experiment_id=progress.experiment_id,
            reward_avg=state.reward_moving_avg,
            reward_max=state.reward_max,
            losses=state.losses,
        )
        display.finish(summary, state.status, db_path)
    return summary


def _end_all(callbacks: list[TrainCallback], state: TrainState) -> None:
    """Run every `on_train_end`, even if one fails (or a second Ctrl-C lands in one), so
    one callback's error never costs another its final checkpoint; the first error is
    raised once all have run."""
    error: BaseException | None = None
    for callback in callbacks:
        try:
            callback.on_train_end(state)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            error = error or exc
    if error is not None:
        raise error


def _write(
    writer: MetricsWriter,
    pending: list[EpisodeRecord],
    callbacks: list[TrainCallback],
    state: TrainState,
) -> None:
    """Write the pending episodes in one transaction and tell the callbacks."""
    if not pending:
        return
    for record in pending:
        writer.add(record)
    writer.flush()
    written = tuple(pending)
    pending.clear()  # before the hooks: one that raises must not get them written twice
    for callback in callbacks:
        callback.on_log(state, written)


def _sequence_settings(state: TrainState) -> dict[str, int]:
    """What `update` takes for sequence replay; nothing at the default single steps, so
    an agent written before sequences trains as it did."""
    if state.sequence_length == 1:
        return {}
    return {"sequence_length": state.sequence_length, "burn_in": state.burn_in}


def _behaviour_step(
    agent: TrainableAgent, states: torch.Tensor, hidden: torch.Tensor, warmup_steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The actions to play and the actor's next hidden state: random during warm-up
    (the actor still runs, so the stored hidden states are real), drawn after. The
    agent first counts the observations it is about to act on (normalisation)."""
    agent.observe(states)
    if agent.progress.steps >= warmup_steps:
        return agent.act(states, hidden, deterministic=False)
    return agent.random_act(states, hidden)


def _single_env_episodes(
    agent: TrainableAgent, state: TrainState, callbacks: list[TrainCallback]
) -> Iterator[FinishedEpisode]:
    """Episodes played one after another in the agent's env (`n_envs=1`)."""
    while True:
        yield _run_episode(agent, state, callbacks)


def _run_episode(
    agent: TrainableAgent, state: TrainState, callbacks: list[TrainCallback]
) -> FinishedEpisode:
    """Play one episode, learning after every step; returns (return, length, mean losses)."""
    env, buffer, progress = state.env, agent.buffer, agent.progress
    batch_size, warmup_steps, max_steps = state.batch_size, state.warmup_steps, state.max_steps
    sequences = _sequence_settings(state)
    first_reset = progress.episodes == 0 and env is agent.env
    obs, _ = env.reset(seed=agent.seed if first_reset else None)
    hidden = agent.initial_hidden(1)
    loss_sum = torch.zeros(3, device=agent.device)
    n_updates = 0
    total_reward = 0.0
    length = 0
    while length < max_steps:
        length += 1
        states = obs.unsqueeze(0)
        action, next_hidden = _behaviour_step(agent, states, hidden, warmup_steps)
        next_obs, reward, terminated, truncated, _ = env.step(agent.to_env(action)[0])
        buffer.add(obs, action, reward, next_obs, terminated, hidden, next_hidden, length - 1)
        progress.steps += 1
        total_reward += float(reward)
        if progress.steps > warmup_steps and len(buffer) >= batch_size:
            for _ in range(state.updates_per_step):
                loss_sum += agent.update(batch_size, **sequences)
            n_updates += state.updates_per_step
        obs, hidden = next_obs, next_hidden
        if callbacks:
            state._update(step=progress.steps)
            if not _keep_going([c.on_step(state) for c in callbacks]):
                state._update(status="early_stopped")
        if terminated or truncated or state.status == "early_stopped":
            break
    if n_updates:
        means = (loss_sum / n_updates).tolist()
    else:
        means = [math.nan] * 3
    return total_reward, length, dict(zip(LOSS_NAMES, means, strict=True))


def _vector_env_episodes(
    agent: TrainableAgent, state: TrainState, callbacks: list[TrainCallback]
) -> Iterator[FinishedEpisode]:
    """Episodes of `n_envs` sub-envs stepped together, yielded as they finish.

    Per vector step: one actor call on the `(n_envs, obs_dim)` batch, one host copy of
    the actions, one device copy of observations, rewards and dones, one buffer write
    of `n_envs` rows, then `updates_per_step` updates. Python only loops over the
    sub-envs whose episode just ended. Ends (after yielding that step's episodes) when
    an `on_step` hook stops training.
    """
    envs, buffer, device, progress = state.env, agent.buffer, agent.device, agent.progress
    n, batch_size, warmup_steps = state.n_envs, state.batch_size, state.warmup_steps
    sequences = _sequence_settings(state)
    obs_dim = buffer.widths[0]
    # The agent's first run is seeded like the single env's first reset (sub-env i gets
    # seed + i); later runs continue from a seed the step count makes unique.
    obs, _ = envs.reset(seed=agent.seed + progress.steps)
    # A copy: with copy=False the vector env refills this array on every step.
    states = torch.as_tensor(np.array(obs, dtype=np.float32), device=device)
    hidden = agent.initial_hidden(n)
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    loss_sum = torch.zeros(n, 3, device=device)  # every update adds to every row
    n_updates = np.zeros(n, dtype=np.int64)
    while True:
        action, next_hidden = _behaviour_step(agent, states, hidden, warmup_steps)
        obs, reward, terminated, truncated, info = envs.step(agent.to_env(action).cpu().numpy())
        finished = np.flatnonzero(terminated | truncated)
        # One host row per sub-env, [obs to act on next | true next obs | reward | done],
        # copied to the device at once. Fresh each step: on the CPU the tensor shares it.
        packed = np.empty((n, 2 * obs_dim + 2), dtype=np.float32)
        packed[:, :obs_dim] = obs
        packed[:, obs_dim : 2 * obs_dim] = obs
        for i in finished:  # the reset obs is in `obs`; the episode's last is in info
            packed[i, obs_dim : 2 * obs_dim] = info["final_obs"][i]
        packed[:, -2] = reward
        packed[:, -1] = terminated
        staged = torch.as_tensor(packed, device=device)
        next_states = staged[:, obs_dim : 2 * obs_dim]
        buffer.add_batch(
            states,
            action,
            staged[:, -2],
            next_states,
            staged[:, -1],
            hidden,
            next_hidden,
            episode_steps=lengths,
        )
        progress.steps += n
        returns += reward
        lengths += 1
        if progress.steps > warmup_steps and len(buffer) >= batch_size:
            for _ in range(state.updates_per_step):
                loss_sum += agent.update(batch_size, **sequences)
            n_updates += state.updates_per_step
        states, hidden = staged[:, :obs_dim], next_hidden
        ended: list[FinishedEpisode] = []
        if len(finished):
            index = torch.as_tensor(finished, device=device)
            sums = loss_sum.index_select(0, index).tolist()  # one read-back per step
            for i, row in zip(finished, sums, strict=True):
                count = int(n_updates[i])
                means = [v / count for v in row] if count else [math.nan] * 3
                losses = dict(zip(LOSS_NAMES, means, strict=True))
                ended.append((float(returns[i]), int(lengths[i]), losses))
            hidden = hidden.index_fill(0, index, 0.0)  # a new episode starts from zero
            loss_sum.index_fill_(0, index, 0.0)
            returns[finished] = 0.0
            lengths[finished] = 0
            n_updates[finished] = 0
        if callbacks:
            state._update(step=progress.steps)
            if not _keep_going([c.on_step(state) for c in callbacks]):
                state._update(status="early_stopped")
        yield from ended
        if state.status == "early_stopped":
            return
