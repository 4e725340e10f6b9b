"""velora.nn: wiring masks, sparse layers, the CfC cell, the NCP networks and torch utils."""

import copy

import pytest
import torch
from torch import nn

from velora.models.critic import CriticEnsemble
from velora.nn import LiquidCell, LiquidNCPNetwork, NCPNetwork, SparseLinear, Wiring
from velora.nn.activation import mish
from velora.utils import active_parameters, soft_update, total_parameters

MASK_NAMES = ("sensory_to_inter", "inter_to_command", "command_to_command", "command_to_motor")


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors gain nothing from intra-op threads; on a busy machine they thrash."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def masks_of(wiring: Wiring) -> list[torch.Tensor]:
    return [getattr(wiring.masks, name) for name in MASK_NAMES]


def sparse_layers(module: nn.Module) -> list[SparseLinear]:
    return [m for m in module.modules() if isinstance(m, SparseLinear)]


def fixed_mask(rows: int, cols: int) -> torch.Tensor:
    """A deterministic 0/1 mask with zeros and ones, every row and column connected."""
    mask = torch.zeros(rows, cols)
    for r in range(rows):
        for c in range(cols):
            if (r + 2 * c) % 3 != 1:
                mask[r, c] = 1.0
    assert mask.any(dim=1).all() and mask.any(dim=0).all() and (mask == 0).any()
    return mask


# --------------------------------------------------------------------------- sparse training


def _train_linear():
    torch.manual_seed(0)
    layer = SparseLinear(fixed_mask(4, 6))
    x, y = torch.randn(32, 6), torch.randn(32, 4)
    return layer, lambda: nn.functional.mse_loss(layer(x), y)


def _train_cell():
    torch.manual_seed(0)
    cell = LiquidCell(4, 3, fixed_mask(3, 7))
    xs, h0, y = torch.randn(2, 16, 4), torch.randn(16, 3), torch.randn(16, 3)

    def loss():
        out, h = cell(xs[0], h0)
        out, _ = cell(xs[1], h)
        return nn.functional.mse_loss(out, y)

    return cell, loss


def _train_liquid():
    torch.manual_seed(0)
    net = LiquidNCPNetwork(5, 12, 2, sparsity_level=0.6, seed=3)
    xs, h0, y = torch.randn(2, 16, 5), torch.randn(16, net.hidden_size), torch.randn(16, 2)

    def loss():
        _, h = net(xs[0], h0)
        out, _ = net(xs[1], h)
        return nn.functional.mse_loss(out, y)

    return net, loss


def _train_ncp():
    torch.manual_seed(0)
    net = NCPNetwork(5, 12, 2, sparsity_level=0.6, seed=3)
    x, y = torch.randn(16, 5), torch.randn(16, 2)
    return net, lambda: nn.functional.mse_loss(net(x), y)


@pytest.mark.parametrize(
    "opt_cls",
    [
        lambda p: torch.optim.Adam(p, lr=1e-2),
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    ],
    ids=["Adam", "AdamW"],
)
@pytest.mark.parametrize(
    "build", [_train_linear, _train_cell, _train_liquid, _train_ncp], ids=lambda f: f.__name__
)
def test_masked_weights_stay_exactly_zero_through_training(build, opt_cls):
    module, loss_fn = build()
    layers = sparse_layers(module)
    assert layers
    for layer in layers:
        assert (layer.mask == 0).any(), "test needs a mask with holes"
        assert (layer.weight[layer.mask == 0] == 0.0).all()
    before = [layer.weight.detach().clone() for layer in layers]
    first_loss = loss_fn().item()

    optimiser = opt_cls(module.parameters())
    for _ in range(200):
        optimiser.zero_grad()
        loss_fn().backward()
        optimiser.step()

    assert loss_fn().item() < first_loss
    for layer, old in zip(layers, before, strict=True):
        masked = layer.mask == 0
        assert (layer.weight[masked] == 0.0).all(), "a masked weight moved off exactly zero"
        assert (layer.weight[~masked] != old[~masked]).all(), "an active weight never trained"


