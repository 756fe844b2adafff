"""Batch endpoints: definitions (``definitions``, ``endpoints``), jobs and their durable state
(``jobs``), the job runner process (``runner``) and its engine (``engine``) over local worker
processes (``local_executor``, ``worker``) or Ray actors (``ray_executor``), and the pieces
they share: inputs, scoring, output."""
