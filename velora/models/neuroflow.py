"""NeuroFlow: Soft Actor-Critic with a liquid NCP actor and sparse NCP critics."""

import copy
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import gymnasium as gym
import numpy as np
import torch

from velora.buffer import Batch, ReplayBuffer
from velora.gym import add_core_env_wrappers, make_env
from velora.models.config import AgentConfig
from velora.models.critic import CriticEnsemble
from velora.models.exploration import EXPLORATION_NOISES, PinkNoise
from velora.models.handwritten_update import (
    EAGER,
    SACGradients,
    compile_stages,
    handwritten_update,
)
from velora.models.heads import PolicyHead, make_head
from velora.models.optim import make_optimizer
from velora.models.persistence import load_agent, save_agent
from velora.models.sac import CRITIC_HISTORIES, EAGER_LOSSES, SoftActorCritic, compile_losses
from velora.nn import LiquidNCPNetwork, ObservationNormalizer
from velora.training.config import BUFFER_SIZE, TrainRecord
from velora.training.progress import TrainProgress
from velora.utils import active_parameters, set_device, set_seed, total_parameters
from velora.utils.checks import check_choice, check_int, check_positive
from velora.utils.torch import compile_function
from velora.utils.torch_private import check_cpp_compiler

if TYPE_CHECKING:
    from velora.training import TrainSummary

#: Pink noise's sequence length for envs without an episode step limit.
PINK_HORIZON = 1000