@pytest.mark.parametrize(
    "module",
    [
        SparseLinear(fixed_mask(3, 5)),
        LiquidCell(4, 3, fixed_mask(3, 7)),
        LiquidNCPNetwork(5, 10, 2),
        NCPNetwork(5, 10, 2),
    ],
    ids=["SparseLinear", "LiquidCell", "LiquidNCPNetwork", "NCPNetwork"],
)
def test_mask_is_a_buffer_not_a_parameter(module):
    state = module.state_dict()
    param_names = [name for name, _ in module.named_parameters()]
    param_ids = {id(p) for p in module.parameters()}
    layers = sparse_layers(module)
    assert layers
    for layer in layers:
        assert id(layer.mask) not in param_ids
        assert not layer.mask.requires_grad
    assert not any(name.endswith("mask") for name in param_names)
    mask_keys = [key for key in state if key.endswith("mask")]
    assert len(mask_keys) == len(layers)
    buffer_names = {name for name, _ in module.named_buffers()}
    assert set(mask_keys) <= buffer_names


def test_sparse_linear_matches_dense_linear_with_masked_weight():
    torch.manual_seed(1)
    mask = fixed_mask(4, 6)
    layer = SparseLinear(mask)
    x = torch.randn(8, 6)
    with torch.no_grad():
        layer.weight.fill_(1.0)  # even a weight written into a masked slot is ignored
    expected = x @ mask.T + layer.bias
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_sparse_linear_rejects_non_2d_mask():
    with pytest.raises(ValueError, match="2-D"):
        SparseLinear(torch.ones(3))


# --------------------------------------------------------------------------- wiring


def test_wiring_same_seed_gives_identical_masks():
    a = Wiring(6, 20, 3, sparsity_level=0.5, seed=42)
    b = Wiring(6, 20, 3, sparsity_level=0.5, seed=42)
    for ma, mb in zip(masks_of(a), masks_of(b), strict=True):
        assert torch.equal(ma, mb)


def test_wiring_rebuilds_from_config():
    a = Wiring(6, 20, 3, sparsity_level=0.3, seed=7)
    b = Wiring(**a.config())
    for ma, mb in zip(masks_of(a), masks_of(b), strict=True):
        assert torch.equal(ma, mb)


def test_wiring_different_seed_gives_different_masks():
    a = Wiring(6, 20, 3, sparsity_level=0.5, seed=0)
    for seed in (1, 2, 3):
        b = Wiring(6, 20, 3, sparsity_level=0.5, seed=seed)
        assert any(not torch.equal(ma, mb) for ma, mb in zip(masks_of(a), masks_of(b), strict=True))


@pytest.mark.parametrize("sparsity", [0.1, 0.3, 0.5, 0.7, 0.9])
@pytest.mark.parametrize("sizes", [(1, 2, 1), (1, 3, 1), (2, 5, 1), (3, 8, 4), (10, 30, 6)])
def test_wiring_every_neuron_keeps_a_connection(sizes, sparsity):
    in_f, n, out_f = sizes
    for seed in range(25):
        wiring = Wiring(in_f, n, out_f, sparsity_level=sparsity, seed=seed)
        ni, nc = wiring.n_inter, wiring.n_command
        expected_shapes = [(ni, in_f), (nc, ni), (nc, nc), (out_f, nc)]
        for mask, shape in zip(masks_of(wiring), expected_shapes, strict=True):
            assert tuple(mask.shape) == shape
            assert mask.dtype == torch.float32
            assert ((mask == 0) | (mask == 1)).all()
            assert (mask.sum(dim=1) >= 1).all(), f"row without input, seed={seed}"
            assert (mask.sum(dim=0) >= 1).all(), f"column without output, seed={seed}"


@pytest.mark.parametrize("n", list(range(2, 41)) + [64, 100, 257])
def test_wiring_neuron_split(n):
    wiring = Wiring(3, n, 2)
    assert wiring.n_command == max(int(0.4 * n), 1)
    assert wiring.n_inter == n - wiring.n_command
    assert wiring.n_inter >= 1
    assert wiring.masks.sensory_to_inter.shape[0] == wiring.n_inter
    assert wiring.masks.command_to_motor.shape[1] == wiring.n_command


@pytest.mark.parametrize("sparsity", [0.1, 0.25, 0.5, 0.75, 0.9])
def test_wiring_sparsity_roughly_matches_level(sparsity):
    wiring = Wiring(200, 500, 100, sparsity_level=sparsity, seed=5)
    zeros = sum(int((m == 0).sum()) for m in masks_of(wiring))
    total = sum(m.numel() for m in masks_of(wiring))
    assert zeros / total == pytest.approx(sparsity, abs=0.02)


