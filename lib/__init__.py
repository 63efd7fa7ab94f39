"""Plumbing every app may use: files, text, command errors, htmx responses, view decorators.

The ground floor under the feature apps: nothing here imports one of them (tests/test_layering.py
holds that), so any app can import it without a circle.
"""