@torch.no_grad()
def policy_step(
    agent: "NeuroFlow",
    state: torch.Tensor,
    hidden: torch.Tensor | None,
    deterministic: bool,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One policy step: `NeuroFlow.act`, as a function `torch.compile` can take."""
    output, new_hidden = agent.actor(agent.normalize(state), hidden)
    return agent.head.act(output, deterministic, noise), new_hidden


class NeuroFlow(SoftActorCritic):
    """A SAC agent whose actor is a recurrent liquid NCP network.

    The action space picks the policy head: a tanh-squashed Gaussian for `Box`, a
    categorical policy for `Discrete`. Everything else (networks, twin critics with
    Polyak-averaged targets, learned temperature, replay buffer, the update) is shared.
    The losses are `SoftActorCritic`'s (`velora.models.sac`); override them to change
    the algorithm.

    Args:
        env_id: a registered Gymnasium id with a `Discrete` or `Box` action space.
        actor_neurons: decision neurons of the liquid actor.
        critic_neurons: decision neurons of each NCP critic.
        optim: a `torch.optim` optimiser class used for every network.
        buffer_size: replay buffer capacity (transitions).
        actor_lr, critic_lr, alpha_lr: learning rates.
        initial_alpha: starting entropy temperature; None for the head's default (1 for
            Box spaces, `heads.DISCRETE_INITIAL_ALPHA` for Discrete ones).
        log_std: clamp range of the Gaussian policy's log standard deviation.
        tau: Polyak coefficient of the target critics.
        gamma: discount factor.
        device: torch device; `cuda:0` when available if None.
        seed: seed for Python, NumPy, PyTorch, the wiring and the env; random if None.
        normalize_obs: scale observations by running mean and variance (an
            `ObservationNormalizer` inside the agent: updated while training, frozen
            when predicting, saved and exported with the agent).
        target_entropy: the policy entropy (nats) the temperature is tuned towards;
            None for the head's default (-action_dim for Box spaces; a share of the
            maximum, log |A|, for Discrete ones, which it must stay below).
        target_entropy_scale: for Discrete spaces, the target as a share in (0, 1) of
            log |A| instead (`heads.DISCRETE_TARGET_SCALE` by default).
        critic_history: what the critics see of the episode before the observation:
            "none"; "actor_hidden", the actor's hidden state fed in with it (detached);
            or "own", the summary of a liquid memory of their own (as large as the
            actor) run along each replayed window and trained by the critic loss
            through time (needs `sequence_length > 1`). For tasks where one
            observation is not enough.
        exploration_noise: the policy's draws while training: "white", fresh each
            step, or "pink", correlated over an episode (`velora.models.exploration`),
            for tasks whose reward only a sustained push finds. A categorical policy
            draws by inverse CDF at the noise's quantile, so its actions persist.
        n_steps: the critics' target sums the rewards of up to this many steps of
            an episode and bootstraps from the state after them (n-step returns), so
            a reward reaches earlier states in fewer updates. 1 is SAC's one-step
            target. With sequence replay every row of a window looks ahead so far.
    """

    def __init__(
        self,
        env_id: str,
        actor_neurons: int,
        critic_neurons: int,
        *,
        optim: type[torch.optim.Optimizer] = torch.optim.Adam,
        buffer_size: int = BUFFER_SIZE,
        actor_lr: float = 3e-4,
        critic_lr: float = 3e-4,
        alpha_lr: float = 3e-4,
        initial_alpha: float | None = None,
        log_std: Sequence[float] = (-5, 2),
        tau: float = 0.005,
        gamma: float = 0.99,
        device: str | torch.device | None = None,
        seed: int | None = None,
        normalize_obs: bool = False,
        target_entropy: float | None = None,
        target_entropy_scale: float | None = None,
        critic_history: str = "none",
        exploration_noise: str = "white",
        n_steps: int = 1,
    ) -> None:
        # Two neurons at least: one inter and one command neuron.
        check_int("actor_neurons", actor_neurons, minimum=2)
        check_int("critic_neurons", critic_neurons, minimum=2)
        check_int("buffer_size", buffer_size)
        check_int("n_steps", n_steps)
        for name, value in (
            ("actor_lr", actor_lr),
            ("critic_lr", critic_lr),
            ("alpha_lr", alpha_lr),
        ):
            check_positive(name, value)
        if initial_alpha is not None:
            check_positive("initial_alpha", initial_alpha)
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {tau}.")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}.")
        log_std = tuple(float(v) for v in log_std)
        if len(log_std) != 2 or log_std[0] >= log_std[1]:
            raise ValueError(f"log_std must be a (min, max) pair with min < max, got {log_std}.")
        if not (isinstance(optim, type) and issubclass(optim, torch.optim.Optimizer)):
            raise ValueError(f"optim must be a torch.optim.Optimizer class, got {optim!r}.")
        if not isinstance(normalize_obs, bool):
            raise ValueError(f"normalize_obs must be True or False, got {normalize_obs!r}.")
        check_choice("critic_history", critic_history, CRITIC_HISTORIES)
        check_choice("exploration_noise", exploration_noise, EXPLORATION_NOISES)

        self.env_id = env_id
        env = make_env(env_id)  # validates the id and both spaces before any work
        self._check_action_space(env.action_space)
        self.seed = set_seed(seed)
        self.device = set_device(device)
        self.env = add_core_env_wrappers(env, self.device)
        self.eval_env = add_core_env_wrappers(make_env(env_id), self.device)
        self.head: PolicyHead = make_head(env.action_space, log_std, self.device)
        self.head.target_entropy = _target_entropy(
            target_entropy, target_entropy_scale, env.action_space, self.head.target_entropy
        )
        initial_alpha = self.head.initial_alpha if initial_alpha is None else initial_alpha
        state_dim = env.observation_space.shape[0]
        self.pink_noise: PinkNoise | None = None
        if exploration_noise == "pink":
            horizon = (env.spec.max_episode_steps if env.spec else None) or PINK_HORIZON
            self.pink_noise = PinkNoise(self.head.action_dim, horizon, seed=self.seed)

        self.obs_norm: ObservationNormalizer | None = None
        if normalize_obs:
            self.obs_norm = ObservationNormalizer(state_dim).to(self.device)
        self.actor = LiquidNCPNetwork(
            state_dim, actor_neurons, self.head.actor_out, seed=self.seed
        ).to(self.device)
        self.critic_history = critic_history
        summary_size = {"none": 0, "actor_hidden": self.actor.hidden_size, "own": state_dim}
        self.critic = CriticEnsemble(
            self.head.critic_in(state_dim + summary_size[critic_history]),
            critic_neurons,
            self.head.critic_out,
            seed=self.seed,
        ).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_memory: LiquidNCPNetwork | None = None
        self.critic_memory_target: LiquidNCPNetwork | None = None
        if critic_history == "own":  # a summary as wide as an observation
            self.critic_memory = LiquidNCPNetwork(
                state_dim, actor_neurons, state_dim, seed=self.seed + 1
            ).to(self.device)
            self.critic_memory_target = copy.deepcopy(self.critic_memory).requires_grad_(False)
        self.log_alpha = torch.tensor(
            math.log(initial_alpha), device=self.device, requires_grad=True
        )
        self.actor_optim = make_optimizer(optim, self.actor.parameters(), actor_lr)
        self.critic_optim = make_optimizer(optim, self.critic_parameters(), critic_lr)
        self.entropy_optim = make_optimizer(optim, [self.log_alpha], alpha_lr)
        self.buffer = ReplayBuffer(
            buffer_size,
            state_dim,
            self.head.action_dim,
            self.actor.hidden_size,
            device=self.device,
        )
        self.tau = tau
        self.gamma = gamma
        self.n_steps = n_steps
        self.config = AgentConfig(
            agent=type(self).__name__,
            env_id=env_id,
            action_type=self.head.kind,
            actor_neurons=actor_neurons,
            critic_neurons=critic_neurons,
            optim=optim.__name__,
            buffer_size=buffer_size,
            actor_lr=actor_lr,
            critic_lr=critic_lr,
            alpha_lr=alpha_lr,
            initial_alpha=initial_alpha,
            log_std=log_std,
            tau=tau,
            gamma=gamma,
            seed=self.seed,
            device=str(self.device),
            actor_params=total_parameters(self.actor),
            critic_params=sum(p.numel() for p in self.critic_parameters()),
            normalize_obs=normalize_obs,
            target_entropy=target_entropy,
            target_entropy_scale=target_entropy_scale,
            critic_history=critic_history,
            exploration_noise=exploration_noise,
            n_steps=n_steps,
        )
        # What `update` and `act` run: eager until `compile()`.
        self._stages: SACGradients = EAGER
        self._loss_stages = EAGER_LOSSES
        self._act = policy_step
        # What survives across train() calls, and save/load.
        self.progress = TrainProgress()

    def _check_action_space(self, space: gym.Space) -> None:
        """Subclasses narrow the accepted action spaces here."""

    def state_modules(self) -> dict[str, torch.nn.Module]:
        """The modules whose state a save holds (besides `log_alpha`)."""
        modules = {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target}
        if self.critic_memory is not None and self.critic_memory_target is not None:
            modules["critic_memory"] = self.critic_memory
            modules["critic_memory_target"] = self.critic_memory_target
        if self.obs_norm is not None:
            modules["obs_norm"] = self.obs_norm
        return modules

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers whose state a save holds."""
        return {
            "actor_optim": self.actor_optim,
            "critic_optim": self.critic_optim,
            "entropy_optim": self.entropy_optim,
        }

    def save(
        self, dirpath: str | os.PathLike, *, buffer: bool = False, config: bool = False
    ) -> Path:
        """Save the agent into the new folder `dirpath`, atomically.

        Writes `metadata.json`, `model_state.safetensors`, `optim_state.safetensors` and,
        with `buffer=True`, `buffer_state.safetensors` (only the filled part). With
        `config=True`, also writes `model_config.json` into the parent folder, once.
        Raises `FileExistsError` if `dirpath` exists.
        """
        return save_agent(self, dirpath, buffer=buffer, config=config)

    @classmethod
    def load(
        cls,
        dirpath: str | os.PathLike,
        *,
        buffer: bool = False,
        device: str | torch.device | None = None,
    ) -> Self:
        """Load an agent saved with `save()`; it predicts exactly as the saved one did.

        With `buffer=True` the replay buffer is restored too (it must have been saved),
        so training continues where it stopped. `device` maps the weights (e.g. a
        GPU-trained save onto "cpu"); by default the saved device, or the CPU when
        that device is not available. Executes no code from the files.
        """
        return load_agent(cls, dirpath, buffer=buffer, device=device)

    @property
    def episodes_done(self) -> int:
        """Episodes trained, over every `train()` call (`progress.episodes`)."""
        return self.progress.episodes

    @property
    def steps_done(self) -> int:
        """Environment steps trained (`progress.steps`)."""
        return self.progress.steps

    @property
    def experiment_id(self) -> int | None:
        """The training run's row in the metrics database (`progress.experiment_id`)."""
        return self.progress.experiment_id

    @property
    def entropy(self) -> torch.Tensor:
        """The entropy temperature alpha (a detached scalar tensor)."""
        return self.log_alpha.detach().exp()

    def _trained_networks(self) -> list[torch.nn.Module]:
        """The networks with parameters of their own (targets are copies)."""
        memory = [] if self.critic_memory is None else [self.critic_memory]
        return [self.actor, self.critic, *memory]

    @property
    def total_params(self) -> int:
        return sum(total_parameters(network) for network in self._trained_networks())

    @property
    def active_params(self) -> int:
        return sum(active_parameters(network) for network in self._trained_networks())

    def normalize(self, states: torch.Tensor) -> torch.Tensor:
        """Observations as the networks see them (unchanged without `normalize_obs`)."""
        return states if self.obs_norm is None else self.obs_norm(states)

    def observe(self, states: torch.Tensor) -> None:
        """Count observations met while training into the normalisation statistics."""
        if self.obs_norm is not None:
            self.obs_norm.update(states)

    def act(
        self, state: torch.Tensor, hidden: torch.Tensor | None, *, deterministic: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy-space actions `(batch, action_dim)` and the new hidden state for `state`."""
        if self.pink_noise is None or deterministic:
            return self._act(self, state, hidden, deterministic)
        noise = self.pink_noise.sample(state.shape[0], self.device)
        return self._act(self, state, hidden, deterministic, noise)

    def initial_hidden(self, batch_size: int = 1) -> torch.Tensor:
        """The actor's hidden state at the start of an episode (zeros)."""
        return self.actor.initial_hidden(batch_size)

    @torch.no_grad()
    def random_act(
        self, state: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Uniformly random policy-space actions (warm-up); the actor still runs, so
        the hidden states stored with them are real."""
        _, new_hidden = self.actor(self.normalize(state), hidden)
        return self.head.random_action(state.shape[0], self.device), new_hidden

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        """Policy-space actions as the env's `step` takes them."""
        return self.head.to_env(action)

    def record_training(self, record: TrainRecord) -> str:
        """Note a `train()` call's settings in `config.train`; the config as JSON.
        Refuses settings this agent cannot train with, before any step."""
        self._check_replay(record.sequence_length)
        self.config = self.config.model_copy(update={"train": record})
        return self.config.model_dump_json()

    def compile(self, **inductor_options: Any) -> Self:
        """Run the update and acting through `torch.compile`; returns the agent.

        Opt-in, like `nn.Module.compile`. Networks this small spend most of their time
        on the fixed cost of each tensor op, which compiled code removes (the README's
        throughput table has the figures). The price is a compile the first time each
        stage runs (PyTorch caches the result on disk for later runs), so it pays off
        on long runs, not short ones. An overridden loss is compiled too. Random draws
        come from the eager generator, so a seeded run draws the same noise compiled or
        not. `inductor_options` go to `torch.compile(options=...)`; on a CPU they
        default to `cpp_wrapper=True`. Saves do not record it: a loaded agent runs
        eager until compiled again.
        """
        if self.device.type == "cpu":
            check_cpp_compiler()  # now, not at the first update after the warm-up
            # Kernels called from C++ rather than Python: less overhead per call.
            inductor_options = {"cpp_wrapper": True, **inductor_options}
        self._stages = compile_stages(**inductor_options)
        self._loss_stages = compile_losses(**inductor_options)
        # Acting sees 1 row, n_envs rows and whatever `predict` is given: the batch
        # dimension turns dynamic after its first change instead of compiling per size.
        self._act = compile_function(policy_step, dynamic=None, **inductor_options)
        return self

    def predict(
        self,
        state: torch.Tensor | np.ndarray,
        hidden: torch.Tensor | None = None,
        *,
        train_mode: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Choose an action for `state` (`(obs_dim,)` or `(batch, obs_dim)`).

        Returns `(action, hidden)`; pass `hidden` back in on the next step of the same
        episode. The action goes straight into `eval_env.step`. Deterministic unless
        `train_mode=True`.
        """
        obs_dim = self.actor.wiring.in_features
        state = torch.as_tensor(state, dtype=torch.float32, device=self.device)
        if state.dim() not in (1, 2) or state.shape[-1] != obs_dim:
            raise ValueError(
                f"state must have shape ({obs_dim},) or (batch, {obs_dim}), "
                f"got {tuple(state.shape)}."
            )
        unbatched = state.dim() == 1
        states = state.unsqueeze(0) if unbatched else state
        if hidden is not None:
            hidden = hidden.to(self.device)
            hidden = hidden.unsqueeze(0) if hidden.dim() == 1 else hidden
            if hidden.shape != (states.shape[0], self.actor.hidden_size):
                raise ValueError(
                    f"hidden must have shape ({states.shape[0]}, {self.actor.hidden_size}), "
                    f"got {tuple(hidden.shape)}."
                )
        action, hidden = self.act(states, hidden, deterministic=not train_mode)
        action = self.head.to_env(action)
        if unbatched:
            return action[0], hidden[0]
        return action, hidden

    def export(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the deterministic policy to the ONNX file `path` (the `export` extra).

        Inputs `obs` and `hidden`, outputs `action` (in the env's space) and
        `next_hidden`; the observation normalisation is inside. Checked in onnxruntime
        before it is written; see `velora.export.export_onnx`.
        """
        from velora.export import export_onnx  # the export layer sits above the agent

        return export_onnx(self, path, overwrite=overwrite)

    #: Compute the default losses' gradients by hand (`velora.models.handwritten_update`)
    #: instead of through autograd; set False to always run `autograd_update`. Either
    #: way, an overridden loss or a non-default cell mode goes through autograd.
    hand_written_gradients: bool = True

    def update(
        self, batch_size: int, *, sequence_length: int = 1, burn_in: int = 0
    ) -> torch.Tensor:
        """One SAC gradient step on a sampled batch.

        With `sequence_length > 1` the batch is of windows of that many consecutive
        transitions, and the actor trains through time over each after `burn_in` steps
        that only warm its state up (`unroll`; always through autograd). Returns the
        detached losses `[actor, critic, entropy]` as one tensor on the device, so
        callers can accumulate them without syncing. With `n_steps > 1` single
        transitions come as n-step ones (`ReplayBuffer.sample_n_step`), and windows
        reach further ahead for the same returns at each of their rows (`look_ahead`).
        """
        self._check_replay(sequence_length)
        if sequence_length > 1:
            # n-step returns look n_steps - 1 transitions past a window's last trained row.
            windows = self.buffer.sample_windows(batch_size, sequence_length + self.n_steps - 1)
            windows = windows._replace(batch=self._normalized(windows.batch))
            rows, output, next_output = self._loss_stages.unroll(self, windows, burn_in)
            outputs, memory = (output, next_output), None
            if self.critic_memory is not None:
                memory = self._loss_stages.remember(self, windows, burn_in)
            if self.n_steps > 1:
                rows, outputs, memory = self.look_ahead(rows, outputs, memory, batch_size)
            return self.autograd_update(rows, outputs, memory)
        if self.n_steps > 1:
            batch = self.buffer.sample_n_step(batch_size, self.n_steps, self.gamma)
        else:
            batch = self.buffer.sample(batch_size)
        batch = self._normalized(batch)
        if self.uses_hand_written_gradients():
            return handwritten_update(self, batch, self._stages)
        return self.autograd_update(batch)

    def _check_replay(self, sequence_length: int) -> None:
        """Refuses a replay this agent cannot train with: the critics' own memory needs
        windows, and n-step windows must fit the buffer with their look-ahead."""
        if self.critic_history == "own" and sequence_length == 1:
            raise ValueError(_OWN_MEMORY_NEEDS_WINDOWS)
        reach = sequence_length + self.n_steps - 1
        if sequence_length > 1 and reach > self.buffer.capacity:
            raise ValueError(
                f"windows of sequence_length ({sequence_length}) look n_steps - 1 "
                f"({self.n_steps - 1}) transitions further for n-step returns: {reach} do "
                f"not fit the buffer ({self.buffer.capacity}); shorten them or enlarge "
                "buffer_size."
            )

    def _normalized(self, batch: Batch) -> Batch:
        """A replayed batch as the networks see it: the buffer keeps raw observations."""
        if self.obs_norm is None:
            return batch
        with torch.no_grad():
            return batch._replace(
                states=self.obs_norm(batch.states), next_states=self.obs_norm(batch.next_states)
            )

    def uses_hand_written_gradients(self) -> bool:
        """Whether `update` takes the hand-written path (same results, fewer ops)."""
        return (
            self.hand_written_gradients
            and self.actor.command.mode == "default"
            and self.critic_history == "none"
            and self.losses_are_default()
        )

    def train(
        self, batch_size: int, *, callbacks: list | None = None, **settings: Any
    ) -> "TrainSummary":
        """Train for up to `n_episodes` episodes; returns a `TrainSummary`.

        `settings` are the fields of `velora.training.TrainConfig`, with their defaults
        and meaning there: `n_episodes`, `log_freq`, `display_count`, `window_size`,
        `max_steps`, `warmup_steps`, `updates_per_step`, `n_envs`, `db_path`. Acts at
        random for the first `warmup_steps` steps (default `2 * batch_size`), then takes
        `updates_per_step` gradient steps after every environment step.

        `n_envs > 1` steps that many copies of the env together (a Gymnasium
        `SyncVectorEnv`). The `updates_per_step` gradient steps then follow every
        *vector* step of `n_envs` transitions, so each transition gets
        `updates_per_step / n_envs` updates. `n_episodes` counts finished episodes over
        all sub-envs; episodes still running when it is reached are dropped.
        """
        # The loop sits above the agent in the layers, so it is imported on use.
        from velora.training import TrainConfig, train_agent

        config = TrainConfig(batch_size=batch_size, **settings)
        return train_agent(self, config, callbacks=callbacks)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(env_id={self.env_id!r}, actor_neurons="
            f"{self.config.actor_neurons}, critic_neurons={self.config.critic_neurons}, "
            f"action_type={self.head.kind!r}, device={str(self.device)!r}, seed={self.seed})"
        )


_OWN_MEMORY_NEEDS_WINDOWS = (
    'critic_history="own" trains the critics\' memory through time over replayed windows; '
    "train with sequence_length > 1 (e.g. sequence_length=8, burn_in=2)."
)


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _target_entropy(
    value: float | None, scale: float | None, space: gym.Space, default: float
) -> float:
    """The target entropy from `target_entropy` or `target_entropy_scale` (at most one),
    else the head's `default`."""
    if value is not None and scale is not None:
        raise ValueError(
            "Give target_entropy (nats) or target_entropy_scale (a share of the maximum "
            "entropy), not both."
        )
    if value is not None:
        return _checked_target_entropy(value, space)
    if scale is None:
        return default
    if not isinstance(space, gym.spaces.Discrete):
        raise ValueError(
            "target_entropy_scale is a share of log |A|, the maximum entropy of a Discrete "
            f"space; for {type(space).__name__} actions give target_entropy in nats."
        )
    if not _is_number(scale) or not 0.0 < scale < 1.0:
        raise ValueError(
            f"target_entropy_scale must be a number in (0, 1), the share of log({space.n}) "
            f"the policy's entropy is tuned towards; got {scale!r}."
        )
    return float(scale) * math.log(space.n)


def _checked_target_entropy(value: float, space: gym.Space) -> float:
    """A finite number, and for a Discrete space one below its maximum entropy log |A|
    (a target the policy can never reach sends the temperature off to infinity)."""
    if not _is_number(value):
        raise ValueError(f"target_entropy must be a finite number of nats, got {value!r}.")
    if isinstance(space, gym.spaces.Discrete):
        maximum = math.log(space.n)
        if value >= maximum:
            raise ValueError(
                f"target_entropy ({value}) must be below the maximum entropy of "
                f"{space}, log({space.n}) = {maximum:.4f}; e.g. 0.5 * math.log({space.n})."
            )
    return float(value)


class NeuroFlowCT(NeuroFlow):
    """`NeuroFlow` restricted to continuous (`Box`) action spaces, for older code."""

    def _check_action_space(self, space: gym.Space) -> None:
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(
                f"NeuroFlowCT needs a Box (continuous) action space, got "
                f"{type(space).__name__}; use NeuroFlow for discrete envs."
            )
