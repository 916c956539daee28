"""theorysim.kernels.batch: blocks over the 8 fake CPU devices (tests/conftest.py) give the
unbatched kernel."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from tests.kernels._stax_cases import inputs
from theorysim import kernels as K
from theorysim.kernels import stax


def test_eight_devices_available():
    assert jax.local_device_count() == 8


@pytest.mark.parametrize("device_count", [-1, 3])
def test_fully_connected_blocks_equal_unbatched(device_count):
    x = np.random.default_rng(0).standard_normal((24, 5))
    x2 = np.random.default_rng(1).standard_normal((16, 5))
    _, _, kfn = stax.serial(stax.Dense(64, 1.5, 0.1), stax.Relu(), stax.Dense(64, 1.5, 0.1),
                            stax.Erf(), stax.Dense(1, 1.5, 0.1))
    kb = K.batch(kfn, batch_size=8, device_count=device_count)
    with jax.enable_x64(True):
        for args in ((x,), (x, x2)):
            a, b = kb(*args), kfn(*args)
            np.testing.assert_allclose(a.nngp, b.nngp, rtol=1e-14, atol=0)
            np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-14, atol=0)
        # the diagonal blocks take the symmetric path: exact zero angles, bitwise diagonal
        np.testing.assert_array_equal(np.diag(kb(x).ntk), np.diag(kfn(x).ntk))


def test_cnn_blocks_equal_unbatched_and_get():
    x = np.concatenate([inputs()["img"], inputs()["img2"], inputs()["img"][:1]])  # 6 images
    _, _, kfn = stax.serial(stax.Conv(8, (3, 3), padding="SAME"), stax.Relu(),
                            stax.AvgPool((2, 2)), stax.GlobalAvgPool(), stax.Dense(1))
    kb = K.batch(kfn, batch_size=2)
    with jax.enable_x64(True):
        a = np.asarray(kb(x, get="ntk"))
        b = np.asarray(kfn(x, get="ntk"))
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)


def test_batch_rejects_bad_arguments():
    _, _, kfn = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1))
    with pytest.raises(ValueError, match="device_count"):
        K.batch(kfn, 2, device_count=99)
    with pytest.raises(ValueError, match="batch_size"):
        K.batch(kfn, -2)
    with pytest.raises(ValueError, match="multiple of batch_size"):
        K.batch(kfn, 4)(np.ones((6, 3)))
