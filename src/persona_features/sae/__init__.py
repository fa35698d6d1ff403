"""Stage 4a, the sparse autoencoder: ``sae_corpus`` (its training chats) and ``sae`` (the TopK SAE, its
training and its SAELens-format files).
"""
