"""`$Secret{KEY}` references, in three parts: `grammar` (the syntax, pure Python), `resolve` (the
one transaction every consumer calls) and `output` (encodings and the check report's payload).
Import from the part itself."""
