"""The model zoo of issue 3: every model built with random weights (no downloads), in eval
mode, with the inputs it is compiled for. `ZOO` maps a name to its `Spec`; `FAST` names the
ones `make test` runs (tests/python/test_zoo_fast.py), `make test-zoo` runs them all.

Image models run at reduced resolution where the architecture allows it (64 x 64; fully
convolutional classifiers pool adaptively), so the whole zoo fits a 2-core machine."""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn as nn


@dataclasses.dataclass(frozen=True)
class Spec:
    build: Callable[[], nn.Module]
    inputs: Callable[[], tuple]
    ways: tuple = ("trace", "script")
    tolerance: float = 1e-4
    # Quantized models: the allowed difference in steps of the outputs' quantization scale
    # (tvmbridge rounds float32 results onto each op's grid, PyTorch rounds integer sums, and
    # near-ties that fall the other way move later layers by a step).
    quantized_steps: int = 0
    # Ways known not to convert whole yet, with the reason (the zoo expects them to fail, and
    # fails when one starts passing, so the list stays true).
    known_gaps: dict = dataclasses.field(default_factory=dict)


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random batch-norm statistics and affine parameters (fresh ones are near identity and
    would hide a wrong conversion), random values for parameters initialised to zeros (ViT's
    classification head is, which would make its output 0 whatever the conversion), then
    eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.numel() > 1 and not parameter.any():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                if module.weight is not None:
                    module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                    module.bias.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
    return model.eval()


def _vision(name: str, size: int = 64, **kwargs) -> Spec:
    import torchvision

    return Spec(build=lambda: randomize_(torchvision.models.get_model(name, weights=None, **kwargs)),
                inputs=lambda: (torch.randn(1, 3, size, size),))


class _Outputs(nn.Module):
    """Returns the tensors of a model whose forward returns a dict, a named tuple or a
    transformers output object, as a tuple (what a compiled module returns)."""

    def __init__(self, model: nn.Module, keys: tuple):
        super().__init__()
        self.model = model
        self.keys = keys

    def forward(self, *args):
        out = self.model(*args)
        return tuple(out[k] for k in self.keys)


def _segmentation(name: str) -> Spec:
    import torchvision

    def build():
        model = torchvision.models.get_model(name, weights=None, weights_backbone=None,
                                             aux_loss=True)
        return randomize_(model)

    return Spec(build=build, inputs=lambda: (torch.randn(1, 3, 64, 64),), ways=("trace",))


def _video() -> Spec:
    import torchvision

    return Spec(build=lambda: randomize_(torchvision.models.video.r3d_18(weights=None)),
                inputs=lambda: (torch.randn(1, 3, 4, 32, 32),))


def _bert() -> Spec:
    def build():
        import transformers

        config = transformers.BertConfig()  # BERT-base: 12 layers, hidden 768
        return _Outputs(transformers.BertModel(config).eval(), ("last_hidden_state", "pooler_output"))

    def inputs():
        ids = torch.randint(0, 30522, (1, 32))
        mask = torch.ones(1, 32, dtype=torch.int64)
        mask[0, 28:] = 0
        return ids, mask

    return Spec(build=build, inputs=inputs, ways=("trace",))


def _gpt2() -> Spec:
    def build():
        import transformers

        config = transformers.GPT2Config(use_cache=False)  # GPT-2 small: 12 layers, hidden 768
        return _Outputs(transformers.GPT2Model(config).eval(), ("last_hidden_state",))

    return Spec(build=build, inputs=lambda: (torch.randint(0, 50257, (1, 32)),), ways=("trace",))


def _timm(name: str, size: int = 64, known_gaps: dict | None = None, **kwargs) -> Spec:
    """A timm model (requirements-zoo.txt pins timm), random weights, traced and scripted."""

    def build():
        import timm

        return randomize_(timm.create_model(name, pretrained=False, **kwargs))

    return Spec(build=build, inputs=lambda: (torch.randn(1, 3, size, size),),
                known_gaps=known_gaps or {})


TIMM = {  # issue 21's list, the smallest of each family
    "timm_convnext_atto": _timm("convnext_atto"),
    "timm_efficientnet_b0": _timm("efficientnet_b0"),
    "timm_mobilevitv2_050": _timm("mobilevitv2_050", known_gaps={
        "script": "torch.jit.script itself refuses timm's MobileViT-v2 (a call of the "
                  "unscripted _forward_cross_attn)"}),
    "timm_deit_tiny": _timm("deit_tiny_patch16_224", img_size=64),
    "timm_regnety_002": _timm("regnety_002"),
    "timm_resnest14d": _timm("resnest14d"),
    "timm_ghostnet_100": _timm("ghostnet_100"),
    "timm_levit_128s": _timm("levit_128s", size=224),
}