def test_wiring_accepts_boundary_sparsity_levels():
    Wiring(3, 5, 2, sparsity_level=0.1)
    Wiring(3, 5, 2, sparsity_level=0.9)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"sparsity_level": 0.05}, "sparsity_level"),
        ({"sparsity_level": 0.95}, "sparsity_level"),
        ({"sparsity_level": 0.0}, "sparsity_level"),
        ({"sparsity_level": 1.0}, "sparsity_level"),
        ({"sparsity_level": -0.5}, "sparsity_level"),
        ({"in_features": 0}, "in_features"),
        ({"in_features": -3}, "in_features"),
        ({"n_neurons": 0}, "n_neurons"),
        ({"n_neurons": -1}, "n_neurons"),
        ({"n_neurons": 1}, "n_neurons"),
        ({"out_features": 0}, "out_features"),
        ({"out_features": -2}, "out_features"),
    ],
)
def test_wiring_rejects_bad_arguments(kwargs, name):
    args = {"in_features": 3, "n_neurons": 8, "out_features": 2} | kwargs
    sparsity = args.pop("sparsity_level", 0.5)
    with pytest.raises(ValueError, match=name):
        Wiring(
            args["in_features"], args["n_neurons"], args["out_features"], sparsity_level=sparsity
        )


# --------------------------------------------------------------------------- liquid cell


@pytest.fixture
def cell() -> LiquidCell:
    torch.manual_seed(0)
    return LiquidCell(4, 3, fixed_mask(3, 7))


def test_cell_hidden_state_changes_the_step(cell):
    x = torch.randn(5, 4)
    out_a, h_a = cell(x, torch.zeros(5, 3))
    out_b, h_b = cell(x, torch.randn(5, 3))
    assert not torch.allclose(out_a, out_b)
    assert not torch.allclose(h_a, h_b)


def test_cell_output_depends_on_earlier_inputs(cell):
    torch.manual_seed(1)
    xs = torch.randn(4, 2, 4)
    changed = xs.clone()
    changed[0] += 1.0

    def run(seq):
        h = torch.zeros(2, 3)
        outs = []
        for x in seq:
            out, h = cell(x, h)
            outs.append(out)
        return outs

    base, other = run(xs), run(changed)
    for t in range(1, 4):
        # the inputs at steps 1..3 are identical, only the memory of x_0 differs
        assert not torch.allclose(base[t], other[t]), f"step {t} forgot x_0"


@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
def test_cell_modes_shapes_and_time_dependence(mode):
    torch.manual_seed(2)
    cell = LiquidCell(4, 3, fixed_mask(3, 7), mode=mode)
    x, h = torch.randn(6, 4), torch.randn(6, 3)
    out, new_h = cell(x, h)
    assert out.shape == (6, 3) and new_h.shape == (6, 3)
    assert torch.isfinite(out).all() and torch.isfinite(new_h).all()
    out_2, new_h_2 = cell(x, h, ts=2.5)
    assert not torch.allclose(new_h, new_h_2)
    assert not torch.allclose(out, out_2)


def test_cell_ts_changes_default_mode_and_broadcasts_per_sample(cell):
    x, h = torch.randn(5, 4), torch.randn(5, 3)
    out_1, h_1 = cell(x, h)  # ts defaults to 1.0
    out_1b, h_1b = cell(x, h, ts=1.0)
    assert torch.equal(out_1, out_1b) and torch.equal(h_1, h_1b)
    out_3, h_3 = cell(x, h, ts=3.0)
    assert not torch.allclose(h_1, h_3)
    assert not torch.allclose(out_1, out_3)
    out_t, h_t = cell(x, h, ts=torch.full((5, 1), 3.0))
    assert torch.allclose(out_t, out_3) and torch.allclose(h_t, h_3)


@pytest.mark.parametrize("mode, bound", [("default", 1.0), ("no_gate", 2.0)])
def test_cell_gated_hidden_is_bounded_by_tanh_heads(mode, bound):
    # default: a convex mix of two tanh heads; no_gate: tanh + gate * tanh
    torch.manual_seed(3)
    cell = LiquidCell(4, 3, fixed_mask(3, 7), mode=mode)
    _, h = cell(100.0 * torch.randn(64, 4), 100.0 * torch.randn(64, 3))
    assert (h.abs() <= bound).all()


def test_cell_bad_mode_lists_allowed_modes():
    with pytest.raises(ValueError) as info:
        LiquidCell(4, 3, mode="fancy")
    message = str(info.value)
    assert "fancy" in message
    for mode in ("default", "no_gate", "pure"):
        assert mode in message


