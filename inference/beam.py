"""Beam search for an encoder-decoder, confined to each article's vocabulary, with the result of transformers'.

``transformers``' beam search scores every beam against the whole vocabulary at every step: with 30,522 BERT
tokens, a batch of 16 articles x 4 beams carries 2 million scores through the no-repeat-n-gram mask, the
article-vocabulary mask, the beam-score sum and the top-k. An article's brief may only use the few hundred
tokens of that article (``SourceVocabulary``), so ``beam_search`` takes the log-softmax over the whole
vocabulary (the normalisation must not change) and then works on the article's own columns only: a
gather of [rows, ~500] instead of four passes over [rows, 30,522]. The candidates keep their relative order
(beam, then token id), the selection rules are transformers' own (``_beam_search`` in 5.x: top 2 x beams
candidates, finished beams kept by length-normalised score, its early-stopping heuristic), and the outputs
are the same token for token in float32 (tested against ``model.generate``). In bfloat16 the logits have 8
significant bits, so candidate scores tie often; ``precise_logits`` recomputes the candidates' logits in
float32 (docs/performance.md: ROUGE-L on the whole validation sets within 0.5 point of float32 ``generate``).

Second, articles whose result can no longer change (all their beams finished, or transformers' heuristic
says no running beam can beat the finished ones) leave the batch with their rows of the key/value cache, once
they are a quarter of the articles still searched; transformers keeps computing them until the last article
of the batch is done.

Only the settings below are supported; ``lean_settings`` says whether a generation config stays inside
them, and ``Briefer`` falls back to ``model.generate`` otherwise (sampling, penalties, forced tokens...).
"""
from __future__ import annotations

import torch

from conflictbrief.inference.heap import release_free_memory

# Generation-config fields this search implements; any other field set away from its default means fallback.
_SUPPORTED = {"num_beams", "max_new_tokens", "max_length", "no_repeat_ngram_size", "length_penalty",
              "early_stopping", "bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id",
              "use_cache", "output_attentions", "output_hidden_states", "_from_model_config",
              "transformers_version"}


def lean_settings(model, overrides: dict):
    """The merged generation config when ``beam_search`` can run it exactly, else None."""
    from transformers import GenerationConfig

    if not getattr(model.config, "is_encoder_decoder", False):
        return None
    merged = {**model.generation_config.to_dict(), **overrides}
    if (merged.get("num_beams") or 1) < 2:  # greedy: before a config that warns of unused beam flags is built
        return None
    config = GenerationConfig.from_dict(merged)
    changed = set(config.to_diff_dict()) - _SUPPORTED
    eos = config.eos_token_id
    if changed or (config.num_beams or 1) < 2 or isinstance(eos, (list, tuple)) and len(eos) != 1 \
            or eos is None or config.decoder_start_token_id is None or config.use_cache is False \
            or config.output_attentions or config.output_hidden_states:
        return None
    return config