def _transformers_encoder(family: str) -> Spec:
    """Encoders of issue 21's list, from their transformers configs (base sizes, random
    weights): token ids and an attention mask with padding, or features for Whisper's audio
    encoder and pixels for CLIP's vision tower."""

    def build():
        import transformers as hf

        if family == "distilbert":
            model, keys = hf.DistilBertModel(hf.DistilBertConfig()), ("last_hidden_state",)
        elif family == "roberta":
            model, keys = hf.RobertaModel(hf.RobertaConfig()), ("last_hidden_state", "pooler_output")
        elif family == "t5_encoder":
            model, keys = hf.T5EncoderModel(hf.T5Config()), ("last_hidden_state",)
        elif family == "whisper_encoder":
            config = hf.WhisperConfig(max_source_positions=32)  # 64 mel frames
            model, keys = hf.WhisperModel(config).get_encoder(), ("last_hidden_state",)
        else:  # clip_vision
            config = hf.CLIPVisionConfig(image_size=64, patch_size=16)
            model, keys = hf.CLIPVisionModel(config), ("last_hidden_state", "pooler_output")
        return _Outputs(model.eval(), keys)

    def inputs():
        if family == "whisper_encoder":
            return (torch.randn(1, 80, 64),)
        if family == "clip_vision":
            return (torch.randn(1, 3, 64, 64),)
        ids = torch.randint(3, 30000, (1, 32))
        mask = torch.ones(1, 32, dtype=torch.int64)
        mask[0, 28:] = 0
        return ids, mask

    return Spec(build=build, inputs=inputs, ways=("trace",))


class _Encoder(nn.Module):
    """nn.TransformerEncoder called with its source only (its other arguments are optional,
    and compiled modules take tensors)."""

    def __init__(self, norm_first: bool):
        super().__init__()
        layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True,
                                           norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, x):
        return self.encoder(x)


def _transformer_encoder(norm_first: bool = False) -> Spec:
    def build():
        return _Encoder(norm_first).eval()

    return Spec(build=build, inputs=lambda: (torch.randn(2, 10, 64),))


class _Recurrent(nn.Module):
    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        out, _ = self.layer(x)
        return out


def _quantized_vision(name: str) -> Spec:
    """torchvision's quantizable model, fused and quantized by PyTorch's eager-mode static
    quantization (fbgemm) after calibrating on random images."""

    def build():
        import torch.ao.quantization as tq
        import torchvision

        model = randomize_(torchvision.models.get_model(f"quantized_{name}", weights=None,
                                                         quantize=False))
        model.fuse_model()
        model.qconfig = tq.get_default_qconfig("fbgemm")
        tq.prepare(model, inplace=True)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for _ in range(4):
                model(torch.randn(2, 3, 64, 64, generator=generator))
        return tq.convert(model, inplace=True)

    return Spec(build=build, inputs=lambda: (torch.randn(1, 3, 64, 64),), quantized_steps=4)


def _recurrent(layer: Callable[[], nn.Module]) -> Spec:
    return Spec(build=lambda: _Recurrent(layer()).eval(), inputs=lambda: (torch.randn(2, 8, 16),))


CLASSIFIERS = [
    "alexnet", "vgg11", "vgg11_bn", "resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2",
    "squeezenet1_0", "squeezenet1_1", "densenet121", "googlenet", "mobilenet_v2",
    "mobilenet_v3_small", "mobilenet_v3_large", "mnasnet0_5", "shufflenet_v2_x0_5",
    "efficientnet_b0", "efficientnet_v2_s", "regnet_x_400mf", "regnet_y_400mf", "convnext_tiny",
    "swin_t", "swin_v2_t",
]

ZOO: dict[str, Spec] = {name: _vision(name) for name in CLASSIFIERS}
ZOO.update({
    "alexnet": _vision("alexnet", size=96),                      # its pooling needs >= 63 px
    "inception_v3": _vision("inception_v3", size=96, aux_logits=False, init_weights=False),
    "vit_b_16": _vision("vit_b_16", size=64, image_size=64),
    "maxvit_t": _vision("maxvit_t", size=224),                   # partitions need 224 px
    "fcn_resnet50": _segmentation("fcn_resnet50"),
    "deeplabv3_resnet50": _segmentation("deeplabv3_resnet50"),
    "r3d_18": _video(),
    "bert_base": _bert(),
    "gpt2": _gpt2(),
    **{name: _transformers_encoder(name) for name in
       ["distilbert", "roberta", "t5_encoder", "whisper_encoder", "clip_vision"]},
    "transformer_encoder": _transformer_encoder(),
    "transformer_encoder_norm_first": _transformer_encoder(norm_first=True),
    "lstm_bidirectional": _recurrent(lambda: nn.LSTM(16, 32, 2, batch_first=True,
                                                     bidirectional=True)),
    "gru": _recurrent(lambda: nn.GRU(16, 32, 2, batch_first=True)),
    "rnn_relu": _recurrent(lambda: nn.RNN(16, 32, nonlinearity="relu", batch_first=True)),
})
ZOO.update(TIMM)
ZOO.update({f"quantized_{name}": _quantized_vision(name) for name in
            ["resnet18", "mobilenet_v2", "mobilenet_v3_large", "shufflenet_v2_x0_5"]})

# What `make test` runs: one of each kind, a few seconds to compile each.
FAST = ["resnet18", "mobilenet_v3_small", "squeezenet1_1", "transformer_encoder",
        "lstm_bidirectional", "gru"]
