"""What the observation and action components of common Gymnasium tasks mean, from
Gymnasium's documentation. Gymnasium's spaces carry no names; with them a circuit's
sensory neurons read `pole angle` instead of `obs 2`, and "hide the velocities" means
something."""

OBSERVATION_NAMES: dict[str, tuple[str, ...]] = {
    "CartPole": ("cart position", "cart velocity", "pole angle", "pole angular velocity"),
    "Pendulum": ("cos θ", "sin θ", "angular velocity"),
    "MountainCar": ("position", "velocity"),
    "MountainCarContinuous": ("position", "velocity"),
    "Acrobot": ("cos θ1", "sin θ1", "cos θ2", "sin θ2", "angular velocity 1", "angular velocity 2"),
    "LunarLander": (
        "x", "y", "x velocity", "y velocity", "angle", "angular velocity",
        "left leg contact", "right leg contact",
    ),
    "LunarLanderContinuous": (
        "x", "y", "x velocity", "y velocity", "angle", "angular velocity",
        "left leg contact", "right leg contact",
    ),
    "InvertedPendulum": ("cart position", "pole angle", "cart velocity", "pole angular velocity"),
    "HalfCheetah": (
        "front tip z", "front tip angle", "back thigh angle", "back shin angle",
        "back foot angle", "front thigh angle", "front shin angle", "front foot angle",
        "x velocity", "z velocity", "front tip angular velocity",
        "back thigh angular velocity", "back shin angular velocity",
        "back foot angular velocity", "front thigh angular velocity",
        "front shin angular velocity", "front foot angular velocity",
    ),
    "Hopper": (
        "torso z", "torso angle", "thigh angle", "leg angle", "foot angle", "x velocity",
        "z velocity", "torso angular velocity", "thigh angular velocity",
        "leg angular velocity", "foot angular velocity",
    ),
}  # fmt: skip

ACTION_NAMES: dict[str, tuple[str, ...]] = {
    "CartPole": ("push left", "push right"),
    "Pendulum": ("torque",),
    "MountainCar": ("accelerate left", "no acceleration", "accelerate right"),
    "MountainCarContinuous": ("force",),
    "Acrobot": ("torque -1", "torque 0", "torque +1"),
    "LunarLander": ("do nothing", "fire left engine", "fire main engine", "fire right engine"),
    "LunarLanderContinuous": ("main engine", "lateral engines"),
    "InvertedPendulum": ("cart force",),
    "HalfCheetah": (
        "back thigh torque",
        "back shin torque",
        "back foot torque",
        "front thigh torque",
        "front shin torque",
        "front foot torque",
    ),
    "Hopper": ("thigh torque", "leg torque", "foot torque"),
}


def names_for(
    env_name: str, kind: str, size: int, given: tuple[str, ...] | list[str] | None
) -> tuple[str, ...]:
    """`given` (checked), else the table's names for `env_name`, else `obs 0`, `obs 1`..."""
    table = OBSERVATION_NAMES if kind == "obs" else ACTION_NAMES
    names = tuple(given) if given is not None else table.get(env_name)
    if given is not None and len(names) != size:
        raise ValueError(f"{kind}_names has {len(names)} names for {size} components.")
    if names is None or len(names) != size:
        return tuple(f"{kind} {i}" for i in range(size))
    return names


def velocity_components(env_name: str) -> tuple[int, ...]:
    """The observation components of `env_name` that are velocities (empty if unknown)."""
    return tuple(
        i for i, name in enumerate(OBSERVATION_NAMES.get(env_name, ())) if "velocity" in name
    )
