"""Thin Bolt handlers: ack, parse, call the domain, render, send.

Each module has a ``register(app, services)`` that attaches its handlers; ``bot.app`` calls them
all, so the whole ID -> handler map is visible in one place.
"""
