"""Console output of a training run: header, periodic progress, a live bar, summary."""

from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from velora.training.state import TrainState, TrainSummary


class TrainDisplay:
    """Prints what a user wants to see while an agent trains, through one rich console."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.progress = Progress(
            TextColumn("[bold blue]Training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("episodes"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[best]}"),
            console=self.console,
            transient=True,
        )
        self._task = None

    def start(self, state: TrainState, callback_summaries: Sequence[str]) -> None:
        """The header, then the live progress bar."""
        agent = state.agent
        table = Table(show_header=False, box=None, padding=(0, 2))
        rows = [
            ("Agent", f"{type(agent).__name__} ({agent.config.action_type})"),
            ("Env", state.env_id),
            *([("Envs", f"{state.n_envs} (vector env)")] if state.n_envs > 1 else []),
            ("Episodes", f"{state.n_episodes:,} (from episode {state.start_episode + 1})"),
            ("Buffer", f"{agent.buffer.capacity:,} transitions"),
            ("Batch size", str(state.batch_size)),
            ("Warm-up", f"{state.warmup_steps:,} steps"),
            ("Seed", str(agent.seed)),
            ("Device", str(agent.device)),
            ("Window", str(state.window_size)),
            ("Parameters", f"{agent.active_params:,} active / {agent.total_params:,} total"),
            ("Callbacks", "; ".join(callback_summaries) or "none"),
        ]
        for name, value in rows:
            table.add_row(f"[bold]{name}", value)
        self.console.rule("[bold]Velora training")
        self.console.print(table)
        self.progress.start()
        self._task = self.progress.add_task("train", total=state.n_episodes, best="")

    def episode_end(self, state: TrainState, show: bool) -> None:
        """Advance the bar; print a progress line every `display_count` episodes, and
        every evaluation as it is made (the bar keeps the best)."""
        self.progress.advance(self._task)
        if (evaluation := state.new_evaluation) is not None:
            self.evaluation(evaluation)
        if show:
            losses = state.losses
            self.console.print(
                f"Episode {state.episode - state.start_episode:,}/{state.n_episodes:,}  "
                f"steps {state.step:,}  "
                f"reward avg {state.reward_moving_avg:.2f} ± {state.reward_moving_std:.2f}  "
                f"max {state.reward_max:.2f}  "
                f"losses actor {losses['actor_loss']:.3f} critic {losses['critic_loss']:.3f} "
                f"entropy {losses['entropy_loss']:.3f}  "
                f"alpha {float(state.agent.entropy):.3g}"
            )

    def evaluation(self, evaluation: dict) -> None:
        best = evaluation["best_mean_return"]
        self.console.print(
            f"[bold]Evaluation[/] at episode {evaluation['episode']:,}: "
            f"return {evaluation['mean_return']:.2f} ± {evaluation['std_return']:.2f}, "
            f"length {evaluation['mean_length']:.1f} "
            f"over {evaluation['episodes']} episodes"
            + ("  [bold green]best so far[/]" if evaluation["improved"] else f"  (best {best:.2f})")
        )
        self.progress.update(self._task, best=f"best eval {best:.2f}")

    def finish(self, summary: TrainSummary, status: str, db_path: str) -> None:
        """Stop the bar and print the end summary."""
        self.progress.stop()
        ending = {
            "completed": "episode budget used",
            "early_stopped": "early stopping fired",
            "interrupted": "interrupted",
        }.get(status, "failed")
        self.console.rule("[bold]Training finished")
        self.console.print(
            f"{summary.episodes:,} episodes, {summary.steps:,} steps in "
            f"{summary.time_taken:.1f}s ({ending}). "
            f"Reward avg {summary.reward_avg:.2f}, max {summary.reward_max:.2f}. "
            f"Metrics: experiment {summary.experiment_id} in {db_path}"
        )
