"""Reporting schemes: the read forms that reference reads and trainees' answers follow.

parts.py holds a scheme's parts; definitions.py parses and validates a scheme's JSON
definition (translations.py its texts in other languages); answers.py checks what a reader
gives (answers and marks), the TB decision they imply and the experts' consensus; errors.py
says why something is refused, in English and in the reader's language. models.py holds
trainer-made schemes; registry.py finds a scheme by key and version (built-in JSON files in
builtin/, parsed once per process); readform.py turns a submitted form into answers. Cases
and quizzes build on this room; it imports neither.
"""
