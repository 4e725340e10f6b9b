"""Callbacks the tests use to stop training, or to press Ctrl-C, at an exact point."""

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


class CtrlCAtEpisode(TrainCallback):
    """Simulates the user pressing Ctrl-C at the end of episode `episode`."""

    def __init__(self, episode: int) -> None:
        self.episode = episode

    def on_episode_end(self, state):
        if state.episode == self.episode:
            raise KeyboardInterrupt
