"""Reporting schemes: the read forms that reference reads and trainees' answers follow.

definitions.py is pure (parsing and validating schemes, answers and marks; the TB decision);
models.py holds trainer-made schemes; registry.py finds a scheme by key and version (built-in
JSON files in builtin/, parsed once per process); readform.py turns a submitted form into
answers. Cases and quizzes build on this room; it imports neither.
"""
