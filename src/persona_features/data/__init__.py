"""Prompts and datasets the book measures and trains with."""