@pytest.mark.parametrize("shape", [(3, 4), (4, 7), (3, 8), (21,)])
def test_cell_wrong_mask_shape(shape):
    with pytest.raises(ValueError, match=r"\(3, 7\)"):
        LiquidCell(4, 3, torch.ones(shape))


def test_cell_default_mask_is_dense():
    cell = LiquidCell(4, 3)
    assert bool((cell.heads.mask == 1).all())


def test_cell_wrong_input_shape(cell):
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        cell(torch.randn(2, 5), torch.zeros(2, 3))


def test_cell_wrong_hidden_shape(cell):
    with pytest.raises(ValueError, match=r"\(batch, 3\)"):
        cell(torch.randn(2, 4), torch.zeros(2, 4))


# --------------------------------------------------------------------------- NCP networks


@pytest.fixture
def liquid() -> LiquidNCPNetwork:
    torch.manual_seed(0)
    return LiquidNCPNetwork(5, 12, 3, sparsity_level=0.5, seed=1)


def test_liquid_network_returns_output_and_hidden(liquid):
    assert liquid.hidden_size == max(int(0.4 * 12), 1)
    result = liquid(torch.randn(7, 5))
    assert isinstance(result, tuple) and len(result) == 2
    out, hidden = result
    assert out.shape == (7, 3)
    assert hidden.shape == (7, liquid.hidden_size)
    out_2, hidden_2 = liquid(torch.randn(7, 5), hidden)
    assert out_2.shape == (7, 3) and hidden_2.shape == hidden.shape
    assert not torch.allclose(hidden, hidden_2)


def test_liquid_network_none_hidden_is_zero_hidden(liquid):
    x = torch.randn(4, 5)
    out_none, h_none = liquid(x)
    out_zero, h_zero = liquid(x, torch.zeros(4, liquid.hidden_size))
    assert torch.equal(out_none, out_zero)
    assert torch.equal(h_none, h_zero)
    assert torch.equal(liquid.initial_hidden(4), torch.zeros(4, liquid.hidden_size))
    out_other, _ = liquid(x, torch.ones(4, liquid.hidden_size))
    assert not torch.allclose(out_none, out_other)


def test_liquid_network_rows_are_independent_of_batch_size(liquid):
    x = torch.randn(6, 5)
    h = torch.randn(6, liquid.hidden_size)
    out, new_h = liquid(x, h)
    for i in range(6):
        out_i, h_i = liquid(x[i : i + 1], h[i : i + 1])
        assert out_i.shape == (1, 3) and h_i.shape == (1, liquid.hidden_size)
        assert torch.allclose(out_i, out[i : i + 1], atol=1e-6)
        assert torch.allclose(h_i, new_h[i : i + 1], atol=1e-6)
    out_1, h_1 = liquid(x[:1])
    assert out_1.shape == (1, 3) and h_1.shape == (1, liquid.hidden_size)


def test_liquid_network_gradients_reach_every_layer(liquid):
    x0 = torch.randn(8, 5, requires_grad=True)
    x1 = torch.randn(8, 5)
    _, h = liquid(x0, torch.randn(8, liquid.hidden_size))
    out, _ = liquid(x1, h)
    out.pow(2).sum().backward()
    for name, param in liquid.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, f"no gradient reaches {name}"
    for layer in sparse_layers(liquid):
        assert (layer.weight.grad[layer.mask == 0] == 0).all()
    # the second output back-propagates through the hidden state to the first input
    assert x0.grad is not None and x0.grad.abs().sum() > 0


def test_ncp_network_shapes_and_gradients():
    torch.manual_seed(0)
    net = NCPNetwork(5, 12, 3, sparsity_level=0.5, seed=1)
    out = net(torch.randn(9, 5))
    assert isinstance(out, torch.Tensor) and out.shape == (9, 3)
    assert net(torch.randn(1, 5)).shape == (1, 3)
    out.sum().backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_ncp_network_uses_its_wiring():
    net = NCPNetwork(5, 12, 3, sparsity_level=0.5, seed=4)
    layers = sparse_layers(net)
    expected = [net.wiring.masks.sensory_to_inter, net.wiring.masks.inter_to_command]
    expected.append(net.wiring.masks.command_to_motor)
    assert len(layers) == 3
    for layer, mask in zip(layers, expected, strict=True):
        assert torch.equal(layer.mask, mask)


