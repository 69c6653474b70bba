"""Models the benchmarks share, built with random weights (no downloads)."""

import torch


class Bert(torch.nn.Module):
    """BERT-base's shape: token ids in, the last hidden state out."""

    def __init__(self):
        super().__init__()
        from transformers import BertConfig, BertModel

        self.bert = BertModel(BertConfig(), add_pooling_layer=False).eval()

    def forward(self, ids):
        return self.bert(input_ids=ids).last_hidden_state
