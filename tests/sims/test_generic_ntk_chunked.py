"""generic_ntk's probe-chunked path (large models: blocks J_a J_b^T under lax.map) equals the
one-shot Jacobian, including a ragged last chunk and more than one output."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from numpy.testing import assert_allclose

from theorysim.sims import ModelConfig
from theorysim.sims._models import make_model
from theorysim.sims._observe import generic_ntk


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_equals_one_shot(chunk):
    with jax.enable_x64(True):
        cfg = ModelConfig(width=6, depth=2, parameterization="ntk", bias=True, out_dim=2,
                          activation="tanh")
        m = make_model(cfg, 3, key=jax.random.key(1), dtype=jnp.float64)
        xp = jax.random.normal(jax.random.key(2), (5, 3), jnp.float64)
        graphdef, params = nnx.split(m)
        scales = jax.tree.map(lambda a: 0.5 + a.size % 3, params)  # distinct per-leaf scales

        def apply(p, xx):
            return nnx.merge(graphdef, p)(xx)

        per_probe = 2 * sum(a.size * 8 for a in jax.tree.leaves(params))
        k1 = generic_ntk(apply, params, xp, scales, 0.7)
        k2 = jax.jit(lambda p, xx: generic_ntk(apply, p, xx, scales, 0.7,
                                               max_jac_bytes=chunk * per_probe))(params, xp)
        assert k2.shape == (5, 5)
        assert_allclose(k2, k1, rtol=1e-12, atol=1e-14)
