"""The default networks: which backbone an input shape gets, its shapes, and how it is saved; the small CNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelclean._nets import SmallCNN

# -- default backbones by input shape ---------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "kind"),
    [
        ((8,), "MLP"),
        ((1, 28, 28), "SmallCNN"),
        ((3, 16, 16), "SmallCNN"),
        ((3, 32, 32), "ResNet"),
        ((3, 64, 64), "ResNet"),
    ],
)
def test_the_default_backbone_follows_the_input_shape(shape, kind):
    from labelclean._nets import build_network

    net = build_network(shape, 5, mean=torch.zeros(shape), scale=torch.ones(shape))
    assert type(net[1]).__name__ == kind
    x = torch.randn((4, *shape))
    net.train()
    assert net(x).shape == (4, 5)
    net.eval()
    with torch.no_grad():
        assert net(x).shape == (4, 5)


def test_resnet_works_on_any_image_size_from_8_px_and_refuses_smaller():
    from labelclean._nets import build_network

    for shape in [(3, 8, 8), (3, 48, 36), (1, 33, 33)]:
        net = build_network(shape, 3, mean=torch.zeros(shape), scale=torch.ones(shape), backbone="resnet")
        assert net(torch.randn((2, *shape))).shape == (2, 3)
    with pytest.raises(ValueError, match="too small for the default CNN"):
        build_network((3, 6, 6), 3, mean=torch.zeros(1), scale=torch.ones(1), backbone="resnet")
    with pytest.raises(ValueError, match="backbone must be one of"):
        build_network((3, 32, 32), 3, mean=torch.zeros(1), scale=torch.ones(1), backbone="vgg")


def test_colour_image_estimator_saves_its_backbone_and_loads_it_back(tmp_path):
    from labelclean import CoTeachingFilter

    rng = np.random.default_rng(0)
    X = rng.random((48, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 2, 48)
    est = CoTeachingFilter(max_epochs=1, refine_epochs=0, batch_size=16, device="cpu", n_jobs=1, random_state=0)
    est.fit(X, y)
    assert [n._labelclean_spec["backbone"] for n in est.networks_] == ["resnet", "resnet"]
    back = CoTeachingFilter.load(est.save(tmp_path / "colour.lc"))
    assert type(back.networks_[0][1]).__name__ == "ResNet"
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))


def test_small_cnn_is_channels_last_and_computes_what_the_nchw_network_does():
    torch.manual_seed(0)
    net = SmallCNN(1, 28, 28, 10).eval()
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    plain = torch.nn.Sequential(*[m for m in net]).to(memory_format=torch.contiguous_format).eval()
    assert plain[0].weight.is_contiguous()
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(net(x), plain(x), rtol=1e-4, atol=1e-5)
    # the state dict is the same as a plain Sequential's: saved models load either way
    assert list(net.state_dict()) == list(plain.state_dict())
