"""From-scratch NumPy reference implementations of the chapter-3 formulas.

No autograd, no framework: every forward pass has a matching hand-written backward pass.
Layout follows PyTorch: images ``[N, C, H, W]``, conv weights ``[C_out, C_in, kH, kW]``,
linear weights ``[out, in]``. The notebooks ``03*`` check each function against PyTorch.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "adam_step",
    "avgpool2d_backward",
    "avgpool2d_forward",
    "batchnorm2d_forward",
    "col2im",
    "conv2d_backward",
    "conv2d_forward",
    "conv2d_macs",
    "conv2d_params",
    "conv_output_size",
    "cross_entropy",
    "cross_entropy_grad",
    "dropout",
    "gelu",
    "gelu_grad",
    "im2col",
    "linear_backward",
    "linear_forward",
    "log_softmax",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "relu",
    "relu_grad",
    "sgd_step",
    "sigmoid",
    "sigmoid_grad",
    "softmax",
    "tanh",
    "tanh_grad",
]


def _positive_int(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


# --------------------------------------------------------------------------- conv
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    """Output length of a convolution along one axis.

    ``floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1``.
    """
    _positive_int("size", size)
    _positive_int("kernel", kernel)
    _positive_int("stride", stride)
    _positive_int("padding", padding, 0)
    _positive_int("dilation", dilation)
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(f"kernel {kernel} (dilation {dilation}) does not fit in size {size} "
                         f"with padding {padding}: output size would be {out}")
    return out


def im2col(x: np.ndarray, kh: int, kw: int, stride: int = 1, padding: int = 0,
           dilation: int = 1) -> np.ndarray:
    """Unfold patches of ``x`` ``[N, C, H, W]`` into columns ``[N, C*kh*kw, OH*OW]``.

    Row order is ``(c, i, j)``, matching ``weight.reshape(C_out, -1)`` and ``F.unfold``.
    """
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D [N, C, H, W], got shape {x.shape}")
    n, c, h, w = x.shape
    oh = conv_output_size(h, kh, stride, padding, dilation)
    ow = conv_output_size(w, kw, stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        r = i * dilation
        for j in range(kw):
            s = j * dilation
            cols[:, :, i, j] = xp[:, :, r:r + stride * oh:stride, s:s + stride * ow:stride]
    return cols.reshape(n, c * kh * kw, oh * ow)


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kh: int, kw: int,
           stride: int = 1, padding: int = 0, dilation: int = 1) -> np.ndarray:
    """Adjoint of :func:`im2col`: scatter-add columns back to ``x_shape`` (``F.fold``)."""
    n, c, h, w = x_shape
    oh = conv_output_size(h, kh, stride, padding, dilation)
    ow = conv_output_size(w, kw, stride, padding, dilation)
    if cols.shape != (n, c * kh * kw, oh * ow):
        raise ValueError(f"cols has shape {cols.shape}, expected {(n, c * kh * kw, oh * ow)}")
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    xp = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for i in range(kh):
        r = i * dilation
        for j in range(kw):
            s = j * dilation
            xp[:, :, r:r + stride * oh:stride, s:s + stride * ow:stride] += cols[:, :, i, j]
    return xp[:, :, padding:padding + h, padding:padding + w]


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                   stride: int = 1, padding: int = 0, dilation: int = 1) -> np.ndarray:
    """2-D cross-correlation (what deep learning calls convolution), via im2col + matmul.

    ``y[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] * x[n, c, p*s + i*d - pad, q*s + j*d - pad]``.
    """
    if weight.ndim != 4 or weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight shape {weight.shape} does not match input channels {x.shape[1]}")
    n, _, h, w = x.shape
    co, _, kh, kw = weight.shape
    cols = im2col(x, kh, kw, stride, padding, dilation)          # [N, C*kh*kw, L]
    y = np.einsum("ok,nkl->nol", weight.reshape(co, -1), cols, optimize=True)
    if bias is not None:
        y = y + bias[None, :, None]
    oh = conv_output_size(h, kh, stride, padding, dilation)
    ow = conv_output_size(w, kw, stride, padding, dilation)
    return y.reshape(n, co, oh, ow)


def conv2d_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: int = 1,
                    padding: int = 0, dilation: int = 1
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dx, dw, db)`` of :func:`conv2d_forward` given upstream ``dy``."""
    co, _, kh, kw = weight.shape
    n = x.shape[0]
    cols = im2col(x, kh, kw, stride, padding, dilation)          # [N, K, L]
    dy2 = dy.reshape(n, co, -1)                                   # [N, C_out, L]
    dw = np.einsum("nol,nkl->ok", dy2, cols, optimize=True).reshape(weight.shape)
    db = dy2.sum(axis=(0, 2))
    dcols = np.einsum("ok,nol->nkl", weight.reshape(co, -1), dy2, optimize=True)
    dx = col2im(dcols, x.shape, kh, kw, stride, padding, dilation)
    return dx, dw, db


