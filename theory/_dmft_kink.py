r"""The NTK of two-layer ReLU networks across the kink: Filippov (sliding-mode) slopes.

Mean-field two-layer network (Bordelon & Pehlevan 2022, arXiv 2205.09653, THEORY.md 4),
neuron :math:`i` with pre-activations :math:`h_{i\mu}` and readout :math:`z_i`:

.. math::
    \dot h_{i\mu} = \frac{\gamma_0 z_i}{P}\sum_{a\le P}\Phi^0_{\mu a}\Delta_a\,\phi'(h_{ia}),
    \qquad \dot\Delta = -\frac1P K\Delta,\qquad
    K_{\mu\nu} = \langle\phi(h_\mu)\phi(h_\nu)\rangle
        + \langle z^2\phi'(h_\mu)\phi'(h_\nu)\rangle\Phi^0_{\mu\nu}.

For ReLU the velocity of :math:`h_{i\mu}` jumps at :math:`h_{i\mu} = 0` by
:math:`c_1 = \gamma_0 z_i\Phi^0_{\mu\mu}\Delta_\mu/P`. Write :math:`v(s) = c_0 + c_1 s` for the
velocity with slope :math:`s = \phi'(h_{i\mu})` (:math:`c_0` collects the other points). When
:math:`v(0) > 0 > v(1)` both sides push the neuron onto the kink: it *slides* there
(Filippov), :math:`h_{i\mu}\equiv 0`, which is the convex combination with slope
:math:`\alpha = -c_0/c_1\in(0,1)`, the one value that keeps :math:`\dot h_{i\mu} = 0`.

What was found (issue 13, D = 7, P = 6 on the sphere, gamma0 = 2, t <= 6, 20000 particles):
about 9% of the neurons slide on the kink of some training point by the end; with the
indicator slope :math:`1[h > 0]` evaluated at an instant, :math:`-K\Delta/P` misses the measured
:math:`\dot\Delta` by 14-16% of its size (both for RK4 steps 0.01 and 0.0025: not a
step-size effect), because every discretisation (RK4 stages, GD steps) makes sliding neurons
chatter across the kink and samples :math:`1[h>0]` at an arbitrary phase. With the Filippov
slope :math:`\alpha` for sliding neurons, :math:`-K\Delta/P` matches :math:`\dot\Delta` to
0.2-0.5%. That kernel is the one returned by :func:`~theorysim.theory.dmft_two_layer` and by
:func:`sliding_ntk` (for networks): it is well defined across the kink and drives
:math:`\Delta`. A neuron counts as on the kink when :math:`|h_{i\mu}|` is at most two time
steps (RK4 sub-step or GD learning rate) at its speed, :math:`2\,\mathrm{step}\,(|v(0)| +
|v(1)|)`: sliding neurons chatter within about one step of motion of the kink, and the band
vanishes with the step (and in the lazy limit, where nothing reaches a kink), so the kernel is
a property of the dynamics, not of the discretisation. Smooth activations never slide.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from theorysim.checks import as_finite_array, check_scalar


def filippov_slopes(h, z, delta, phi0, gamma0, step, indicator=None):
    r"""ReLU slopes with Filippov values on the kink: ``(S, P_all)`` from pre-activations
    ``h (S, P_all)`` (training points first), readouts ``z (S,)``, the training error
    ``delta (P,)``, :math:`\Phi^0` ``(P_all, P_all)`` and the time ``step`` (a neuron is on the
    kink when :math:`|h| \le 2\,\mathrm{step}\,(|v(0)| + |v(1)|)`, two steps at its speed).
    Test points never slide (they do not drive the dynamics), so their slope stays
    :math:`1[h>0]`. ``indicator`` replaces the step function :math:`1[h>0]` (e.g. by one with
    a smoothed derivative, for the finite-width theory's sensitivities). Jittable."""
    P = delta.shape[0]
    s = (h > 0).astype(h.dtype) if indicator is None else indicator(h)
    st = s[:, :P]
    coef = (gamma0 / P) * z[:, None]
    v = coef * ((st * delta[None, :]) @ phi0[:P, :P].T)
    c1 = coef * jnp.diagonal(phi0)[None, :P] * delta[None, :]
    c0 = v - c1 * st
    band = 2.0 * step * (jnp.abs(c0) + jnp.abs(c0 + c1))
    slide = (jnp.abs(h[:, :P]) <= band) & (c1 < 0) & (c0 > 0) & (c0 + c1 < 0)
    alpha = jnp.where(slide, -c0 / jnp.where(slide, c1, 1.0), st)
    return s.at[:, :P].set(alpha)


def sliding_ntk(pre, readout, delta, X, gamma0: float, *, step: float) -> np.ndarray:
    r"""The NTK of a width-N two-layer mean-field ReLU network with sliding neurons at their
    Filippov slope (module docstring): the kernel that drives :math:`\dot\Delta = -K\Delta/P`.

    .. math::
        K_{\mu\nu} = \frac1N\sum_i\big[\phi(h_{i\mu})\phi(h_{i\nu})
            + z_i^2 s_{i\mu}s_{i\nu}\,x_\mu\cdot x_\nu/D\big],

    with :math:`s_{i\mu} = 1[h_{i\mu} > 0]`, or :math:`\alpha_{i\mu}` where neuron ``i`` slides
    on the kink of training point ``mu``. The same definition as ``dmft_two_layer(...).ntk``.
    Leading dimensions (e.g. seeds, times) are batched over.

    Args:
      pre: ``(..., N, P)`` first-layer pre-activations :math:`h_{i\mu} = w^0_i\cdot x_\mu/\sqrt D`.
      readout: ``(..., N)`` readout weights :math:`z_i` (the network is
        :math:`f = \sum_i z_i\phi(h_i)/(\gamma_0 N)`).
      delta: ``(..., P)`` training error ``y - f``.
      X: ``(P, D)`` the training inputs.
      gamma0: richness ``> 0``.
      step: the time step of the dynamics (the GD learning rate): a neuron counts as on the
        kink when it is within two steps of it at its current speed.

    Returns:
      ``(..., P, P)`` NumPy float64 kernel.

    Example:
      One neuron on the kink of point 0 (``x_0 . x_1 / D = 0.5``), pushed onto it from both
      sides, slides with slope 1/2 (the instantaneous slope would be 0):

      >>> X = np.array([[1.0, 0.0], [0.5, 0.75 ** 0.5]]) * 2 ** 0.5
      >>> sliding_ntk([[0.0, 1.0]], [1.0], [-1.0, 1.0], X, 1.0, step=1e-3)
      array([[0.25, 0.25],
             [0.25, 2.  ]])
    """
    h = as_finite_array("pre", pre, min_size=1)
    z = as_finite_array("readout", readout, min_size=1)
    d = as_finite_array("delta", delta, min_size=1)
    X = as_finite_array("X", X, ndim=2, min_size=1)
    if (h.ndim < 2 or z.shape != h.shape[:-1] or d.shape != h.shape[:-2] + h.shape[-1:]
            or X.shape[0] != h.shape[-1]):
        raise ValueError(f"pre (..., N, P) = {h.shape}, readout (..., N) = {z.shape}, delta "
                         f"(..., P) = {d.shape} and X (P, D) = {X.shape} must agree")
    gamma0 = check_scalar("gamma0", gamma0, lo=0.0, hi=1e6, lo_open=True)
    step = check_scalar("step", step, lo=0.0, hi=1e6)
    phi0 = X @ X.T / X.shape[1]
    N, P = h.shape[-2:]
    slopes = jax.vmap(lambda a, b, c: filippov_slopes(a, b, c, jnp.asarray(phi0), gamma0, step))
    s = np.asarray(slopes(jnp.asarray(h.reshape(-1, N, P)), jnp.asarray(z.reshape(-1, N)),
                          jnp.asarray(d.reshape(-1, P)))).reshape(h.shape)
    ph = np.maximum(h, 0.0)
    g = s * z[..., None]
    return (np.einsum("...ip,...iq->...pq", ph, ph)
            + np.einsum("...ip,...iq->...pq", g, g) * phi0) / N
