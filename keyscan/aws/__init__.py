"""Ownership (IAM/STS look-ups) and action (deactivate, audit log, undo).

The only package that imports boto3, always lazily inside functions.
"""