def conv2d_params(c_in: int, c_out: int, k: int, bias: bool = True) -> int:
    """Learnable parameters of a ``k x k`` conv layer: ``C_out*C_in*k^2 (+ C_out)``."""
    return c_out * c_in * k * k + (c_out if bias else 0)


def conv2d_macs(c_in: int, c_out: int, k: int, out_h: int, out_w: int) -> int:
    """Multiply-accumulates of one conv layer on one image: ``C_out*OH*OW*C_in*k^2``."""
    return c_out * out_h * out_w * c_in * k * k


# --------------------------------------------------------------------------- pooling
def _pool_windows(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    n, c, h, w = x.shape
    cols = im2col(x.reshape(n * c, 1, h, w), k, k, stride)       # [N*C, k*k, L]
    return cols


def maxpool2d_forward(x: np.ndarray, k: int = 2, stride: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling; returns ``(y, argmax)`` where ``argmax`` indexes each window."""
    stride = k if stride is None else stride
    n, c, h, w = x.shape
    cols = _pool_windows(x, k, stride)
    arg = cols.argmax(axis=1)                                     # [N*C, L]
    y = np.take_along_axis(cols, arg[:, None], axis=1)[:, 0]
    oh, ow = conv_output_size(h, k, stride), conv_output_size(w, k, stride)
    return y.reshape(n, c, oh, ow), arg


def maxpool2d_backward(dy: np.ndarray, arg: np.ndarray, x_shape: tuple[int, int, int, int],
                       k: int = 2, stride: int | None = None) -> np.ndarray:
    """Route each upstream gradient to the argmax of its window (zero elsewhere)."""
    stride = k if stride is None else stride
    n, c, h, w = x_shape
    dcols = np.zeros((n * c, k * k, arg.shape[1]), dtype=dy.dtype)
    np.put_along_axis(dcols, arg[:, None], dy.reshape(n * c, 1, -1), axis=1)
    return col2im(dcols, (n * c, 1, h, w), k, k, stride).reshape(x_shape)


def avgpool2d_forward(x: np.ndarray, k: int = 2, stride: int | None = None) -> np.ndarray:
    """Average pooling over ``k x k`` windows."""
    stride = k if stride is None else stride
    n, c, h, w = x.shape
    y = _pool_windows(x, k, stride).mean(axis=1)
    return y.reshape(n, c, conv_output_size(h, k, stride), conv_output_size(w, k, stride))


def avgpool2d_backward(dy: np.ndarray, x_shape: tuple[int, int, int, int], k: int = 2,
                       stride: int | None = None) -> np.ndarray:
    """Spread each upstream gradient evenly (``1/k^2``) over its window."""
    stride = k if stride is None else stride
    n, c, h, w = x_shape
    d = np.repeat(dy.reshape(n * c, 1, -1) / (k * k), k * k, axis=1)
    return col2im(d, (n * c, 1, h, w), k, k, stride).reshape(x_shape)


# --------------------------------------------------------------------------- activations
def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))``, computed without overflow."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_grad(x: np.ndarray) -> np.ndarray:
    """``sigma(x) * (1 - sigma(x))`` (at most 0.25)."""
    s = sigmoid(x)
    return s * (1 - s)


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent."""
    return np.tanh(x)


def tanh_grad(x: np.ndarray) -> np.ndarray:
    """``1 - tanh(x)^2``."""
    return 1 - np.tanh(x) ** 2


def relu(x: np.ndarray) -> np.ndarray:
    """``max(0, x)``."""
    return np.maximum(x, 0)


def relu_grad(x: np.ndarray) -> np.ndarray:
    """``1[x > 0]`` (0 at 0, as PyTorch)."""
    return (x > 0).astype(x.dtype)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(np.result_type(x, np.float32))


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU ``x * Phi(x)`` with ``Phi`` the standard normal CDF."""
    return x * 0.5 * (1 + _erf(x / math.sqrt(2)))


def gelu_grad(x: np.ndarray) -> np.ndarray:
    """``Phi(x) + x * phi(x)``."""
    phi = np.exp(-0.5 * x ** 2) / math.sqrt(2 * math.pi)
    return 0.5 * (1 + _erf(x / math.sqrt(2))) + x * phi


# --------------------------------------------------------------------------- linear, softmax, CE
def linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None
                   ) -> np.ndarray:
    """Fully connected layer ``y = x W^T + b`` with ``x [N, in]``, ``W [out, in]``."""
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"x has {x.shape[-1]} features but weight expects {weight.shape[1]}")
    y = x @ weight.T
    return y if bias is None else y + bias


def linear_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dx, dW, db)``: ``dx = dy W``, ``dW = dy^T x``, ``db = sum_n dy``."""
    return dy @ weight, dy.T @ x, dy.sum(axis=0)


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (subtract the max before ``exp``)."""
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """``z - logsumexp(z)`` with the max-shift trick."""
    m = z.max(axis=axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def cross_entropy(z: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of logits ``z [N, K]`` and integer labels ``y [N]``."""
    if z.ndim != 2 or y.shape != (z.shape[0],):
        raise ValueError(f"expected logits [N, K] and labels [N], got {z.shape} and {y.shape}")
    return float(-log_softmax(z)[np.arange(len(y)), y].mean())


def cross_entropy_grad(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of the mean cross-entropy w.r.t. logits: ``(softmax(z) - onehot(y)) / N``."""
    p = softmax(z)
    p[np.arange(len(y)), y] -= 1
    return p / len(y)


# --------------------------------------------------------------------------- optimisers
def sgd_step(param: np.ndarray, grad: np.ndarray, state: dict, lr: float,
             momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0
             ) -> np.ndarray:
    """One SGD step with PyTorch's conventions; ``state`` holds the velocity ``buf``.

    ``g = grad + wd*p``; ``b = mu*b + g`` (``b = g`` at step 1);
    ``p -= lr * (g + mu*b if nesterov else b)``.
    """
    if nesterov and momentum <= 0:
        raise ValueError(f"nesterov needs momentum > 0, got momentum={momentum}")
    g = grad + weight_decay * param
    if momentum:
        buf = state.get("buf")
        buf = g.copy() if buf is None else momentum * buf + g
        state["buf"] = buf
        g = g + momentum * buf if nesterov else buf
    return param - lr * g


def adam_step(param: np.ndarray, grad: np.ndarray, state: dict, lr: float = 1e-3,
              betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
              weight_decay: float = 0.0, decoupled: bool = False) -> np.ndarray:
    """One Adam (``decoupled=False``, L2 added to the gradient) or AdamW step.

    ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``,
    ``p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)``;
    AdamW first shrinks ``p *= 1 - lr*wd``.
    """
    b1, b2 = betas
    t = state.get("t", 0) + 1
    if decoupled:
        param = param * (1 - lr * weight_decay)
        g = grad
    else:
        g = grad + weight_decay * param
    m = b1 * state.get("m", 0.0) + (1 - b1) * g
    v = b2 * state.get("v", 0.0) + (1 - b2) * g * g
    state.update(t=t, m=m, v=v)
    m_hat = m / (1 - b1 ** t)
    v_hat = v / (1 - b2 ** t)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps)


# --------------------------------------------------------------------------- regularisation
def dropout(x: np.ndarray, p: float, rng: np.random.Generator, training: bool = True
            ) -> tuple[np.ndarray, np.ndarray]:
    """Inverted dropout: zero with probability ``p``, scale survivors by ``1/(1-p)``.

    Returns ``(y, mask)``; the backward pass is ``dy * mask``.
    """
    if not 0 <= p < 1:
        raise ValueError(f"p must be in [0, 1), got {p}")
    if not training or p == 0:
        return x, np.ones_like(x)
    mask = (rng.random(x.shape) >= p).astype(x.dtype) / (1 - p)
    return x * mask, mask


def batchnorm2d_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, state: dict,
                        training: bool = True, momentum: float = 0.1, eps: float = 1e-5
                        ) -> np.ndarray:
    """Batch norm over ``(N, H, W)`` per channel, with running statistics in ``state``.

    Training: normalise with the batch mean and biased variance, update
    ``running = (1-m) running + m * batch`` (unbiased variance, as PyTorch).
    Evaluation: normalise with the running statistics.
    """
    c = x.shape[1]
    state.setdefault("mean", np.zeros(c))
    state.setdefault("var", np.ones(c))
    if training:
        mu = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
        cnt = x.size // c
        state["mean"] = (1 - momentum) * state["mean"] + momentum * mu
        state["var"] = (1 - momentum) * state["var"] + momentum * var * cnt / max(cnt - 1, 1)
    else:
        mu, var = state["mean"], state["var"]
    xhat = (x - mu[None, :, None, None]) / np.sqrt(var[None, :, None, None] + eps)
    return gamma[None, :, None, None] * xhat + beta[None, :, None, None]


# --------------------------------------------------------------------------- initialisation, schedules
def xavier_std(fan_in: int, fan_out: int, gain: float = 1.0) -> float:
    """Glorot/Xavier normal standard deviation ``gain * sqrt(2 / (fan_in + fan_out))``.

    Keeps the variance of activations and of gradients roughly constant through a linear
    (or tanh, near 0) layer; ``torch.nn.init.xavier_normal_`` uses the same value.
    """
    _positive_int("fan_in", fan_in)
    _positive_int("fan_out", fan_out)
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def kaiming_std(fan_in: int, nonlinearity: str = "relu") -> float:
    """He/Kaiming normal standard deviation ``gain / sqrt(fan_in)`` (fan-in mode).

    ``gain`` is ``sqrt(2)`` for ReLU, ``5/3`` for tanh and ``1`` for linear, as in
    ``torch.nn.init.calculate_gain``.
    """
    gains = {"relu": math.sqrt(2.0), "tanh": 5.0 / 3.0, "linear": 1.0}
    if nonlinearity not in gains:
        raise ValueError(f"nonlinearity must be one of {sorted(gains)}, got {nonlinearity!r}")
    _positive_int("fan_in", fan_in)
    return gains[nonlinearity] / math.sqrt(fan_in)


def cosine_lr(step: int, total: int, lr_max: float, lr_min: float = 0.0) -> float:
    """Cosine annealing ``lr_min + (lr_max - lr_min) * (1 + cos(pi * step / total)) / 2``.

    Equals ``torch.optim.lr_scheduler.CosineAnnealingLR`` with ``T_max=total`` and
    ``eta_min=lr_min`` for ``0 <= step <= total``.
    """
    _positive_int("total", total)
    if not 0 <= step <= total:
        raise ValueError(f"step must be in [0, total={total}], got {step}")
    return lr_min + (lr_max - lr_min) * (1 + math.cos(math.pi * step / total)) / 2


__all__ += ["cosine_lr", "kaiming_std", "xavier_std"]


_ACTIVATIONS = {"sigmoid": (sigmoid, sigmoid_grad), "tanh": (tanh, tanh_grad), "relu": (relu, relu_grad),
                "gelu": (gelu, gelu_grad), "linear": (lambda z: z, np.ones_like)}


def mlp_input_jacobians(x: np.ndarray, weights: list[np.ndarray], activation: str) -> list[np.ndarray]:
    """The Jacobians ∂h_l/∂h_0 of the stack h_l = f(W_l h_{l-1}), h_0 = x, for l = 1..L (one input).

    By the chain rule ∂h_l/∂h_0 = J_l ⋯ J_1 with J_l = diag(f'(z_l)) W_l: the activation's
    derivative *and* the weights multiply the gradient at every layer.
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation={activation!r}; valid choices: {', '.join(map(repr, _ACTIVATIONS))}")
    if x.ndim != 1:
        raise ValueError(f"x must be one input vector [n], got shape {x.shape}")
    f, df = _ACTIVATIONS[activation]
    h, jac, out = x, np.eye(len(x)), []
    for w in weights:
        z = w @ h
        jac = (df(z)[:, None] * w) @ jac  # diag(f'(z_l)) W_l  times the product so far
        h = f(z)
        out.append(jac)
    return out