@pytest.mark.parametrize("n_critics", [1, 2, 3])
def test_critic_ensemble_matches_separate_ncp_networks(n_critics):
    """The batched ensemble computes exactly what n separate NCP critics compute."""
    torch.manual_seed(0)
    critics = CriticEnsemble(6, 16, 1, n_critics=n_critics, seed=2)
    torch.manual_seed(0)
    separate = [NCPNetwork(6, 16, 1, seed=2 + i) for i in range(n_critics)]
    x = torch.randn(10, 6)
    out = critics(x)
    assert out.shape == (n_critics, 10, 1)
    for i, critic in enumerate(separate):
        assert torch.allclose(out[i], critic(x), atol=1e-6)


def test_critic_ensemble_critics_differ():
    torch.manual_seed(0)
    critics = CriticEnsemble(6, 16, 1, n_critics=2, seed=2)
    first, second = critics.wirings
    assert first.seed != second.seed
    assert any(
        not torch.equal(a, b) for a, b in zip(masks_of(first), masks_of(second), strict=True)
    )
    out = critics(torch.randn(10, 6))
    assert not torch.allclose(out[0], out[1])


def test_critic_ensemble_masked_weights_stay_zero():
    torch.manual_seed(0)
    critics = CriticEnsemble(6, 16, 2, n_critics=2, seed=3)
    optim = torch.optim.Adam(critics.parameters(), lr=1e-2)
    before = [w.detach().clone() for w in critics.weights]
    for _ in range(100):
        loss = critics(torch.randn(32, 6)).pow(2).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
    for weight, mask, old in zip(critics.weights, critics.masks(), before, strict=True):
        assert torch.all(weight[mask == 0] == 0.0)
        assert not torch.equal(weight[mask == 1], old[mask == 1])


def test_critic_ensemble_frozen_pass_gives_input_grads_only():
    """The actor loss's pass: same values, gradients to the input, none to the critics."""
    torch.manual_seed(0)
    critics = CriticEnsemble(6, 16, 1, n_critics=2, seed=3)
    x = torch.randn(10, 6, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    frozen = critics(x, frozen=True)
    frozen.sum().backward()
    assert all(p.grad is None for p in critics.parameters())
    reference = critics(x_ref)
    reference.sum().backward()
    assert all(p.grad is not None for p in critics.parameters())
    assert torch.equal(frozen, reference)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-6)


