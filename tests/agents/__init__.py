"""Agents the test servers load by import path."""
