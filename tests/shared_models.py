"""Small models used by both test suites (the C++ fixtures and pytest)."""

import torch
import torch.nn as nn


class SmallNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class TwoInputs(torch.nn.Module):
    def forward(self, x, y):
        return torch.relu(x + y), x * y - 1.0


# The partitioning issue's models: a detection head with data-dependent ops after a
# convolutional trunk, a scripted greedy decoder (data-dependent while loop around a GRU
# cell), and a custom op registered only in PyTorch.

class DetectionHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        )
        self.classes = nn.Conv2d(16, 4, 1)
        self.deltas = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        features = self.trunk(x)
        scores = torch.sigmoid(self.classes(features)).flatten(1)       # [1, 4*H*W]
        boxes = self.deltas(features).flatten(2).transpose(1, 2)[0]     # [H*W, 4]
        top_scores, top_index = scores[0].topk(20)
        keep = torch.nonzero(top_scores > 0.5).squeeze(1)               # data-dependent
        anchors = torch.div(top_index[keep], 4, rounding_mode="floor")
        selected = boxes.index_select(0, anchors)
        return top_scores[keep], selected * 2.0 + 1.0


class GreedyDecoder(nn.Module):
    def __init__(self, vocab: int = 12, hidden: int = 32):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.cell = nn.GRUCell(hidden, hidden)
        self.project = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, h):
        token = torch.zeros(1, dtype=torch.long)
        steps = 0
        logits_so_far = torch.zeros(0, self.out.out_features)
        while steps < 12 and int(token[0]) != 1:
            h = self.cell(self.embed(token), h)
            logits = self.out(torch.tanh(self.project(h)))
            token = logits.argmax(1)
            logits_so_far = torch.cat([logits_so_far, logits], 0)
            steps += 1
        return h, logits_so_far


torch.library.define("tvmbridge_test::scale_shift", "(Tensor x, float scale) -> Tensor")


@torch.library.impl("tvmbridge_test::scale_shift", "CompositeExplicitAutograd")
def _scale_shift(x, scale):
    return x * scale + 1.0


class WithCustomOp(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        y = torch.relu(self.conv2(y))          # trunk: 4 ops once batch norm is folded
        y = torch.ops.tvmbridge_test.scale_shift(y, 0.5)
        return self.fc(y.mean([2, 3]))


class BertEncoder(torch.nn.Module):
    """A transformers BERT (random weights; 2 layers by default: the same ops as BERT-base,
    smaller) returning its last hidden state."""

    def __init__(self, vocab_size=1000, max_positions=512):
        super().__init__()
        import transformers

        config = transformers.BertConfig(hidden_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, intermediate_size=128,
                                         vocab_size=vocab_size,
                                         max_position_embeddings=max_positions)
        self.bert = transformers.BertModel(config).eval()

    def forward(self, ids, mask):
        return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state


class TransformersEncoder(torch.nn.Module):
    """A small transformers encoder (2 layers, width 64, random weights) of `kind`
    ("distilbert" or "roberta"), returning its last hidden state."""

    def __init__(self, kind: str, vocab_size=1000, max_positions=64):
        super().__init__()
        import transformers

        if kind == "distilbert":
            config = transformers.DistilBertConfig(dim=64, n_layers=2, n_heads=4, hidden_dim=128,
                                                   vocab_size=vocab_size,
                                                   max_position_embeddings=max_positions)
            self.encoder = transformers.DistilBertModel(config).eval()
        elif kind == "roberta":
            # RoBERTa counts positions from its padding id + 1: two rows more.
            config = transformers.RobertaConfig(hidden_size=64, num_hidden_layers=2,
                                                num_attention_heads=4, intermediate_size=128,
                                                vocab_size=vocab_size,
                                                max_position_embeddings=max_positions + 2)
            self.encoder = transformers.RobertaModel(config).eval()
        else:
            raise ValueError(f"unknown encoder kind {kind!r}")

    def forward(self, ids, mask):
        return self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