def test_critic_ensemble_load_zeroes_weights_outside_the_masks():
    """Passes without weight gradients skip the masks, so loading keeps masked slots zero."""
    torch.manual_seed(0)
    critics = CriticEnsemble(6, 16, 1, n_critics=2, seed=3)
    state = {k: v.clone() for k, v in critics.state_dict().items()}
    for key in state:
        if key.startswith("weights."):
            state[key].fill_(0.5)  # a foreign state with weights in masked slots
    critics.load_state_dict(state)
    for weight, mask in zip(critics.weights, critics.masks(), strict=True):
        assert torch.all(weight[mask == 0] == 0.0)
        assert torch.all(weight[mask == 1] == 0.5)
    x = torch.randn(4, 6)
    with torch.no_grad():
        no_grad_out = critics(x)
    assert torch.allclose(no_grad_out, critics(x), atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_mish_matches_torch_mish_and_its_gradient(dtype):
    """The exp-only Mish and its hand-written backward agree with `F.mish` everywhere."""
    x = torch.linspace(-60.0, 60.0, 5001, dtype=dtype).requires_grad_(True)
    ref = x.detach().clone().requires_grad_(True)
    out = mish(x)
    out.sum().backward()
    torch.nn.functional.mish(ref).sum().backward()
    tol = {"atol": 1e-12, "rtol": 1e-12} if dtype == torch.float64 else {"atol": 5e-6, "rtol": 1e-5}
    torch.testing.assert_close(out, torch.nn.functional.mish(ref.detach()), **tol)
    torch.testing.assert_close(x.grad, ref.grad, **tol)
    assert torch.isfinite(x.grad).all()
    with torch.no_grad():  # the graph-free path computes the same values
        torch.testing.assert_close(mish(x), out.detach(), atol=0.0, rtol=0.0)
    assert torch.autograd.gradcheck(
        mish, ((torch.randn(40, dtype=torch.float64) * 8).requires_grad_(True),)
    )


# --------------------------------------------------------------------------- utils


def _pair():
    torch.manual_seed(0)
    source = NCPNetwork(4, 10, 2, seed=1)
    target = copy.deepcopy(source)
    with torch.no_grad():
        for p in target.parameters():
            p.add_(torch.randn_like(p))
    return source, target


def test_soft_update_tau_one_copies():
    source, target = _pair()
    soft_update(source, target, 1.0)
    for s, t in zip(source.parameters(), target.parameters(), strict=True):
        assert torch.equal(s, t)


def test_soft_update_tau_half_averages_and_leaves_source():
    source, target = _pair()
    source_before = [p.detach().clone() for p in source.parameters()]
    target_before = [p.detach().clone() for p in target.parameters()]
    soft_update(source, target, 0.5)
    for s, t, s0, t0 in zip(
        source.parameters(), target.parameters(), source_before, target_before, strict=True
    ):
        assert torch.equal(s, s0)
        assert torch.allclose(t, (s0 + t0) / 2, atol=1e-6)


def test_soft_update_tau_zero_keeps_target():
    source, target = _pair()
    target_before = [p.detach().clone() for p in target.parameters()]
    soft_update(source, target, 0.0)
    for t, t0 in zip(target.parameters(), target_before, strict=True):
        assert torch.equal(t, t0)


@pytest.mark.parametrize(
    "net",
    [
        LiquidNCPNetwork(6, 20, 2, sparsity_level=0.5, seed=0),
        NCPNetwork(6, 20, 2, sparsity_level=0.7, seed=0),
    ],
    ids=["liquid", "ncp"],
)
def test_active_parameters_counts_unmasked_weights_and_biases(net):
    layers = sparse_layers(net)
    expected_active = sum(int(layer.mask.sum()) + layer.bias.numel() for layer in layers)
    expected_total = sum(layer.weight.numel() + layer.bias.numel() for layer in layers)
    assert active_parameters(net) == expected_active
    assert total_parameters(net) == expected_total
    assert active_parameters(net) < total_parameters(net)


def test_liquid_network_graph_free_step_matches_the_layer_modules():
    """Acting's fused step (no graph, weights without masks) equals the module path, and
    under autograd `forward` takes the module path, so masked weights get no gradient."""
    torch.manual_seed(0)
    net = LiquidNCPNetwork(5, 20, 3, seed=1).double()
    x = torch.randn(7, 5, dtype=torch.float64)
    hidden = torch.randn(7, net.hidden_size, dtype=torch.float64)
    output_ref, new_hidden_ref = net.forward_modules(x, hidden)
    with torch.no_grad():
        output, new_hidden = net(x, hidden)
    tol = {"atol": 1e-12, "rtol": 1e-12}
    torch.testing.assert_close(output, output_ref.detach(), **tol)
    torch.testing.assert_close(new_hidden, new_hidden_ref.detach(), **tol)

    output, new_hidden = net(x, hidden)
    (output.sum() + new_hidden.sum()).backward()
    for layer in sparse_layers(net):
        assert layer.weight.grad.abs().sum() > 0
        assert torch.all(layer.weight.grad[layer.mask == 0] == 0.0)


def test_liquid_network_load_zeroes_weights_outside_the_masks():
    """The fused step skips the masks, so loading must keep masked slots zero: a foreign
    state with weights everywhere still gives the masked network's outputs."""
    torch.manual_seed(0)
    net = LiquidNCPNetwork(5, 20, 3, seed=1)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for key in state:
        if key.endswith("weight"):
            state[key].fill_(0.25)
    net.load_state_dict(state)
    for layer in sparse_layers(net):
        assert torch.all(layer.weight[layer.mask == 0] == 0.0)
        assert torch.all(layer.weight[layer.mask == 1] == 0.25)
    x, hidden = torch.randn(4, 5), torch.randn(4, net.hidden_size)
    with torch.no_grad():
        fused = net(x, hidden)
        modules = net.forward_modules(x, hidden)
    for a, b in zip(fused, modules, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_scalar_like_is_made_once_per_dtype_and_device_and_usable_under_autograd():
    from velora.utils.torch import scalar_like

    x32, x64 = torch.randn(3), torch.randn(3, dtype=torch.float64)
    with torch.inference_mode():  # made here first, as in the update
        two = scalar_like(2.0, x32)
    assert scalar_like(2.0, x32) is two
    assert two.dim() == 0 and two.dtype == torch.float32 and two.item() == 2.0
    assert not two.is_inference()
    two64 = scalar_like(2.0, x64)
    assert two64 is not two and two64.dtype == torch.float64
    w = torch.randn(3, requires_grad=True)
    torch.clamp(w, max=scalar_like(0.5, w)).mul(two).sum().backward()
    assert torch.equal(w.grad, torch.where(w < 0.5, 2.0, 0.0))
