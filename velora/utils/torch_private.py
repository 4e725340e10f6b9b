"""The private PyTorch APIs Velora calls, in one place, each with a public fallback.

On these small networks `Optimizer.step()` spends more time in Python than in its
arithmetic, so Adam/AdamW are stepped by calling the fused kernel that `step()` itself
ends in (`torch._fused_adam_`), on the optimiser's own state: the same numbers and the
same saved state. Before the first such call, one step on throwaway tensors is checked
against `step()`; on a torch where a name is missing, a signature changed or the
numbers differ, every step goes through `step()` instead. The Polyak update uses
`torch._foreach_lerp_` where it exists.

`check_cpp_compiler` asks inductor for its C++ compiler, so `compile()` fails up front
with a useful message; on a torch without that function the check is skipped and
`torch.compile` reports a missing compiler itself, later.
"""

from typing import Any

import torch

try:  # step hooks registered for every optimiser: `step()` must run them
    from torch.optim.optimizer import _global_optimizer_post_hooks as _GLOBAL_POST_HOOKS
    from torch.optim.optimizer import _global_optimizer_pre_hooks as _GLOBAL_PRE_HOOKS
except ImportError:
    _GLOBAL_PRE_HOOKS = _GLOBAL_POST_HOOKS = None

#: the kernels `step()` of fused Adam and AdamW ends in.
ADAM_KERNEL, ADAMW_KERNEL = "_fused_adam_", "_fused_adamw_"
_PLAIN_OPTIONS = {"amsgrad": False, "maximize": False, "capturable": False, "differentiable": False}
_kernel_agrees: bool | None = None  # the self-check's verdict, once known


def fused_adam_step(optimizer: torch.optim.Optimizer, grads: list[torch.Tensor]) -> bool:
    """Step fused Adam/AdamW with `grads` (laid out like their parameters) by calling its
    kernel directly; False, with nothing done, wherever `optimizer.step()` must run."""
    state = _fused_adam_state(optimizer)
    if state is None or not _kernel_recognised():
        return False
    _call_kernel(optimizer, grads, *state)
    return True


def lerp_all_(targets: list[torch.Tensor], sources: list[torch.Tensor], weight: float) -> None:
    """`target.lerp_(source, weight)` for every pair, as one foreach call where torch has it."""
    lerp = getattr(torch, "_foreach_lerp_", None)
    if lerp is not None:
        lerp(targets, sources, weight)
        return
    for target, source in zip(targets, sources, strict=True):
        target.lerp_(source, weight)


def _call_kernel(
    optimizer: torch.optim.Optimizer,
    grads: list[torch.Tensor],
    params: list[torch.Tensor],
    steps: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
) -> None:
    group = optimizer.param_groups[0]
    beta1, beta2 = group["betas"]
    base = steps[0]._base  # every step count at once: they are views of one tensor
    base.add_(_one_like(base))
    # Older torch has no such option: AdamW alone decouples its weight decay there.
    decoupled = group.get("decoupled_weight_decay", type(optimizer) is torch.optim.AdamW)
    kernel = getattr(torch, ADAMW_KERNEL if decoupled else ADAM_KERNEL)
    kernel(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        [],
        steps,
        amsgrad=False,
        lr=group["lr"],
        beta1=beta1,
        beta2=beta2,
        weight_decay=group["weight_decay"],
        eps=group["eps"],
        maximize=False,
    )


_ONES: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}


def _one_like(tensor: torch.Tensor) -> torch.Tensor:
    """A cached 0-dim 1: a Python 1 would be wrapped and cast on every call."""
    key = (tensor.dtype, tensor.device)
    if key not in _ONES:
        _ONES[key] = torch.ones((), dtype=tensor.dtype, device=tensor.device)
    return _ONES[key]


def _fused_adam_state(optimizer: torch.optim.Optimizer) -> tuple[list[torch.Tensor], ...] | None:
    """The lists the fused kernel updates, or None where `step()` must run instead.

    None for other optimisers or options, an instance-level `step` (an LR scheduler or a
    test wraps it that way), step hooks, and before the first step (`step()` creates the
    state).
    """
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW):
        return None
    if _GLOBAL_PRE_HOOKS is None or _GLOBAL_PRE_HOOKS or _GLOBAL_POST_HOOKS:
        return None
    if "step" in vars(optimizer) or len(optimizer.param_groups) != 1:
        return None
    if getattr(optimizer, "_optimizer_step_pre_hooks", True) or getattr(
        optimizer, "_optimizer_step_post_hooks", True
    ):
        return None
    group = optimizer.param_groups[0]
    if not group.get("fused") or any(group.get(k, v) != v for k, v in _PLAIN_OPTIONS.items()):
        return None
    numbers = (group["lr"], group["eps"], group["weight_decay"], *group["betas"])
    if any(isinstance(x, torch.Tensor) for x in numbers):  # tensor lr/betas: step() handles
        return None
    params = group["params"]
    states = [optimizer.state.get(p) for p in params]
    if not all(states):
        return None
    steps = [s["step"] for s in states]
    base = steps[0]._base
    if base is None or base.shape != (len(steps),) or any(s._base is not base for s in steps):
        steps = _share_step_counts(states)
    return params, steps, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]


def _share_step_counts(states: list[dict[str, Any]]) -> list[torch.Tensor]:
    """Make the parameters' step counts views of one tensor, so one op counts them all.

    They stay 0-dim tensors with the same values in the state dict: `step()` and the
    fused kernel read them as before, and a save copies them out one by one. (Done
    again after a load, which brings separate tensors.)
    """
    base = torch.stack([s["step"] for s in states])
    for i, state in enumerate(states):
        state["step"] = base[i]
    return [s["step"] for s in states]


def _kernel_recognised() -> bool:
    """Whether calling the kernel directly matches `step()` on this torch (checked once)."""
    global _kernel_agrees
    if _kernel_agrees is None:
        try:
            _kernel_agrees = _self_check()
        except Exception:  # a renamed kernel, a changed signature: use step()
            _kernel_agrees = False
    return _kernel_agrees


def _self_check() -> bool:
    gen = torch.Generator().manual_seed(0)
    pairs = []
    for _ in range(2):
        param = torch.nn.Parameter(torch.randn(3, 4, generator=gen))
        pairs.append((param, torch.nn.Parameter(param.detach().clone())))
    grads = [torch.randn(3, 4, generator=gen) for _ in range(3)]
    ours = torch.optim.Adam([a for a, _ in pairs], lr=0.1, fused=True)
    theirs = torch.optim.Adam([b for _, b in pairs], lr=0.1, fused=True)
    for i, grad in enumerate(grads):
        for optimizer in (ours, theirs):
            for param in optimizer.param_groups[0]["params"]:
                param.grad = grad
        theirs.step()
        if i == 0:  # the first step creates the state
            ours.step()
            continue
        state = _fused_adam_state(ours)
        if state is None:
            return False
        _call_kernel(ours, [grad, grad], *state)
    return all(torch.equal(a, b) for a, b in pairs)


def check_cpp_compiler() -> None:
    """`torch.compile` builds C++ kernels on a CPU: say so clearly if it cannot."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:
        return
    try:
        get_cpp_compiler()
    except Exception as exc:  # inductor's own error names the search, not the fix
        raise RuntimeError(
            "compile() on a CPU needs a C++ compiler (g++ or clang++ on the PATH, or "
            "the CXX environment variable), and none was found; install one, or train "
            f"without compile(). ({exc})"
        ) from exc
