"""Callbacks the tests share: one that records what each hook saw, and ones that stop
training, or press Ctrl-C, at an exact point; and a counter of the agent's updates."""

from velora.callbacks import TrainCallback


class StopAtStep(TrainCallback):
    """Asks training to stop once `step` environment steps are done."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, state):
        return state.step < self.step


class StopAtEpisode(TrainCallback):
    """Asks training to stop once `episode` episodes are done."""

    def __init__(self, episode: int) -> None:
        self.episode = episode

    def on_episode_end(self, state):
        return state.episode < self.episode


class CtrlCAtStep(TrainCallback):
    """Simulates the user pressing Ctrl-C at environment step `step`."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, state):
        if state.step == self.step:
            raise KeyboardInterrupt


class CtrlCIntoEpisode(TrainCallback):
    """Simulates the user pressing Ctrl-C `steps` steps into episode `episode`."""

    def __init__(self, episode: int, steps: int) -> None:
        self.episode, self.steps = episode, steps
        self.started_at: int | None = None  # the env step that ended the episode before

    def on_episode_end(self, state):
        if state.episode == self.episode - 1:
            self.started_at = state.step

    def on_step(self, state):
        if self.started_at is not None and state.step == self.started_at + self.steps:
            raise KeyboardInterrupt


class CtrlCAtEpisode(TrainCallback):
    """Simulates the user pressing Ctrl-C at the end of episode `episode`."""

    def __init__(self, episode: int) -> None:
        self.episode = episode

    def on_episode_end(self, state):
        if state.episode == self.episode:
            raise KeyboardInterrupt


class Recorder(TrainCallback):
    """Records what each hook saw."""

    def __init__(self) -> None:
        self.episodes: list[dict] = []
        self.logs: list[tuple] = []
        self.steps: list[int] = []
        self.started = 0
        self.ended = 0
        self.set_attr_errors = 0

    def on_train_start(self, state) -> None:
        self.started += 1

    def on_step(self, state):
        self.steps.append(state.step)

    def on_episode_end(self, state):
        self.episodes.append(
            {
                "episode": state.episode,
                "step": state.step,
                "reward": state.episode_reward,
                "length": state.episode_length,
                "avg": state.reward_moving_avg,
                "std": state.reward_moving_std,
                "losses": dict(state.losses),
            }
        )
        try:
            state.episode = -1
        except AttributeError:
            self.set_attr_errors += 1

    def on_log(self, state, records) -> None:
        self.logs.append(tuple(records))

    def on_train_end(self, state) -> None:
        self.ended += 1


def count_updates(agent, monkeypatch) -> list[int]:
    """The agent's step count at each `update` call, filled as training runs."""
    update_steps: list[int] = []
    update = agent.update

    def counting_update(batch_size):
        update_steps.append(agent.steps_done)
        return update(batch_size)

    monkeypatch.setattr(agent, "update", counting_update)
    return update_steps
