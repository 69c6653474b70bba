"""ResNet-18 and MobileNet-V2 (random weights, eval mode), traced and scripted, against PyTorch."""

import pytest
import torch
import torchvision

import tvmbridge.torch as tt
from conftest import randomize_
from shared_models import BertEncoder

TOLERANCE = dict(rtol=1e-4, atol=1e-4)
SHAPE = (1, 3, 224, 224)


@pytest.mark.parametrize("how", ["script", "trace"])
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_matches_pytorch(name, how):
    torch.manual_seed(0)
    model = randomize_(getattr(torchvision.models, name)(weights=None))
    x = torch.randn(SHAPE)
    ts = torch.jit.script(model) if how == "script" else torch.jit.trace(model, x)
    compiled = tt.compile(ts, inputs=[tt.Input(SHAPE)], never_slower=False)
    with torch.no_grad():
        expected = model(x)
        actual = compiled(x)
    assert actual.shape == expected.shape == (1, 1000)
    assert expected.abs().max() > 1e-2  # a meaningful output, not a near-zero one
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    # A second input gives a different, still matching, answer (nothing cached by mistake).
    x2 = torch.randn(SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x2), model(x2), **TOLERANCE)


def test_transformers_bert_compiles_whole_and_matches_pytorch():
    """Traced BERT (embeddings, the attention mask built with arange/index/&, scaled dot
    product attention, GELU, layer norm) runs entirely in TVM."""
    torch.manual_seed(0)
    model = BertEncoder().eval()
    ids = torch.randint(0, 1000, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.int64)
    mask[1, 12:] = 0  # padding in the second sequence
    with torch.no_grad():
        traced = torch.jit.trace(model, (ids, mask))
    compiled = tt.compile(traced, [ids, mask], require_full_compilation=True,
                          never_slower=False)
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids, mask), model(ids, mask), **TOLERANCE)
        other = torch.randint(0, 1000, (2, 16))
        torch.testing.assert_close(compiled(other, mask), model(other, mask), **TOLERANCE)
