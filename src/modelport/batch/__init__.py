"""Batch endpoints: definitions (``definitions``, ``endpoints``), jobs and their durable state
(``jobs``), the job runner process (``runner``) and its local engine (``engine``, ``worker``),
and the pieces they share: inputs, scoring, output."""
