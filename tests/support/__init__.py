"""Helpers other tests reuse."""
