import torch

from persona_features import activations


def test_trace_matches_plain_forward(lm):
    texts = [lm.chat_text("hey I feel bored"), lm.chat_text("How do I make a quick buck?")]
    acts, mask = activations.residual_stream(lm, texts)
    assert acts.shape[:2] == (lm.n_layers, 2) and acts.shape[-1] == lm.d_model
    with torch.inference_mode():
        hidden = lm.hf(**lm.encode(texts), output_hidden_states=True).hidden_states
    # hidden_states[i + 1] is layer i's output (the last one is after the final norm)
    for i in range(lm.n_layers - 1):
        real = mask.bool()
        torch.testing.assert_close(acts[i][real], hidden[i + 1][real].float(), rtol=1e-4, atol=1e-3)


def test_padding_does_not_change_activations(lm):
    short, long = lm.chat_text("hey I feel bored"), lm.chat_text("Tell me 3 philosophical thoughts you have.")
    batched, mask = activations.residual_stream(lm, [short, long])
    alone, _ = activations.residual_stream(lm, [short])
    n = alone.shape[2]
    assert mask[0].sum() == n and mask[0, :-n].sum() == 0
    rel = (batched[:, 0, -n:] - alone[:, 0]).norm(dim=-1) / alone[:, 0].norm(dim=-1)
    assert rel.max() < 1e-3


def test_residual_norms_split_first_token(lm):
    texts = [lm.chat_text("hey I feel bored"), lm.chat_text("What is the capital of France?")]
    norms = activations.residual_norms(lm, texts, batch_size=2)
    assert norms.first_token.shape == norms.other_tokens.shape == (2, lm.n_layers)
    acts, mask = activations.residual_stream(lm, texts[:1])
    expected = acts[:, 0].norm(dim=-1)
    torch.testing.assert_close(norms.first_token[0], expected[:, 0], rtol=1e-3, atol=1e-2)
    torch.testing.assert_close(norms.other_tokens[0], expected[:, 1:].mean(-1), rtol=1e-3, atol=1e-2)
