"""Log training to MLflow, under the same metric names as Comet."""

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from velora.callbacks.tracking import episode_metrics, flatten, new_evaluation_metrics
from velora.metrics import EpisodeRecord
from velora.training import TrainCallback, TrainState

INSTALL_HINT = 'pip install "velora[mlflow]"'
#: MLflow's run status for each way a training run ends.
RUN_STATUS = {"completed": "FINISHED", "early_stopped": "FINISHED", "interrupted": "KILLED"}
#: Tags that tie an MLflow run to its row of a metrics database, so a resumed agent
#: goes on logging into the same run.
RUN_ID_TAG, METRICS_DB_TAG = "velora.experiment_id", "velora.metrics_db"
BATCH_LIMIT = 1000  # MLflow takes at most 1000 metrics in one `log_batch`


def _require_mlflow() -> None:
    try:
        import mlflow  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"MLflowLogger needs MLflow: {INSTALL_HINT} (or pip install mlflow-skinny). ({error})"
        ) from None


@contextmanager
def _fail_fast(timeout: int = 10) -> Iterator[None]:
    """No retries and a short timeout while probing the server, so that a wrong URI is
    an error within seconds rather than after MLflow's minutes of backing off."""
    settings = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout)}
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class MLflowLogger(TrainCallback):
    """Logs a training run to MLflow: the agent's config as parameters, every logged
    episode and every evaluation as metrics (step = episode number), and how it ended.

    One MLflow run per training run, named `<AgentClass>_<EnvName>_<run id>` (the run
    id being the run's row in the metrics database); training a saved agent on goes on
    logging into the same MLflow run. The tracking server is checked before the first
    episode, so a wrong URI fails at once. Needs the `mlflow` extra
    (`pip install "velora[mlflow]"`).

    Args:
        tracking_uri: where runs go: a server (`http://host:5000`), a database
            (`sqlite:///mlflow.db`); default MLflow's own (`MLFLOW_TRACKING_URI`, else
            `sqlite:///mlflow.db` in the working directory).
        experiment_name: the MLflow experiment, created if missing.
        run_name: default `<AgentClass>_<EnvName>_<run id>`.
        tags: extra run tags.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str = "velora",
        *,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        _require_mlflow()
        if not isinstance(experiment_name, str) or not experiment_name.strip():
            raise ValueError(
                f"experiment_name must be a non-empty string, got {experiment_name!r}."
            )
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.client: Any = None
        self.experiment_id: str | None = None
        self.run_id: str | None = None

    def on_train_start(self, state: TrainState) -> None:
        import mlflow
        from mlflow import MlflowClient

        uri = self.tracking_uri or mlflow.get_tracking_uri()
        self.client = MlflowClient(tracking_uri=uri)
        try:
            with _fail_fast():
                experiment = self.client.get_experiment_by_name(self.experiment_name)
        except Exception as error:  # noqa: BLE001 - each store raises its own kind
            raise ConnectionError(
                f"MLflowLogger cannot reach the MLflow tracking store at {uri!r}: {error} "
                "Start the server (mlflow server), correct the URI, or log to a local "
                "database with MLflowLogger(tracking_uri='sqlite:///mlflow.db')."
            ) from None
        if experiment is None:
            self.experiment_id = self.client.create_experiment(self.experiment_name)
        else:
            self.experiment_id = experiment.experiment_id
        self.run_id = None

    def _run(self, state: TrainState) -> str:
        """The MLflow run, started (or found again) once the metrics database has given
        this training run its id."""
        if self.run_id is not None:
            return self.run_id
        database = str(Path(state.db_path).resolve())
        tags = {RUN_ID_TAG: str(state.experiment_id), METRICS_DB_TAG: database}
        earlier = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{state.experiment_id}'"
        )
        earlier = [run for run in earlier if run.data.tags.get(METRICS_DB_TAG) == database]
        if earlier:
            run = earlier[0]
            self.client.update_run(run.info.run_id, status="RUNNING")
        else:
            name = f"{type(state.agent).__name__}_{state.env_name}_{state.experiment_id}"
            run = self.client.create_run(
                self.experiment_id, run_name=self.run_name or name, tags={**tags, **self.tags}
            )
        self.run_id = run.info.run_id
        self._log_params(self.run_id, state, already=run.data.params)
        return self.run_id

    def _log_params(self, run_id: str, state: TrainState, already: dict[str, str]) -> None:
        """The agent's config, flattened; a resumed run keeps the values it first had
        (MLflow parameters cannot change), so only new ones are logged."""
        from mlflow.entities import Param

        params = flatten(state.agent.config.model_dump(mode="json"))
        new = [Param(key, str(value)) for key, value in params.items() if key not in already]
        for start in range(0, len(new), 100):  # MLflow's limit of parameters per batch
            self.client.log_batch(run_id, params=new[start : start + 100])

    def _log(self, state: TrainState, metrics: list[tuple[int, dict[str, float]]]) -> None:
        from mlflow.entities import Metric

        run_id = self._run(state)
        now = int(time.time() * 1000)
        batch = [
            Metric(name, float(value), now, step)
            for step, values in metrics
            for name, value in values.items()
        ]
        for start in range(0, len(batch), BATCH_LIMIT):
            self.client.log_batch(run_id, metrics=batch[start : start + BATCH_LIMIT])

    def on_log(self, state: TrainState, records: tuple[EpisodeRecord, ...]) -> None:
        self._log(state, [(record.episode_num, episode_metrics(record)) for record in records])

    def on_episode_end(self, state: TrainState) -> None:
        if metrics := new_evaluation_metrics(state):
            self._log(state, [(state.episode, metrics)])

    def on_train_end(self, state: TrainState) -> None:
        if self.run_id is not None:
            self.client.set_tag(self.run_id, "velora.status", state.status)
            self.client.set_terminated(self.run_id, RUN_STATUS.get(state.status, "FAILED"))
        self.run_id = None

    def summary(self) -> str:
        where = self.tracking_uri or "MLflow's default tracking URI"
        return f"MLflowLogger({self.experiment_name!r} at {where})"

    def config(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.tracking_uri,
            "experiment_name": self.experiment_name,
            "run_name": self.run_name,
            "tags": self.tags,
        }
