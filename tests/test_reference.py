"""Tests of helpers.reference against PyTorch (several shapes, strides, paddings, seeds)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import reference as R


def _t(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2), (3, 1, 1)])
def test_conv2d_forward_backward_matches_torch(seed, stride, padding, dilation):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 3, 9, 8))
    w = rng.normal(size=(4, 3, 3, 3))
    b = rng.normal(size=4)
    y = R.conv2d_forward(x, w, b, stride, padding, dilation)
    xt, wt, bt = _t(x), _t(w), _t(b)
    yt = F.conv2d(xt, wt, bt, stride, padding, dilation)
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-10)
    dy = rng.normal(size=y.shape)
    yt.backward(torch.tensor(dy))
    dx, dw, db = R.conv2d_backward(dy, x, w, stride, padding, dilation)
    for ours, ref in [(dx, xt.grad), (dw, wt.grad), (db, bt.grad)]:
        np.testing.assert_allclose(ours, ref.numpy(), atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3),
       d=st.integers(1, 3))
def test_conv_output_size_matches_nn_conv2d(h, k, s, p, d):
    if h + 2 * p < d * (k - 1) + 1:
        with pytest.raises(ValueError, match="does not fit"):
            R.conv_output_size(h, k, s, p, d)
        return
    conv = torch.nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
    assert conv(torch.zeros(1, 1, h, h)).shape[-1] == R.conv_output_size(h, k, s, p, d)


def test_conv_output_size_rejects_bad_values():
    with pytest.raises(ValueError, match="stride"):
        R.conv_output_size(8, 3, stride=0)


def test_im2col_col2im_match_unfold_fold():
    x = np.random.default_rng(0).normal(size=(2, 3, 7, 6))
    cols = R.im2col(x, 3, 2, stride=2, padding=1, dilation=1)
    ref = F.unfold(torch.tensor(x), (3, 2), stride=2, padding=1).numpy()
    np.testing.assert_allclose(cols, ref)
    back = R.col2im(cols, x.shape, 3, 2, stride=2, padding=1)
    ref_back = F.fold(torch.tensor(ref), (7, 6), (3, 2), stride=2, padding=1).numpy()
    np.testing.assert_allclose(back, ref_back)
    with pytest.raises(ValueError, match="4-D"):
        R.im2col(x[0], 3, 3)


def test_params_and_macs():
    conv = torch.nn.Conv2d(3, 16, 5)
    assert R.conv2d_params(3, 16, 5) == sum(p.numel() for p in conv.parameters())
    assert R.conv2d_params(3, 16, 5, bias=False) == 3 * 16 * 25
    assert R.conv2d_macs(3, 16, 5, 28, 28) == 16 * 28 * 28 * 3 * 25


@pytest.mark.parametrize("k,stride", [(2, 2), (3, 1), (3, 2)])
def test_pooling_forward_backward(k, stride):
    rng = np.random.default_rng(k + stride)
    x = rng.normal(size=(2, 3, 8, 7))
    dy_shape = (2, 3, R.conv_output_size(8, k, stride), R.conv_output_size(7, k, stride))
    dy = rng.normal(size=dy_shape)
    xt = _t(x)
    yt = F.max_pool2d(xt, k, stride)
    yt.backward(torch.tensor(dy))
    y, arg = R.maxpool2d_forward(x, k, stride)
    np.testing.assert_allclose(y, yt.detach().numpy())
    np.testing.assert_allclose(R.maxpool2d_backward(dy, arg, x.shape, k, stride), xt.grad.numpy(),
                               atol=1e-12)
    xt = _t(x)
    yt = F.avg_pool2d(xt, k, stride)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(R.avgpool2d_forward(x, k, stride), yt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(R.avgpool2d_backward(dy, x.shape, k, stride), xt.grad.numpy(),
                               atol=1e-12)


@pytest.mark.parametrize("name,tfn", [("sigmoid", torch.sigmoid), ("tanh", torch.tanh),
                                      ("relu", torch.relu), ("gelu", F.gelu)])
def test_activations_and_derivatives(name, tfn):
    x = np.linspace(-6, 6, 101) + 1e-3   # avoid the ReLU kink at exactly 0
    xt = _t(x)
    tfn(xt).sum().backward()
    np.testing.assert_allclose(getattr(R, name)(x), tfn(_t(x)).detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(getattr(R, name + "_grad")(x), xt.grad.numpy(), atol=1e-12)


def test_sigmoid_no_overflow():
    assert np.isfinite(R.sigmoid(np.array([-1000.0, 1000.0]))).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_softmax_cross_entropy(seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.normal(size=(5, 7)), rng.normal(size=(4, 7)), rng.normal(size=4)
    y = rng.integers(0, 4, size=5)
    xt, wt, bt = _t(x), _t(w), _t(b)
    zt = F.linear(xt, wt, bt)
    zt.retain_grad()
    loss = F.cross_entropy(zt, torch.tensor(y))
    loss.backward()
    z = R.linear_forward(x, w, b)
    np.testing.assert_allclose(z, zt.detach().numpy(), atol=1e-12)
    assert R.cross_entropy(z, y) == pytest.approx(loss.item(), abs=1e-12)
    dz = R.cross_entropy_grad(z, y)
    np.testing.assert_allclose(dz, zt.grad.numpy(), atol=1e-12)
    dx, dw, db = R.linear_backward(dz, x, w)
    for ours, ref in [(dx, xt.grad), (dw, wt.grad), (db, bt.grad)]:
        np.testing.assert_allclose(ours, ref.numpy(), atol=1e-12)
    np.testing.assert_allclose(R.softmax(z), torch.softmax(zt, 1).detach().numpy(), atol=1e-12)
    with pytest.raises(ValueError, match="features"):
        R.linear_forward(x, w.T)
    with pytest.raises(ValueError, match="labels"):
        R.cross_entropy(z, y[:2])


@settings(max_examples=30, deadline=None)
@given(shift=st.floats(-1e4, 1e4))
def test_log_softmax_is_shift_invariant_and_finite(shift):
    z = np.array([[1.0, 2.0, 3.0]])
    out = R.log_softmax(z + shift)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, R.log_softmax(z), atol=1e-6)


@pytest.mark.parametrize("kw", [dict(momentum=0.0), dict(momentum=0.9),
                                dict(momentum=0.9, nesterov=True),
                                dict(momentum=0.5, weight_decay=0.1)])
def test_sgd_matches_torch(kw):
    rng = np.random.default_rng(0)
    p = rng.normal(size=5)
    pt = torch.tensor(p, requires_grad=True)
    opt = torch.optim.SGD([pt], lr=0.1, **kw)
    state = {}
    for _ in range(5):
        g = rng.normal(size=5)
        pt.grad = torch.tensor(g)
        opt.step()
        p = R.sgd_step(p, g, state, lr=0.1, **kw)
        np.testing.assert_allclose(p, pt.detach().numpy(), atol=1e-12)
    with pytest.raises(ValueError, match="nesterov"):
        R.sgd_step(p, g, {}, lr=0.1, nesterov=True)


@pytest.mark.parametrize("cls,decoupled", [(torch.optim.Adam, False), (torch.optim.AdamW, True)])
def test_adam_adamw_match_torch(cls, decoupled):
    rng = np.random.default_rng(1)
    p = rng.normal(size=6)
    pt = torch.tensor(p, requires_grad=True)
    opt = cls([pt], lr=0.01, weight_decay=0.1)
    state = {}
    for _ in range(6):
        g = rng.normal(size=6)
        pt.grad = torch.tensor(g)
        opt.step()
        p = R.adam_step(p, g, state, lr=0.01, weight_decay=0.1, decoupled=decoupled)
        np.testing.assert_allclose(p, pt.detach().numpy(), atol=1e-12)


def test_dropout_keeps_expectation():
    rng = np.random.default_rng(0)
    x = np.ones(200_000)
    y, mask = R.dropout(x, 0.3, rng)
    assert abs(y.mean() - 1) < 0.01
    assert abs((mask == 0).mean() - 0.3) < 0.01
    np.testing.assert_array_equal(R.dropout(x, 0.3, rng, training=False)[0], x)
    with pytest.raises(ValueError, match="p must be"):
        R.dropout(x, 1.0, rng)


def test_batchnorm_matches_torch_train_and_eval():
    rng = np.random.default_rng(0)
    bn = torch.nn.BatchNorm2d(3).double()
    gamma, beta = rng.normal(size=3), rng.normal(size=3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
    state = {}
    for _ in range(3):
        x = rng.normal(2, 3, size=(4, 3, 5, 5))
        np.testing.assert_allclose(R.batchnorm2d_forward(x, gamma, beta, state),
                                   bn(torch.tensor(x)).detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(state["mean"], bn.running_mean.numpy(), atol=1e-12)
    np.testing.assert_allclose(state["var"], bn.running_var.numpy(), atol=1e-12)
    bn.eval()
    x = rng.normal(size=(2, 3, 5, 5))
    np.testing.assert_allclose(R.batchnorm2d_forward(x, gamma, beta, state, training=False),
                               bn(torch.tensor(x)).detach().numpy(), atol=1e-10)


@pytest.mark.parametrize("fan_in,fan_out", [(8, 8), (64, 10), (3 * 3 * 16, 3 * 3 * 32)])
def test_init_stds_match_torch(fan_in, fan_out):
    torch.manual_seed(0)
    w = torch.empty(fan_out, fan_in)
    gain = torch.nn.init.calculate_gain("tanh")
    assert R.xavier_std(fan_in, fan_out, gain) == pytest.approx(
        gain * (2 / (fan_in + fan_out)) ** 0.5)
    big = torch.empty(2000, fan_in)
    torch.nn.init.kaiming_normal_(big, nonlinearity="relu")
    assert float(big.std()) == pytest.approx(R.kaiming_std(fan_in, "relu"), rel=0.05)
    torch.nn.init.xavier_normal_(w)
    big2 = torch.empty(fan_out * 200, fan_in)
    torch.nn.init.xavier_normal_(big2)
    assert float(big2.std()) == pytest.approx(R.xavier_std(fan_in, fan_out * 200), rel=0.05)
    assert R.kaiming_std(fan_in, "tanh") == pytest.approx(
        torch.nn.init.calculate_gain("tanh") / fan_in ** 0.5)
    with pytest.raises(ValueError, match="nonlinearity must be"):
        R.kaiming_std(fan_in, "swish")


@pytest.mark.parametrize("total,lr_min", [(10, 0.0), (37, 0.01)])
def test_cosine_lr_matches_scheduler(total, lr_min):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=lr_min)
    for step in range(total + 1):
        assert R.cosine_lr(step, total, 0.5, lr_min) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12)
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match="step must be"):
        R.cosine_lr(total + 1, total, 0.5)


def test_mlp_input_jacobians_match_autograd_and_include_the_weights():
    rng = np.random.default_rng(0)
    n = 6
    weights = [rng.normal(0, 1, (n, n)) for _ in range(3)]
    x = rng.normal(0, 1, n)
    jacs = R.mlp_input_jacobians(x, weights, "tanh")

    def stack(h, upto):
        for w in weights[:upto]:
            h = torch.tanh(torch.tensor(w) @ h)
        return h

    for depth, jac in enumerate(jacs, start=1):
        ref = torch.autograd.functional.jacobian(lambda h, d=depth: stack(h, d), torch.tensor(x)).numpy()
        assert jac.shape == (n, n) and np.allclose(jac, ref, atol=1e-12)
    # scaling the weights changes the Jacobian (a sigma'-only product would not see them)
    linear = R.mlp_input_jacobians(x, [2 * w for w in weights], "linear")[-1]
    assert np.allclose(linear, 8 * weights[2] @ weights[1] @ weights[0])
    with pytest.raises(ValueError, match="activation='swish'"):
        R.mlp_input_jacobians(x, weights, "swish")
