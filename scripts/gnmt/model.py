"""A small GNMT-shaped model (Wu et al. 2016; MLPerf's rnn_translator), in one file.

The shape follows NVIDIA's MLPerf v0.6 GNMT implementation, scaled down:

- encoder: embedding -> bidirectional LSTM -> unidirectional LSTM -> further unidirectional
  LSTMs with residual connections (from the third layer on);
- decoder: the first LSTM layer feeds a normalised Bahdanau attention over the encoder outputs;
  every following layer takes [its input; attention context], residual from the third layer on;
- classifier: a linear layer over the target vocabulary.

Shapes are batch-first: B = batch, S = source length, T = target length, H = hidden size.
Decoding is greedy (MLPerf GNMT uses beam search of width 5; greedy is enough at this scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

PAD, BOS, EOS, UNK = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class GNMTConfig:
    src_vocab: int
    tgt_vocab: int
    hidden: int = 128  # H: LSTM width, also the embedding width (as in GNMT)
    enc_layers: int = 3  # >= 2: bidirectional first layer, residuals from the third layer
    dec_layers: int = 3  # >= 1: attention after the first layer, residuals from the third
    dropout: float = 0.1


class Encoder(nn.Module):
    def __init__(self, cfg: GNMTConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.src_vocab, cfg.hidden, padding_idx=PAD)
        self.bi = nn.LSTM(cfg.hidden, cfg.hidden // 2, batch_first=True, bidirectional=True)
        self.layers = nn.ModuleList(
            nn.LSTM(cfg.hidden, cfg.hidden, batch_first=True) for _ in range(cfg.enc_layers - 1)
        )
        self.drop = nn.Dropout(cfg.dropout)

    def _run(self, lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = lstm(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.size(1))[0]

    def forward(self, src: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.embed(src))  # (B, S, H)
        x = self._run(self.bi, x, lengths)  # (B, S, H): both directions concatenated
        for i, lstm in enumerate(self.layers):
            y = self._run(lstm, self.drop(x), lengths)
            x = x + y if i >= 1 else y  # residual from the third encoder layer on
        return x


class BahdanauAttention(nn.Module):
    """Additive attention with GNMT's weight normalisation of the score vector."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.query = nn.Linear(hidden, hidden, bias=False)
        self.key = nn.Linear(hidden, hidden, bias=False)
        self.v = nn.Parameter(torch.empty(hidden).uniform_(-0.1, 0.1))
        self.g = nn.Parameter(torch.tensor(1.0 / hidden**0.5))
        self.b = nn.Parameter(torch.zeros(hidden))

    def forward(
        self, q: torch.Tensor, keys: torch.Tensor, proj_keys: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        # q (B, T, H), keys/proj_keys (B, S, H), mask (B, S) True on padding -> context (B, T, H)
        v = self.g * self.v / self.v.norm()
        scores = torch.tanh(self.query(q).unsqueeze(2) + proj_keys.unsqueeze(1) + self.b) @ v
        scores = scores.masked_fill(mask.unsqueeze(1), float("-inf"))  # (B, T, S)
        return torch.softmax(scores, dim=-1) @ keys


class Decoder(nn.Module):
    def __init__(self, cfg: GNMTConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.embed = nn.Embedding(cfg.tgt_vocab, h, padding_idx=PAD)
        self.att_rnn = nn.LSTM(h, h, batch_first=True)
        self.attention = BahdanauAttention(h)
        self.layers = nn.ModuleList(
            nn.LSTM(2 * h, h, batch_first=True) for _ in range(cfg.dec_layers - 1)
        )
        self.classifier = nn.Linear(h, cfg.tgt_vocab)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        tgt_in: torch.Tensor,
        keys: torch.Tensor,
        proj_keys: torch.Tensor,
        mask: torch.Tensor,
        state: list[tuple[torch.Tensor, torch.Tensor] | None] | None = None,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor] | None]]:
        # tgt_in (B, T) -> logits (B, T, V); ``state`` carries LSTM states for step-wise decoding
        state = state or [None] * (1 + len(self.layers))
        new_state: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        x, s = self.att_rnn(self.drop(self.embed(tgt_in)), state[0])
        new_state.append(s)
        context = self.attention(x, keys, proj_keys, mask)  # (B, T, H)
        for i, lstm in enumerate(self.layers):
            y, s = lstm(self.drop(torch.cat([x, context], dim=-1)), state[i + 1])
            new_state.append(s)
            x = x + y if i >= 1 else y  # residual from the third decoder layer on
        return self.classifier(self.drop(x)), new_state


class GNMT(nn.Module):
    def __init__(self, cfg: GNMTConfig, init_range: float = 0.1) -> None:
        super().__init__()
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        # GNMT's init: every weight uniform in [-init_range, init_range], except the attention's
        # normalisation scalar and bias, which keep their own (1/sqrt(H) and 0)
        attention = self.decoder.attention
        for param in self.parameters():
            if param is not attention.g and param is not attention.b:
                nn.init.uniform_(param, -init_range, init_range)

    def forward(
        self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor
    ) -> torch.Tensor:
        keys = self.encoder(src, src_len)
        mask = src == PAD
        logits, _ = self.decoder(tgt_in, keys, self.decoder.attention.key(keys), mask)
        return logits

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, src_len: torch.Tensor, max_len: int) -> torch.Tensor:
        """Token ids (B, <= max_len) of the greedy translation, EOS and after set to PAD."""
        keys = self.encoder(src, src_len)
        proj_keys = self.decoder.attention.key(keys)
        mask = src == PAD
        tok = torch.full((src.size(0), 1), BOS, dtype=torch.long, device=src.device)
        state = None
        done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
        out: list[torch.Tensor] = []
        for _ in range(max_len):
            logits, state = self.decoder(tok, keys, proj_keys, mask, state)
            tok = logits[:, -1].argmax(-1, keepdim=True)
            tok = tok.masked_fill(done.unsqueeze(1), PAD)
            out.append(tok)
            done |= tok.squeeze(1) == EOS
            if bool(done.all()):
                break
        ids = torch.cat(out, dim=1)
        return ids.masked_fill(ids == EOS, PAD)