def _expand_ngram_bans(sequences: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(matches [rows, windows], banned token of each window) for a no-repeat-n-gram rule: a window whose first
    n-1 tokens equal the last n-1 tokens of its row bans its last token (transformers' rule)."""
    prefix = sequences[:, sequences.shape[1] + 1 - n:]
    windows = sequences.unfold(1, n, 1)
    return (windows[..., :-1] == prefix.unsqueeze(1)).all(-1), windows[..., -1]


@torch.inference_mode()
def beam_search(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, config, *,
                allowed: torch.Tensor | None = None, cache=None, prune: bool = True,
                precise_logits: bool = True) -> torch.Tensor:
    """Token ids [articles, length] of the best beam per article, as ``model.generate`` returns them.

    ``config``: a generation config accepted by ``lean_settings``. ``allowed``: boolean [articles, vocabulary],
    the tokens each article's output may use (None: all). ``cache``: the key/value cache to fill (default:
    transformers' encoder-decoder cache). ``prune``: articles whose result is final leave the batch (the
    default; False computes them to the end as transformers does, for comparison). ``precise_logits``: with a
    bfloat16 or float16 output layer, each candidate's score uses its logit computed in float32 from the
    article's own rows of that layer (the normaliser stays the rounded one): rounded logits have 8 significant
    bits in bfloat16, so candidates tie and the search picks between them arbitrarily.
    """
    from transformers.modeling_outputs import BaseModelOutput

    device = input_ids.device
    beams, batch = config.num_beams, input_ids.shape[0]
    eos = config.eos_token_id[0] if isinstance(config.eos_token_id, (list, tuple)) else config.eos_token_id
    fill = config.pad_token_id or eos  # transformers fills unused positions with pad, or EOS where pad is 0
    prompt_len = 1
    max_length = prompt_len + config.max_new_tokens if config.max_new_tokens is not None else config.max_length
    early_stopping, length_penalty = config.early_stopping, config.length_penalty
    ngram = config.no_repeat_ngram_size or 0
    keep = 2 * beams  # transformers: max(2, 1 + number of EOS tokens) x beams

    encoder = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
    if cache is None:
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        text_config = model.config.get_text_config(decoder=True)
        cache = EncoderDecoderCache(DynamicCache(config=text_config), DynamicCache(config=text_config))

    # The columns each article may use, in token order (so candidates keep transformers' order), padded.
    head = model.get_output_embeddings()
    vocab = head.out_features
    if allowed is None:
        columns = torch.arange(vocab, device=device).expand(batch, vocab)
        valid = torch.ones_like(columns, dtype=torch.bool)
    else:
        counts = allowed.sum(1)
        order = torch.sort((~allowed).to(torch.int8), dim=1, stable=True).indices  # allowed ids first, ascending
        columns = order[:, :int(counts.max())]
        valid = torch.arange(columns.shape[1], device=device)[None, :] < counts[:, None]
    width = columns.shape[1]
    column_of = None
    if ngram:  # token id -> column of its article; ids outside go to a spare column
        column_of = torch.full((batch, vocab + 1), width, dtype=torch.long, device=device)
        positions = torch.arange(width, device=device).expand(batch, width).masked_fill(~valid, width)
        column_of.scatter_(1, columns, positions)

    # Per article (first dimension: the articles still searched); ``alive`` maps them to the input rows.
    s = {
        "encoder": encoder.last_hidden_state, "source_mask": attention_mask, "columns": columns,
        "head_weight": None, "head_bias": None,
        "invalid": ~valid, "column_of": column_of,
        "running": torch.full((batch, beams, max_length), fill, dtype=torch.long, device=device),
        "running_scores": torch.zeros((batch, beams), device=device),
        "finished_scores": torch.full((batch, beams), -1e9, device=device),
        "is_finished": torch.zeros((batch, beams), dtype=torch.bool, device=device),
        "improvable": torch.ones((batch, 1), dtype=torch.bool, device=device),
        "running_indices": torch.full((batch, beams, max_length - prompt_len), -1, dtype=torch.int32, device=device),
    }
    s["running"][:, :, 0] = config.decoder_start_token_id
    s["running_scores"][:, 1:] = -1e9  # transformers: only the first beam's candidates at the first step
    s["finished"], s["finished_indices"] = s["running"].clone(), s["running_indices"].clone()
    captured: dict = {}
    hook = None
    if precise_logits and isinstance(head, torch.nn.Linear) and head.weight.dtype in (torch.bfloat16, torch.float16):
        # Scores of the article's own columns in float32 (see ``precise_logits``): its rows of the output layer.
        s["head_weight"] = head.weight[columns].float()
        s["head_bias"] = head.bias[columns].float() if head.bias is not None else None
        hook = head.register_forward_hook(lambda module, inputs, output: captured.__setitem__("x", inputs[0]))
    alive = torch.arange(batch, device=device)
    result = torch.full((batch, max_length), fill, dtype=torch.long, device=device)
    result_len = torch.zeros(batch, dtype=torch.long, device=device)
    top_beams = torch.arange(keep, device=device) < beams
    gather = lambda t, i: torch.take_along_dim(t, i.view(*i.shape, *([1] * (t.dim() - 2))), dim=1)  # noqa: E731
    per_row = lambda t: t.repeat_interleave(beams, 0)  # noqa: E731

    # A cross-attention cache that holds one row per article (``shared_source_cache`` with grouped attention) is
    # filled from one encoder row per article: the source keys and values are computed once per article, not once
    # per beam, and no beam-sized copy of the encoder output is made.
    per_article = getattr(cache.cross_attention_cache, "beams", 1) == beams
    if per_article:
        cache.cross_attention_cache.beams = 1
    source_rows = (lambda t: t) if per_article else per_row  # noqa: E731

    def rows_changed():
        """Tensors of one row per beam, rebuilt when the set of articles changes."""
        r = {"encoder_outputs": BaseModelOutput(last_hidden_state=source_rows(s["encoder"])),
             "source_mask": source_rows(s["source_mask"]), "columns": per_row(s["columns"]),
             "invalid": per_row(s["invalid"]),
             "offset": torch.arange(len(alive), device=device).view(-1, 1) * beams}
        if column_of is not None:
            r["column_of"] = per_row(s["column_of"])
        return r

    r = rows_changed()
    trim_at = {prompt_len + 1, (prompt_len + max_length) // 2}
    try:
        cur_len = prompt_len
        while True:
            n = len(alive)
            flat = s["running"][:, :, :cur_len].reshape(n * beams, cur_len)
            out = model(encoder_outputs=r["encoder_outputs"], attention_mask=r["source_mask"],
                        decoder_input_ids=flat[:, -1:], cache=cache, use_cache=True, return_dict=True)
            out_logits = out.logits[:, -1, :]
            log_probs = torch.nn.functional.log_softmax(out_logits.float(), dim=-1)
            del out
            scores = log_probs.gather(1, r["columns"])
            if hook is not None:  # the candidates' float32 logits minus their rounded ones, same normaliser
                hidden = captured.pop("x")[:, -1, :].float().view(n, beams, -1)
                precise = torch.bmm(hidden, s["head_weight"].transpose(1, 2))
                if s["head_bias"] is not None:
                    precise += s["head_bias"][:, None, :]
                rounded = out_logits.gather(1, r["columns"]).float()
                scores += precise.view(n * beams, width) - rounded
            scores.masked_fill_(r["invalid"], float("-inf"))
            if ngram and cur_len >= ngram:
                matches, banned = _expand_ngram_bans(flat, ngram)
                ban = torch.zeros((n * beams, width + 1), dtype=torch.bool, device=device)
                ban.scatter_(1, torch.where(matches, r["column_of"].gather(1, banned), width), True)
                scores.masked_fill_(ban[:, :width], float("-inf"))
            scores = (scores.view(n, beams, width) + s["running_scores"][:, :, None]).view(n, beams * width)

            # transformers' _get_top_k_continuations
            topk_scores, topk = torch.topk(scores, k=keep)
            topk_beam = topk // width
            topk_ids = torch.take_along_dim(s["columns"], topk % width, dim=1)
            topk_indices = gather(s["running_indices"], topk_beam)
            topk_sequences = gather(s["running"], topk_beam)
            topk_sequences[:, :, cur_len] = topk_ids
            topk_indices[:, :, cur_len - prompt_len] = (topk_beam + r["offset"]).to(topk_indices.dtype)
            hits_stop = (topk_ids == eos) | (cur_len + 1 >= max_length)

            # _get_running_beams_for_next_iteration
            candidates = topk_scores + hits_stop.to(torch.float32) * -1.0e9
            next_beams = torch.topk(candidates, k=beams)[1]
            s["running"] = gather(topk_sequences, next_beams)
            s["running_scores"] = gather(candidates, next_beams)
            s["running_indices"] = gather(topk_indices, next_beams)

            # _update_finished_beams
            just_finished = hits_stop & top_beams[None, :]
            normalised = topk_scores / ((cur_len + 1 - prompt_len) ** length_penalty)
            full = torch.all(s["is_finished"], -1, keepdim=True) & (early_stopping is True)
            normalised = normalised + full.float() * -1.0e9 + (~s["improvable"]).float() * -1.0e9
            normalised = normalised + (~just_finished) * -1.0e9
            merged_scores = torch.cat((s["finished_scores"], normalised), dim=1)
            best = torch.topk(merged_scores, k=beams)[1]
            s["finished"] = gather(torch.cat((s["finished"], topk_sequences), dim=1), best)
            s["finished_scores"] = gather(merged_scores, best)
            s["finished_indices"] = gather(torch.cat((s["finished_indices"], topk_indices), dim=1), best)
            s["is_finished"] = gather(torch.cat((s["is_finished"], just_finished), dim=1), best)

            cache.reorder_cache(s["running_indices"][..., cur_len - prompt_len].reshape(-1).long())
            cur_len += 1
            if cur_len in trim_at:
                # The encoder's and the first step's activations, then half a search of caches grown one position
                # at a time, are freed but stay in the heap, fragmented: give them back (inference/heap.py).
                # At batch 32 this lowered the peak by 50-70 MiB; each call takes 4-18 ms (docs/performance.md).
                release_free_memory()

            # _check_early_stop_heuristic
            if early_stopping == "never" and length_penalty > 0.0:
                best_length = max_length - prompt_len
            else:
                best_length = cur_len - prompt_len
            best_running = s["running_scores"][:, :1] / (best_length ** length_penalty)
            worst = torch.where(s["is_finished"], torch.min(s["finished_scores"], dim=1, keepdim=True)[0], -1.0e9)
            s["improvable"] = s["improvable"] & torch.any(best_running > worst, dim=-1, keepdim=True)

            # Final articles (no improvement possible, or all beams finished with early stopping) leave the batch.
            done = ~s["improvable"][:, 0]
            if early_stopping is True:
                done |= s["is_finished"].all(1)
            last = bool(hits_stop.all()) or bool(done.all())
            # Pruning copies every cache row kept; waiting until a quarter of the articles are final bounds the
            # copies (and the memory they leave fragmented) to a few per batch: pruning at every final article
            # raised the 1,000-article job's peak RSS from 1.41 to 1.53 GiB (docs/performance.md).
            if last or prune and 4 * int(done.sum()) >= len(alive):
                ended = torch.ones_like(done) if last else done
                result[alive[ended]] = s["finished"][ended, 0]
                result_len[alive[ended]] = (s["finished_indices"][ended, 0] + 1).bool().sum(1)
                if last:
                    break
                stay = (~done).nonzero().squeeze(1)
                stay_rows = (stay[:, None] * beams + torch.arange(beams, device=device)).reshape(-1)
                alive = alive[stay]
                s = {k: v[stay] if v is not None else None for k, v in s.items()}
                _select_cache_rows(cache, stay, stay_rows)
                r = rows_changed()

    finally:
        if hook is not None:
            hook.remove()
    return result[:, :prompt_len + int(result_len.max())]


def _select_cache_rows(cache, articles: torch.Tensor, rows: torch.Tensor) -> None:
    """Keep the given rows of an encoder-decoder cache: ``rows`` (one per beam) of the self-attention cache and
    of a cross-attention cache with one row per beam, ``articles`` of one with one row per article."""
    layers = [(layer, rows) for layer in cache.self_attention_cache.layers]
    beam_rows = cache.self_attention_cache.layers[0].keys.shape[0]
    for layer in cache.cross_attention_cache.layers:
        layers.append((layer, rows if layer.keys.shape[0] == beam_rows else articles))
    for layer, keep in layers:
        layer.keys, layer.values = layer.keys[keep], layer.values[keep]
